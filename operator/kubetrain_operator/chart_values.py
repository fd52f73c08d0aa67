"""The Helm chart's values: one model from which values.yaml and values.schema.json are generated.

Pure (pydantic only). `hack/chart/generate.py` writes charts/kubetrain/values.yaml (defaults,
with these docstrings as comments) and values.schema.json; unit tests fail on drift.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from kubetrain.api.base import KubeModel

K8sObject = dict[str, Any]


class Values(KubeModel):
    """Base: camelCase keys like every Helm chart, unknown keys rejected by the schema (the
    same conventions as the TrainingJob spec)."""


class Image(Values):
    repository: str = "ghcr.io/kubetrain/operator"
    """The operator image (operator/Dockerfile)."""
    tag: str = ""
    """Image tag; empty means the chart's appVersion (the package version)."""
    pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"


class ServiceAccount(Values):
    name: str = ""
    """Name of the operator's ServiceAccount; empty means `<release>-operator`. It must not
    end in `-trainer`: the admission policy judges such accounts as trainer pods."""
    annotations: dict[str, str] = {}
    """For example a cloud IAM role binding."""


class Ports(Values):
    metrics: int = Field(8080, ge=1, le=65535)
    """Prometheus metrics (`/metrics`)."""
    health: int = Field(8081, ge=1, le=65535)
    """Liveness and readiness (`/healthz`)."""


class ServiceMonitor(Values):
    enabled: bool = False
    """Create a prometheus-operator ServiceMonitor (needs its CRDs)."""
    interval: str = "30s"
    labels: dict[str, str] = {}
    """Labels your Prometheus' serviceMonitorSelector matches."""


class Metrics(Values):
    enabled: bool = True
    """A ClusterIP Service in front of the metrics port."""
    service_port: int = Field(8080, ge=1, le=65535)
    service_monitor: ServiceMonitor = ServiceMonitor()


class Dashboard(Values):
    enabled: bool = False
    """A ConfigMap holding a Grafana dashboard: jobs by phase, loss and throughput per job."""
    labels: dict[str, str] = {"grafana_dashboard": "1"}
    """Labels the Grafana sidecar looks for."""
    namespace: str = ""
    """Where the ConfigMap goes; empty means the release namespace."""


class AdmissionPolicy(Values):
    enabled: bool = True
    """The ValidatingAdmissionPolicy limiting trainer pods to `status.progress` of their own job.

    Keep it on: RBAC alone lets a trainer rewrite its job's whole status.
    """


class Resources(Values):
    requests: dict[str, str] = {"cpu": "100m", "memory": "128Mi"}
    limits: dict[str, str] = {"memory": "512Mi"}
    """No CPU limit by default: throttling would delay reconciles, not save anything."""


class ChartValues(Values):
    """Values of the kubetrain chart."""

    image: Image = Image()
    image_pull_secrets: list[K8sObject] = []
    watch_namespaces: list[str] = []
    """Namespaces the operator watches, with a Role in each; empty means the whole cluster
    (a ClusterRole). Each must exist before `helm install`."""
    service_account: ServiceAccount = ServiceAccount()
    ports: Ports = Ports()
    metrics: Metrics = Metrics()
    dashboard: Dashboard = Dashboard()
    admission_policy: AdmissionPolicy = AdmissionPolicy()
    resources: Resources = Resources()
    workers: int = Field(4, ge=1)
    """Jobs reconciled at once (`--workers`)."""
    log_format: Literal["json", "plain"] = "json"
    verbose: bool = False
    """Debug logging (`--verbose`)."""
    extra_args: list[str] = []
    """More arguments for `python -m kubetrain_operator`."""
    extra_env: list[K8sObject] = []
    pod_annotations: dict[str, str] = {}
    priority_class_name: str = ""
    node_selector: dict[str, str] = {}
    tolerations: list[K8sObject] = []
    affinity: K8sObject = {}


def default_values() -> dict[str, Any]:
    """The defaults as values.yaml holds them."""
    return ChartValues().model_dump(mode="json", by_alias=True)


def values_schema() -> dict[str, Any]:
    """JSON Schema for `helm lint`/`install` (draft 2020-12, which Helm 3.18+ reads)."""
    schema = ChartValues.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema
