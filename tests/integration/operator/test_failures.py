"""Failure handling, deletion and operator restarts, with the stand-in trainer (no torch)."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes import client
from operator_helpers import Jobs, Operator, standin_job, until

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


def test_invalid_data_exit_fails_at_once_with_message(
    operator: Operator, jobs: Jobs, tmp_path: Path
):
    jobs.create(standin_job("bad", tmp_path, "invalid", "column 'y' not found in train.csv"))

    status = jobs.wait_phase("bad", "Failed", 60)

    assert (status["reason"], status["restarts"]) == ("InvalidData", 0)
    assert status["message"] == "column 'y' not found in train.csv"
    assert conditions(status)["Failed"] == ("True", "InvalidData")
    warnings = [e for e in jobs.events("bad") if e.type == "Warning"]
    assert any("column 'y' not found" in e.message for e in warnings)
    # Nothing keeps running (and holding GPUs) for a failed job.
    until(lambda: all(p.status.phase != "Running" for p in jobs.pods("bad")), 30, "no pod running")


def test_invalid_spec_fails_with_reason(operator: Operator, jobs: Jobs, tmp_path: Path):
    job = standin_job("reserved", tmp_path, "ok", "10")
    job["spec"]["template"]["env"] = [{"name": "PET_NNODES", "value": "7"}]
    jobs.create(job)

    status = jobs.wait_phase("reserved", "Failed", 30)

    assert status["reason"] == "InvalidSpec"
    assert "spec.template.env[0].name: PET_NNODES is set by the operator" in status["message"]
    assert jobs.pods("reserved") == []


def test_frozen_trainer_is_restarted_as_stalled(operator: Operator, jobs: Jobs, tmp_path: Path):
    jobs.create(standin_job(
        "frozen", tmp_path, "freeze",
        runPolicy={"heartbeatTimeoutSeconds": 10, "restartBackoffSeconds": 1, "maxRestarts": 1},
    ))  # fmt: skip

    status = jobs.wait_phase("frozen", "Failed", 90)

    # The Restarting phase lasts about a second here (back-off 1 s): the Events keep it.
    events = {e.reason: e for e in jobs.events("frozen")}
    assert events["Stalled"].type == "Warning"
    assert events["Stalled"].message.startswith("Restarting: no trainer heartbeat for 1")
    assert (status["reason"], status["restarts"]) == ("BackoffLimitExceeded", 1)
    assert "no trainer heartbeat" in status["message"]
    assert "PodsStarting" in events


def test_deleting_the_job_removes_every_child(operator: Operator, jobs: Jobs, tmp_path: Path):
    policy = {"heartbeatTimeoutSeconds": 600}
    jobs.create(standin_job("doomed", tmp_path, "freeze", runPolicy=policy))
    jobs.wait_phase("doomed", "Running", 60)
    operator.kill()  # deletion must not depend on the operator (no finalizer)
    assert jobs.get("doomed")["metadata"].get("finalizers") in (None, [])

    jobs.delete("doomed")

    core, rbac = jobs.core, client.RbacAuthorizationV1Api(jobs.core.api_client)
    listers = [
        core.list_namespaced_pod, core.list_namespaced_service, core.list_namespaced_config_map,
        core.list_namespaced_service_account, rbac.list_namespaced_role,
        rbac.list_namespaced_role_binding,
    ]

    def children() -> list[str]:
        selector = "kubetrain.io/job-name=doomed"
        return [
            o.metadata.name for lister in listers
            for o in lister(jobs.namespace, label_selector=selector).items
        ]  # fmt: skip

    until(lambda: not jobs.exists("doomed") and not children(), 60, "every child to be gone")


def test_operator_restart_mid_run_creates_no_duplicates(
    operator: Operator, jobs: Jobs, tmp_path: Path
):
    run = tmp_path / "run"
    run.mkdir()
    jobs.create(standin_job("steady", run, "ok", "300", runPolicy={"cleanPodPolicy": "None"}))
    jobs.wait_phase("steady", "Running", 60)
    before = {p.metadata.name: p.metadata.uid for p in jobs.pods("steady")}
    step_before = jobs.status("steady").get("progress", {}).get("step", 0)

    operator.kill()
    operator.start()
    status = jobs.wait_phase("steady", "Succeeded", 90)

    after = {p.metadata.name: p.metadata.uid for p in jobs.pods("steady")}
    assert after == before, "pods were re-created after the operator restarted"
    assert status["restarts"] == 0
    assert status["progress"]["step"] == 300 > step_before
    assert status["startTime"]  # kept from before the restart
    text = operator.metrics()
    assert 'kubetrain_jobs{phase="Succeeded"} 1.0' in text
    assert "kubetrain_reconcile_duration_seconds_count" in text
    assert operator.healthy()


def test_api_errors_show_in_status_and_clear(operator: Operator, jobs: Jobs, tmp_path: Path):
    quota = {"metadata": {"name": "no-pods"}, "spec": {"hard": {"pods": "0"}}}
    jobs.core.create_namespaced_resource_quota(jobs.namespace, quota)
    until(lambda: jobs.core.read_namespaced_resource_quota("no-pods", jobs.namespace).status.hard,
          30, "the quota to be counted")  # fmt: skip
    run = tmp_path / "run"
    run.mkdir()
    jobs.create(standin_job("quota", run, "ok", "10"))

    def error() -> dict | None:
        found = [c for c in jobs.status("quota").get("conditions", [])
                 if c["type"] == "ReconcileError" and c["status"] == "True"]  # fmt: skip
        return found[0] if found else None

    stuck = until(error, 60, "a ReconcileError condition")
    assert stuck["reason"] == "APIError" and "exceeded quota" in stuck["message"]

    jobs.core.delete_namespaced_resource_quota("no-pods", jobs.namespace)
    status = jobs.wait_phase("quota", "Succeeded", 120)

    assert conditions(status)["ReconcileError"] == ("False", "Reconciled")
