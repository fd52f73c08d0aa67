"""The Kubernetes status sink's pure parts and its rate limit, against a local HTTP server."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

from kubetrain.api.status import Progress
from kubetrain.reporting import Sink
from kubetrain.reporting.kube_status import KubeStatusSink, api_server_url, sink_for_pod


def test_api_server_url_from_the_in_cluster_env():
    assert api_server_url({"KUBERNETES_SERVICE_HOST": "10.0.0.1",
                           "KUBERNETES_SERVICE_PORT": "443"}) == "https://10.0.0.1:443"
    assert api_server_url({"KUBERNETES_SERVICE_HOST": "fd00::1"}) == "https://[fd00::1]:443"
    assert api_server_url({"KUBETRAIN_API_SERVER": "https://x:6443/"}) == "https://x:6443"
    assert api_server_url({}) is None


def test_outside_a_cluster_there_is_no_status_sink():
    assert sink_for_pod(None, env={}) is None
    in_pod_without_server = {"KUBETRAIN_JOB_NAME": "a", "KUBETRAIN_JOB_NAMESPACE": "b"}
    assert sink_for_pod(None, env=in_pod_without_server) is None


def test_in_a_pod_the_trainer_gets_a_status_sink(tmp_path: Path):
    env = {"KUBETRAIN_JOB_NAME": "a", "KUBETRAIN_JOB_NAMESPACE": "b",
           "KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": "1",
           "KUBETRAIN_TOKEN_FILE": str(tmp_path / "token")}
    sink = sink_for_pod(None, env=env)
    assert isinstance(sink, Sink)
    assert sink.url == ("https://127.0.0.1:1/apis/kubetrain.io/v1alpha1/namespaces/b/"
                        "trainingjobs/a/status")
    sink.close()


class _Recorder(BaseHTTPRequestHandler):
    bodies: list[dict[str, Any]] = []
    status = 200

    def do_PATCH(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).bodies.append({"body": body, "type": self.headers["Content-Type"],
                                  "auth": self.headers["Authorization"], "path": self.path})
        self.send_response(type(self).status)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None: ...


def _serve(status: int) -> tuple[HTTPServer, type[_Recorder]]:
    handler = type("Recorder", (_Recorder,), {"bodies": [], "status": status})
    server = HTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, handler


def test_rate_limited_merge_patches_of_progress_only(tmp_path: Path):
    server, handler = _serve(200)
    token = tmp_path / "token"
    token.write_text("secret\n")
    sink = KubeStatusSink("ns", "job", f"http://127.0.0.1:{server.server_port}",
                          token_file=token, ca_file=None, interval=60)
    for step in range(1, 100):
        sink.beat(Progress(step=step))
    sink.publish(Progress(step=100, loss=0.5), final=True)
    sink.close()
    server.shutdown()

    sent = handler.bodies
    assert 1 <= len(sent) <= 2  # the first beat, then (interval not over) only the final one
    last = sent[-1]
    assert last["body"] == {"status": {"progress": {"step": 100, "loss": 0.5,
                                                    "metrics": {}, "history": []}}}
    assert last["type"] == "application/merge-patch+json" and last["auth"] == "Bearer secret"
    assert last["path"] == "/apis/kubetrain.io/v1alpha1/namespaces/ns/trainingjobs/job/status"


def test_api_errors_never_reach_training(tmp_path: Path, capsys: Any):
    server, handler = _serve(403)
    token = tmp_path / "token"
    token.write_text("t")
    sink = KubeStatusSink("ns", "job", f"http://127.0.0.1:{server.server_port}",
                          token_file=token, ca_file=None, interval=0.01)
    sink.publish(Progress(step=1), final=True)
    sink.close()
    server.shutdown()
    assert handler.bodies and "status update failed" in capsys.readouterr().err
