"""A trainer pod's credentials: its own job's status.progress, and nothing else."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from operator_helpers import GROUP, PLURAL, VERSION, Jobs, Operator, standin_job, until

from kubetrain.api.status import Progress
from kubetrain.reporting.kube_status import sink_for_pod
from kubetrain_testenv import ControlPlane

pytestmark = pytest.mark.timeout(120)


class As:
    """Raw requests with one bearer token (what the trainer's sink does)."""

    def __init__(self, cp: ControlPlane, token: str) -> None:
        self.server, self.token = cp.server, token
        self.ssl = ssl.create_default_context(cafile=str(cp.ca_file))

    def __call__(self, method: str, path: str, body: Any = None) -> int:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        req.add_header("Content-Type", "application/merge-patch+json")
        try:
            with urllib.request.urlopen(req, context=self.ssl, timeout=10) as answer:
                return answer.status
        except urllib.error.HTTPError as e:
            return e.code


@pytest.fixture
def two_jobs(operator: Operator, jobs: Jobs, tmp_path: Path) -> Jobs:
    for name in ("alpha", "beta"):
        policy = {"heartbeatTimeoutSeconds": 600}
        (tmp_path / name).mkdir()
        jobs.create(standin_job(name, tmp_path / name, "freeze", runPolicy=policy))
    for name in ("alpha", "beta"):
        jobs.wait_phase(name, "Running", 60)
    return jobs


def test_trainer_may_patch_only_its_own_progress(
    kubetrain_installed: ControlPlane, two_jobs: Jobs
):
    ns = two_jobs.namespace
    cp = kubetrain_installed
    trainer = As(cp, cp.service_account_token(ns, "alpha-trainer"))
    job = f"/apis/{GROUP}/{VERSION}/namespaces/{ns}/{PLURAL}"

    def progress(step: int) -> dict[str, Any]:
        return {"status": {"progress": {"step": step, "loss": 0.5}}}

    assert trainer("PATCH", f"{job}/alpha/status", progress(7)) == 200
    assert two_jobs.status("alpha")["progress"]["step"] == 7
    assert trainer("GET", f"{job}/alpha/status") == 200
    # Another job's progress: RBAC (resourceNames) says no.
    assert trainer("PATCH", f"{job}/beta/status", progress(7)) == 403
    # Its own phase, conditions, restarts: the admission policy says no.
    assert trainer("PATCH", f"{job}/alpha/status", {"status": {"phase": "Succeeded"}}) == 403
    conditions = [{"type": "Succeeded", "status": "True", "reason": "x", "message": ""}]
    assert trainer("PATCH", f"{job}/alpha/status", {"status": {"conditions": conditions}}) == 403
    restarts = {"status": {"restarts": 0, "reason": "x"}}
    assert trainer("PATCH", f"{job}/alpha/status", restarts) == 403
    # Its own spec, other resources: nothing.
    assert trainer("PATCH", f"{job}/alpha", {"spec": {"runPolicy": {"suspend": True}}}) == 403
    assert trainer("GET", f"/api/v1/namespaces/{ns}/secrets") == 403
    assert trainer("GET", f"/api/v1/namespaces/{ns}/pods") == 403
    assert trainer("GET", job) == 403
    assert two_jobs.status("alpha")["phase"] == "Running"


def test_status_sink_writes_progress_with_the_trainer_token(
    kubetrain_installed: ControlPlane, two_jobs: Jobs, tmp_path: Path
):
    cp, ns = kubetrain_installed, two_jobs.namespace
    token = tmp_path / "token"
    token.write_text(cp.service_account_token(ns, "beta-trainer"))
    env = {
        "KUBETRAIN_JOB_NAME": "beta", "KUBETRAIN_JOB_NAMESPACE": ns,
        "KUBETRAIN_API_SERVER": cp.server, "KUBETRAIN_TOKEN_FILE": str(token),
        "KUBETRAIN_CA_FILE": str(cp.ca_file),
    }  # fmt: skip
    sink = sink_for_pod(None, env)
    assert sink is not None

    for step in range(1, 50):  # rate-limited: most of these are never sent
        sink.beat(Progress(step=step, loss=1.0 / step))
    sink.publish(Progress(step=50, loss=0.02, samples_per_second=99.0), final=True)
    sink.close()

    progress = until(
        lambda: (p := two_jobs.status("beta").get("progress")) and p["step"] == 50 and p,
        10, "the final progress",
    )  # fmt: skip
    assert progress["loss"] == 0.02 and progress["samplesPerSecond"] == 99.0
    assert sink.sent <= 3
