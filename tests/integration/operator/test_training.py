"""The real trainer under the operator: examples/cpu-cluster.yaml (2 nodes × 1 process, gloo)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from operator_helpers import Jobs, Operator, cpu_job, kill_pod_processes, kubectl, until

from kubetrain_testenv import ControlPlane

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]


STEPS = 160


def step(status: dict[str, Any]) -> int:
    return int((status.get("progress") or {}).get("step") or 0)


def checkpoint_step(status: dict[str, Any]) -> int:
    return int(((status.get("progress") or {}).get("lastCheckpoint") or {}).get("step") or 0)


def job(name: str, tmp_path: Path, **spec: Any) -> dict[str, Any]:
    run = tmp_path / "run"
    run.mkdir()
    policy = {"restartBackoffSeconds": 1, "heartbeatTimeoutSeconds": 60}
    # Shorter than the example (300 steps), still long enough to interrupt mid-run.
    training = {"maxSteps": STEPS, "eval": {"everySteps": 40}}
    return cpu_job(name, run, runPolicy=policy, training=training, checkpoint={"everySteps": 30})


def test_cpu_example_succeeds_with_live_progress(
    kubetrain_installed: ControlPlane, operator: Operator, jobs: Jobs, tmp_path: Path
):
    manifest = tmp_path / "cpu-cluster.yaml"
    manifest.write_text(yaml.safe_dump(job("cpu-ddp", tmp_path)))
    kubectl(kubetrain_installed, "apply", "-n", jobs.namespace, "-f", str(manifest))
    running: list[dict[str, Any]] = []
    table: list[str] = []

    def watch(status: dict[str, Any]) -> None:
        if status.get("phase") == "Running" and status.get("progress"):
            running.append(status["progress"])
            if len(table) < 1 and step(status) > 0:
                table.append(kubectl(kubetrain_installed, "get", "tj", "-n", jobs.namespace))

    status = jobs.wait_phase("cpu-ddp", ("Succeeded", "Failed"), 180, seen=watch)

    assert status["phase"] == "Succeeded", status
    steps = sorted({p["step"] for p in running})
    losses = {p.get("loss") for p in running if p.get("loss") is not None}
    assert len(steps) >= 3 and len(losses) >= 2, f"progress did not move while running: {steps}"
    final = status["progress"]
    assert final["step"] == final["totalSteps"] == STEPS
    assert final["loss"] > 0 and final["samplesPerSecond"] > 0
    assert final["lastCheckpoint"]["step"] == STEPS
    assert final["heartbeatTime"] and final["history"]
    assert status["replicas"]["succeeded"] == 2 and status["restarts"] == 0
    assert table and "cpu-ddp" in table[0], table


def test_killed_worker_restarts_group_and_resumes_from_checkpoint(
    operator: Operator, jobs: Jobs, tmp_path: Path
):
    jobs.create(job("resume", tmp_path))
    status = jobs.wait_phase("resume", "Running", 120)
    status = until(
        lambda: (s := jobs.status("resume")) and checkpoint_step(s) >= 30 and s, 120,
        "a first checkpoint",
    )  # fmt: skip
    saved = checkpoint_step(status)

    assert kill_pod_processes(jobs.namespace, "resume-worker-1") > 0
    after: list[dict[str, Any]] = []
    phases: list[str] = []

    def watch(s: dict[str, Any]) -> None:
        phases.append(s.get("phase", ""))
        if s.get("restarts") == 1:
            after.append(s)

    status = jobs.wait_phase("resume", ("Succeeded", "Failed"), 200, seen=watch)

    assert status["phase"] == "Succeeded", status
    assert status["restarts"] == 1
    assert "Restarting" in phases
    assert min(step(s) for s in after) >= saved, "the step went back before the checkpoint"
    assert status["progress"]["step"] == STEPS
    restart = [e for e in jobs.events("resume") if e.reason in ("WorkerKilled", "WorkerCrashed")]
    assert restart and restart[0].type == "Warning"
    labels = {p.metadata.labels["kubetrain.io/restart-generation"] for p in jobs.pods("resume")}
    assert labels <= {"1"}


def test_suspend_then_resume_continues_from_checkpoint(
    operator: Operator, jobs: Jobs, tmp_path: Path
):
    jobs.create(job("pausable", tmp_path))
    jobs.wait_phase("pausable", "Running", 120)
    until(lambda: checkpoint_step(jobs.status("pausable")) >= 30, 120, "a first checkpoint")

    jobs.patch_spec("pausable", {"runPolicy": {"suspend": True}})
    status = jobs.wait_phase("pausable", "Suspended", 60)
    until(lambda: not jobs.pods("pausable"), 90, "the pods to be removed")
    saved = checkpoint_step(jobs.status("pausable"))
    assert saved >= 30 and status["progress"]

    jobs.patch_spec("pausable", {"runPolicy": {"suspend": False}})
    resumed: list[int] = []
    status = jobs.wait_phase(
        "pausable", ("Succeeded", "Failed"), 180,
        seen=lambda s: s.get("phase") == "Running" and resumed.append(step(s)),
    )  # fmt: skip

    assert status["phase"] == "Succeeded", status
    assert status["restarts"] == 0
    assert resumed and min(resumed) >= saved
    reasons = [e.reason for e in jobs.events("pausable")]
    assert "Suspended" in reasons and "Resumed" in reasons
