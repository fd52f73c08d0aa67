"""Kueue (built from its Go module by hack/kueue/build.sh) against a test control plane.

`Kueue(cp).start()` installs Kueue's CRDs, runs the Kueue manager as a local process with the
admin's kubeconfig and a config file of ours, registers Kueue's webhooks for its own kinds
(Workload, ClusterQueue, LocalQueue... defaulting and validation: what a real cluster checks
of the operator's Workloads) by URL on loopback, and waits until Kueue is ready.

The same for a plain `ControlPlane` (loopback only, no node) and `real_cluster()`'s (the API
server advertises a LAN address to real nodes' pods). Either way the
API server is a local process in this machine's network namespace, so a webhook URL on
127.0.0.1 reaches the manager; nothing in a pod ever calls Kueue.

Webhooks: internal cert management is off (it would write a Secret and patch webhook
configurations that point at an in-cluster Service, which loopback has no endpoints for);
the webhook server serves the API server's own serving certificate (signed by the test CA,
valid for 127.0.0.1), and only the kueue.x-k8s.io webhooks are registered: the pod, Job and
other workload-kind webhooks (failurePolicy Fail) would gate every pod of the shared control
plane and fail them all once Kueue stops. `stop()` removes the registrations.

`queue_objects()` gives the ResourceFlavor, ClusterQueue and LocalQueue a test admits through.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from . import procs
from .assets import REPO_ROOT, built_path
from .control_plane import ControlPlane

BUILD_SCRIPT = REPO_ROOT / "hack" / "kueue" / "build.sh"
# The kind the operator manages for Kueue (Kueue's integrations.externalFrameworks).
EXTERNAL_FRAMEWORK = "TrainingJob.v1alpha1.kubetrain.io"
GROUP = "kueue.x-k8s.io"
WEBHOOK_CONFIG_NAME = "kubetrain-testenv-kueue"


def ensure_kueue(timeout: float = 3600) -> Path:
    """The directory with `kueue` and `crds/`: $KUBETRAIN_KUEUE if it holds them (hack/test.sh
    sets it), else what hack/kueue/build.sh prints (it builds once, then is a no-op)."""
    given = os.environ.get("KUBETRAIN_KUEUE")
    if given and (Path(given) / "kueue").is_file():
        return Path(given)
    return built_path(BUILD_SCRIPT, timeout)


def queue_objects(
    name: str, namespace: str, quota: dict[str, str], local_queue: str = "team",
    node_labels: dict[str, str] | None = None,
) -> list[dict[str, Any]]:  # fmt: skip
    """A ResourceFlavor and a ClusterQueue named `name` (`quota`: nominal quota per resource,
    one flavor; preemption of lower priorities within the queue) for `namespace` only, and
    the LocalQueue `local_queue` there."""
    flavor: dict[str, Any] = {"apiVersion": f"{GROUP}/v1beta1", "kind": "ResourceFlavor",
                              "metadata": {"name": name}, "spec": {}}  # fmt: skip
    if node_labels:
        flavor["spec"]["nodeLabels"] = node_labels
    cluster_queue = {
        "apiVersion": f"{GROUP}/v1beta1", "kind": "ClusterQueue", "metadata": {"name": name},
        "spec": {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
            "preemption": {"withinClusterQueue": "LowerPriority"},
            "resourceGroups": [{
                "coveredResources": list(quota),
                "flavors": [{"name": name, "resources": [
                    {"name": resource, "nominalQuota": amount}
                    for resource, amount in quota.items()
                ]}],
            }],
        },
    }  # fmt: skip
    local = {"apiVersion": f"{GROUP}/v1beta1", "kind": "LocalQueue",
             "metadata": {"name": local_queue, "namespace": namespace},
             "spec": {"clusterQueue": name}}  # fmt: skip
    return [flavor, cluster_queue, local]


class Kueue:
    """The Kueue manager as a process of `cp` (stopped with it, or by `stop()`)."""

    def __init__(self, cp: ControlPlane, assets: Path | None = None) -> None:
        self.cp = cp
        self.assets = assets
        self.dir = cp.root / "kueue"
        self.proc: subprocess.Popen[bytes] | None = None
        self.health_port = self.webhook_port = 0

    @property
    def log(self) -> Path:
        return self.cp.log_path("kueue")

    def start(self, timeout: float = 120) -> Kueue:
        self.assets = self.assets or ensure_kueue()
        self._install_crds()
        self.dir.mkdir(parents=True, exist_ok=True)
        certs = self.dir / "certs"
        certs.mkdir(exist_ok=True)
        assert self.cp.pki is not None
        shutil.copy(self.cp.pki.serving_cert, certs / "tls.crt")
        shutil.copy(self.cp.pki.serving_key, certs / "tls.key")
        self.health_port, self.webhook_port = procs.free_port(), procs.free_port()
        config = self.dir / "config.yaml"
        config.write_text(yaml.safe_dump(self._config(certs)))
        if not self._exists("/api/v1/namespaces/kueue-system"):
            namespace = {"apiVersion": "v1", "kind": "Namespace",
                         "metadata": {"name": "kueue-system"}}  # fmt: skip
            self.cp.request("POST", "/api/v1/namespaces", namespace)
        env = {**os.environ, "KUBECONFIG": str(self.cp.kubeconfig)}
        self.proc = procs.start(self._argv(config, certs), self.log, self.cp.run_id, env=env)
        procs.wait_for(self._ready_or_dead, timeout, 0.2, "the Kueue manager to be ready")
        if self.proc.poll() is not None:
            raise RuntimeError(
                f"kueue exited with code {self.proc.returncode}:\n{self.output()[-3000:]}"
            )
        self._register_webhooks()
        return self

    def stop(self) -> None:
        for kind in ("mutatingwebhookconfigurations", "validatingwebhookconfigurations"):
            with contextlib.suppress(urllib.error.HTTPError):
                self.cp.request(
                    "DELETE",
                    f"/apis/admissionregistration.k8s.io/v1/{kind}/{WEBHOOK_CONFIG_NAME}",
                )
        if self.proc is not None:
            procs.stop(self.proc, grace=10.0)
            self.proc = None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    # -- parts -----------------------------------------------------------------------

    def _config(self, certs: Path) -> dict[str, Any]:
        return {
            "apiVersion": "config.kueue.x-k8s.io/v1beta1",
            "kind": "Configuration",
            "namespace": "kueue-system",
            "health": {"healthProbeBindAddress": f"127.0.0.1:{self.health_port}"},
            # Port 0: no metrics server (several Kueues may share the machine).
            "metrics": {"bindAddress": "0"},
            "webhook": {"host": "127.0.0.1", "port": self.webhook_port, "certDir": str(certs)},
            "leaderElection": {"leaderElect": False},
            "internalCertManagement": {"enable": False},
            "integrations": {
                "frameworks": ["batch/job"],
                "externalFrameworks": [EXTERNAL_FRAMEWORK],
            },
        }

    def _install_crds(self) -> None:
        assert self.assets is not None
        crds = sorted((self.assets / "crds").glob("*.yaml"))
        done = self.cp.kubectl("apply", "--server-side", "--force-conflicts",
                               *(a for c in crds for a in ("-f", str(c))))  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"installing Kueue's CRDs failed: {done.stderr[-2000:]}")
        for path in crds:
            name = yaml.safe_load(path.read_text())["metadata"]["name"]
            self.cp.wait_crd_established(name)

    def _argv(self, config: Path, certs: Path) -> list[str | Path]:
        """Kueue in a private mount namespace whose /etc is an overlay: without internal cert
        management it reads its metrics certificate from the fixed path
        /etc/kueue/metrics/certs (even with the metrics server off), which must not be
        written on the machine itself."""
        assert self.assets is not None
        upper, work = self.dir / "etc-upper", self.dir / "etc-work"
        upper.mkdir(exist_ok=True)
        work.mkdir(exist_ok=True)
        script = (
            f"mount -t overlay overlay -o lowerdir=/etc,upperdir={upper},workdir={work} /etc"
            f" && mkdir -p /etc/kueue/metrics/certs && cp {certs}/tls.crt {certs}/tls.key"
            ' /etc/kueue/metrics/certs/ && exec "$@"'
        )
        return [
            "unshare", "--mount", "--propagation", "private", "sh", "-c", script, "kueue",
            self.assets / "kueue", f"--config={config}", "--zap-log-level=2",
            # The on-demand visibility API server listens on a fixed port (8082): off.
            "--feature-gates=VisibilityOnDemand=false",
        ]  # fmt: skip

    def _ready_or_dead(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            return True  # start() reports it
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.health_port}/readyz", timeout=2
            ) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def _exists(self, path: str) -> bool:
        try:
            self.cp.request("GET", path)
            return True
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return False
            raise

    def _register_webhooks(self) -> None:
        """Kueue's own webhook configurations, reduced to its kinds and pointed at the local
        webhook server by URL."""
        assert self.assets is not None
        ca = base64.b64encode(self.cp.ca_file.read_bytes()).decode()
        manifests = self.assets / "webhooks.yaml"
        for doc in yaml.safe_load_all(manifests.read_text()):
            hooks = []
            for hook in doc["webhooks"]:
                if not all(r.get("apiGroups") == [GROUP] for r in hook["rules"]):
                    continue
                path = hook["clientConfig"]["service"]["path"]
                url = f"https://127.0.0.1:{self.webhook_port}{path}"
                hook["clientConfig"] = {"url": url, "caBundle": ca}
                hook.pop("namespaceSelector", None)
                hooks.append(hook)
            kind = doc["kind"].lower() + "s"
            body = {
                "apiVersion": "admissionregistration.k8s.io/v1", "kind": doc["kind"],
                "metadata": {"name": WEBHOOK_CONFIG_NAME}, "webhooks": hooks,
            }  # fmt: skip
            path = f"/apis/admissionregistration.k8s.io/v1/{kind}"
            with contextlib.suppress(urllib.error.HTTPError):
                self.cp.request("DELETE", f"{path}/{WEBHOOK_CONFIG_NAME}")
            self.cp.request("POST", path, body)

    def __enter__(self) -> Kueue:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
