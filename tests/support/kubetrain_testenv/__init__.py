"""A real Kubernetes control plane for tests, plus a node agent that runs pods as processes.

Test and development tool only: never part of what users deploy.

`ControlPlane` runs etcd, kube-apiserver and kube-controller-manager (built by
hack/control-plane/build.sh) on loopback; `start_node_agent()` adds one Node on
which pods run as local processes (needs root). The node agent is a kubelet
stand-in with these conventions:

- Processes: a container runs `command` + `args` (`$(VAR)` expanded) as a local
  process; the image is ignored, so a container without `command` fails
  (CreateContainerConfigError). PATH starts with the agent's Python's bin dir,
  so `python` in a pod is the test venv's interpreter. Each container runs in
  its own mount and UTS namespaces with the pod's hostname.
- Mounts: emptyDir, configMap, secret, downwardAPI, projected (serviceAccountToken,
  configMap, secret, downwardAPI) volumes are directories under the pod's sandbox,
  bind-mounted at their real mountPath (subPath and readOnly honoured); hostPath
  mounts the machine's path. Contents are written once at pod start. Missing mount
  points are created (empty) on the machine. The termination-message path
  (default /dev/termination-log) is a per-container file the agent reads on exit.
- In-cluster config: the ServiceAccount admission's projected token volume appears
  at /var/run/secrets/kubernetes.io/serviceaccount (token, ca.crt, namespace), and
  KUBERNETES_SERVICE_HOST=127.0.0.1 / KUBERNETES_SERVICE_PORT=<API server port>,
  so `kubernetes.config.load_incluster_config()` works in a pod.
- Network and DNS: pods share the machine's network namespace (two pods binding
  the same port on 0.0.0.0 collide; ClusterIP Services do not route). Each pod
  gets podIP 127.1.x.y, stable per hostname.subdomain. The pod's /etc/hosts (a
  bind-mounted, append-only file) maps its own hostname and, for every pod with a
  `subdomain`, `<hostname>.<subdomain>.<ns>.svc.cluster.local`, `...<ns>.svc`,
  `...<ns>` and, within the namespace, `<hostname>.<subdomain>`. No Service object
  is required for these names.
- Logs: stdout+stderr of each container go to
  `<agent dir>/logs/<namespace>/<pod>/<container>.log` (appended across restarts);
  read them with `ControlPlane.pod_log(namespace, name, container=None)`.
  `kubectl logs`/`exec`, probes, resources and node selection are not implemented.
- Scheduling: every pod with no nodeName and the default scheduler is bound to the
  agent's node; restartPolicy is followed with a 1 s doubling back-off (max 10 s).
- Deletion: SIGTERM to the container's process group, the grace period, SIGKILL,
  then the pod is deleted with grace 0. Each container also gets a cgroup (v2, or
  v1 `pids`, when writable): when its main process exits, whatever it left behind
  (torchrun's workers run in their own sessions) is killed, as a runtime would.
- Every process carries KUBETRAIN_TESTENV_RUN/KUBETRAIN_TESTENV_OWNER in its env:
  `ControlPlane.survivors()` lists what is still alive, and a new ControlPlane
  kills the orphans of an owner that was SIGKILLed.
"""

from .control_plane import ControlPlane, ControlPlaneError
from .procs import survivors, wait_for

__all__ = ["ControlPlane", "ControlPlaneError", "survivors", "wait_for"]
