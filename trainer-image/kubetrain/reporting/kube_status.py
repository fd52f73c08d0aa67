"""The Kubernetes status sink: rank 0's progress → `status.progress` of its own TrainingJob.

Stdlib only (the trainer image has no Kubernetes client). A merge patch on the status
subresource, with the pod's ServiceAccount token, which may patch that one job's status
and (by the admission policy in operator/manifests/) nothing but `status.progress`.
Sends happen on a background thread at most every `runPolicy.progressIntervalSeconds`
(the final progress always), so a slow API server never slows training; the heartbeat in
what it sends comes from the loop, so a frozen loop still shows up as a stale heartbeat.
Errors are logged and backed off, never raised.

Built by the trainer when it runs in a pod: KUBETRAIN_JOB_NAME / KUBETRAIN_JOB_NAMESPACE
(set by the operator) say which job. Tests may override the API
server, token and CA with KUBETRAIN_API_SERVER, KUBETRAIN_TOKEN_FILE, KUBETRAIN_CA_FILE.
"""

from __future__ import annotations

import contextlib
import json
import os
import ssl
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from kubetrain.api.status import Progress

SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
DEFAULT_INTERVAL = 10.0
MAX_BACKOFF = 300.0
TIMEOUT = 10.0


def api_server_url(env: dict[str, str]) -> str | None:
    if env.get("KUBETRAIN_API_SERVER"):
        return env["KUBETRAIN_API_SERVER"].rstrip("/")
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT", "443")
    if not host:
        return None
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


class KubeStatusSink:
    """Writes progress into one TrainingJob's status (see the module docstring)."""

    def __init__(
        self,
        namespace: str,
        name: str,
        server: str,
        *,
        token_file: Path = SA_DIR / "token",
        ca_file: Path | None = SA_DIR / "ca.crt",
        interval: float = DEFAULT_INTERVAL,
        group: str = "kubetrain.io",
        version: str = "v1alpha1",
    ) -> None:
        self.url = (
            f"{server}/apis/{group}/{version}/namespaces/{namespace}/trainingjobs/{name}/status"
        )
        self.token_file, self.interval = token_file, interval
        self._ssl = ssl.create_default_context(
            cafile=str(ca_file) if ca_file and Path(ca_file).exists() else None
        )
        self._cv = threading.Condition()
        self._pending: Progress | None = None
        self._final = False
        self._closed = False
        self._next_send = 0.0  # monotonic time before which nothing is sent
        self._failures = 0
        self.sent = 0
        self._thread = threading.Thread(target=self._run, name="kube-status-sink", daemon=True)
        self._thread.start()

    # -- the Sink protocol ----------------------------------------------------------

    def publish(self, progress: Progress, final: bool) -> None:
        self._offer(progress, final)

    def beat(self, progress: Progress) -> None:
        self._offer(progress, False)

    def close(self) -> None:
        """Send what is pending (the final progress), then stop; waits a bounded time."""
        with self._cv:
            self._closed = True
            self._cv.notify()
        self._thread.join(timeout=2 * TIMEOUT)

    # -- sending --------------------------------------------------------------------

    def _offer(self, progress: Progress, final: bool) -> None:
        with self._cv:
            self._pending = progress.model_copy(deep=True)
            self._final = self._final or final
            self._cv.notify()

    def _run(self) -> None:
        while True:
            with self._cv:
                while True:
                    urgent = self._final or self._closed
                    wait = self._next_send - time.monotonic()
                    if self._pending is not None and (urgent or wait <= 0):
                        break
                    if self._closed:
                        return
                    self._cv.wait(timeout=wait if self._pending is not None else None)
                progress, final = self._pending, self._final
                self._pending, self._final = None, False
            ok = self._send(progress)
            if not ok and final:
                with self._cv:  # the final progress is retried (once) even when closing
                    if self._pending is None:
                        self._pending, self._final = progress, not self._closed

    def _send(self, progress: Progress) -> bool:
        body = json.dumps({"status": {"progress": progress.to_yaml_dict()}}).encode()
        request = urllib.request.Request(self.url, data=body, method="PATCH")
        request.add_header("Content-Type", "application/merge-patch+json")
        request.add_header("Accept", "application/json")
        try:
            request.add_header("Authorization", f"Bearer {self.token_file.read_text().strip()}")
            with urllib.request.urlopen(request, context=self._ssl, timeout=TIMEOUT) as answer:
                answer.read()
        except (OSError, urllib.error.URLError, ValueError) as e:
            self._failures += 1
            delay = min(self.interval * 2**self._failures, MAX_BACKOFF)
            self._next_send = time.monotonic() + delay
            detail = e.read().decode(errors="replace")[:300] if isinstance(
                e, urllib.error.HTTPError) else ""
            print(f"kubetrain: status update failed ({e}) {detail}; next try in {delay:.0f}s",
                  file=sys.stderr)  # fmt: skip
            return False
        self._failures = 0
        self.sent += 1
        self._next_send = time.monotonic() + self.interval
        return True


def sink_for_pod(job: Any, env: dict[str, str] | None = None) -> KubeStatusSink | None:
    """The sink of a trainer pod (the operator sets KUBETRAIN_JOB_NAME/_NAMESPACE and the
    kubelet the API server's address); None outside a cluster."""
    env = dict(os.environ if env is None else env)
    name, namespace = env.get("KUBETRAIN_JOB_NAME"), env.get("KUBETRAIN_JOB_NAMESPACE")
    server = api_server_url(env)
    if not (name and namespace and server):
        return None
    interval = DEFAULT_INTERVAL
    with contextlib.suppress(AttributeError):
        interval = float(job.spec.run_policy.progress_interval_seconds)
    return KubeStatusSink(
        namespace, name, server,
        token_file=Path(env.get("KUBETRAIN_TOKEN_FILE") or SA_DIR / "token"),
        ca_file=Path(env.get("KUBETRAIN_CA_FILE") or SA_DIR / "ca.crt"),
        interval=interval,
    )  # fmt: skip
