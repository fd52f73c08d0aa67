"""Failure handling, deletion and operator restarts, with the stand-in trainer (no torch)."""

from __future__ import annotations

from pathlib import Path

import pytest
from operator_helpers import Jobs, Operator, standin_job

pytestmark = pytest.mark.timeout(120)


def conditions(status: dict) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status.get("conditions", [])}


def test_standin_job_succeeds_with_children_owned(operator: Operator, jobs: Jobs, tmp_path: Path):
    run = tmp_path / "run"
    run.mkdir()
    jobs.create(standin_job("ok", run, "ok", "40"))

    status = jobs.wait_phase("ok", "Succeeded", 60)

    assert status["progress"]["step"] == 40
    assert status["replicas"] == {"active": 0, "succeeded": 2, "failed": 0}
    assert status["restarts"] == 0
    assert status["startTime"] and status["completionTime"]
    assert conditions(status)["Succeeded"] == ("True", "Completed")
    assert conditions(status)["Running"][0] == "False"
    assert status["plan"]["worldSize"] == 2
    reasons = [e.reason for e in jobs.events("ok")]
    assert {"PodsStarting", "Training", "Completed"} <= set(reasons)
    pods = jobs.pods("ok")
    assert sorted(p.metadata.name for p in pods) == ["ok-worker-0", "ok-worker-1"]
    for pod in pods:
        (owner,) = pod.metadata.owner_references
        assert (owner.kind, owner.name, owner.controller) == ("TrainingJob", "ok", True)
