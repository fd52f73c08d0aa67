"""The kubetrain operator: TrainingJobs become worker pods running the trainer under torchrun.

Pure modules (`render`, `status`, `validation`, `names`) import neither kopf nor the
Kubernetes client; `kube` is the one module that talks to the API server; `handlers`
wires them to kopf.
"""

__version__ = "0.1.0"
