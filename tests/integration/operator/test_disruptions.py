"""Disruptions on the real API server: an eviction restarts the group without using the restart
budget; a job deleted and re-created under the same name at once costs no restart; a chosen
ServiceAccount runs the pods and may report this job's progress only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kubernetes.client.exceptions import ApiException
from operator_helpers import GROUP, PLURAL, VERSION, Jobs, Operator, standin_job, until
from test_trainer_credentials import As

from kubetrain_testenv import ControlPlane

pytestmark = pytest.mark.timeout(180)


def evict(jobs: Jobs, pod: str) -> None:
    """The Eviction API (what a drain, the descheduler or a PDB-aware tool uses): the API server
    marks the pod with DisruptionTarget and deletes it with its grace period."""
    body = {"apiVersion": "policy/v1", "kind": "Eviction",
            "metadata": {"name": pod, "namespace": jobs.namespace}}  # fmt: skip
    jobs.core.create_namespaced_pod_eviction(pod, jobs.namespace, body)


def test_eviction_restarts_without_using_the_budget(
    operator: Operator, jobs: Jobs, tmp_path: Path
):
    """maxRestarts 0: one crash would fail the job; an eviction must not."""
    run = tmp_path / "run"
    run.mkdir()
    policy = {"maxRestarts": 0, "restartBackoffSeconds": 1}
    template = {"terminationGracePeriodSeconds": 7}
    jobs.create(standin_job("evicted", run, "ok", "400", runPolicy=policy, template=template))
    jobs.wait_phase("evicted", "Running", 60)
    until(lambda: (jobs.status("evicted").get("progress") or {}).get("lastCheckpoint"), 60,
          "a first checkpoint")  # fmt: skip
    (pod,) = [p for p in jobs.pods("evicted") if p.metadata.name == "evicted-worker-1"]
    assert pod.spec.termination_grace_period_seconds == 7
    env = {e.name: e.value for e in pod.spec.containers[0].env}
    assert env["PET_SHUTDOWN_TIMEOUT"] == env["KUBETRAIN_GRACE_SECONDS"] == "7"

    evict(jobs, "evicted-worker-1")
    status = jobs.wait_phase("evicted", "Succeeded", 120)

    assert (status["restarts"], status["disruptions"]) == (1, 1)
    assert status["progress"]["step"] == 400
    events = {e.reason: e.message for e in jobs.events("evicted")}
    # Seen as the API server's DisruptionTarget reason, or (when the pod was gone before the
    # operator looked) as a deleted pod: both are disruptions.
    disruption = events.get("EvictionByEvictionAPI") or events.get("PodDeleted") or ""
    assert disruption.startswith("Restarting:"), events
    assert "BackoffLimitExceeded" not in events


def test_a_crash_still_uses_the_budget(operator: Operator, jobs: Jobs, tmp_path: Path):
    policy = {"maxRestarts": 0, "heartbeatTimeoutSeconds": 10}
    jobs.create(standin_job("crashy", tmp_path, "freeze", runPolicy=policy))

    status = jobs.wait_phase("crashy", "Failed", 90)

    assert (status["reason"], status["restarts"], status.get("disruptions", 0)) == (
        "BackoffLimitExceeded", 0, 0)  # fmt: skip


def test_delete_and_recreate_at_once_costs_no_restart(
    operator: Operator, jobs: Jobs, tmp_path: Path
):
    """The old job's pods still exist (same names, other owner) when the new job is first
    reconciled: the new one waits for them instead of adopting them."""
    run = tmp_path / "run"
    run.mkdir()
    jobs.create(standin_job("again", run, "freeze", runPolicy={"heartbeatTimeoutSeconds": 600}))
    jobs.wait_phase("again", "Running", 60)
    old_uid = jobs.get("again")["metadata"]["uid"]

    jobs.delete("again")
    for _ in range(200):  # the object may still be there for a moment (no finalizer)
        try:
            new = jobs.create(standin_job("again", run, "ok", "60"))
            break
        except ApiException as e:
            if e.status != 409:
                raise
    else:
        raise AssertionError("could not re-create the job")
    new_uid = new["metadata"]["uid"]
    assert new_uid != old_uid
    restarts: list[int] = []
    status = jobs.wait_phase("again", "Succeeded", 120,
                             seen=lambda s: restarts.append(s.get("restarts", 0)))  # fmt: skip

    assert (status["restarts"], status.get("disruptions", 0)) == (0, 0)
    assert max(restarts) == 0
    assert status["progress"]["step"] == 60
    reasons = {e.reason for e in jobs.events("again") if e.involved_object.uid == new_uid}
    assert not reasons & {"PodDeleted", "Interrupted", "WorkerCrashed", "Stalled"}, reasons
    owners = {p.metadata.owner_references[0].uid for p in jobs.pods("again")}
    assert owners == {new_uid}


def test_a_chosen_service_account_reports_only_the_progress_of_jobs_naming_it(
    kubetrain_installed: ControlPlane, operator: Operator, jobs: Jobs, tmp_path: Path
):
    ns, cp = jobs.namespace, kubetrain_installed
    jobs.core.create_namespaced_service_account(ns, {"metadata": {"name": "reader"}})
    policy = {"heartbeatTimeoutSeconds": 600}
    for name, template in (("mine", {"serviceAccountName": "reader"}), ("theirs", {})):
        (tmp_path / name).mkdir()
        jobs.create(standin_job(name, tmp_path / name, "freeze", runPolicy=policy,
                                template=template))  # fmt: skip
    for name in ("mine", "theirs"):
        jobs.wait_phase(name, "Running", 60)
    assert {p.spec.service_account_name for p in jobs.pods("mine")} == {"reader"}
    assert {p.spec.service_account_name for p in jobs.pods("theirs")} == {"theirs-trainer"}
    # The stand-in reports its first progress with the pod's (the chosen account's) token.
    until(lambda: "progress" in jobs.status("mine"), 30, "progress written with reader's token")

    reader = As(cp, cp.service_account_token(ns, "reader"))
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{ns}/{PLURAL}"
    progress = {"status": {"progress": {"step": 5, "loss": 0.5}}}
    assert reader("PATCH", f"{path}/mine/status", progress) == 200
    assert jobs.status("mine")["progress"]["step"] == 5
    # Everything else: the admission policy (own phase) and RBAC (other jobs, the rest).
    assert reader("PATCH", f"{path}/mine/status", {"status": {"phase": "Succeeded"}}) == 403
    assert reader("PATCH", f"{path}/mine/status", {"status": {"restarts": 9}}) == 403
    assert reader("PATCH", f"{path}/theirs/status", progress) == 403
    assert reader("PATCH", f"{path}/mine", {"spec": {"runPolicy": {"suspend": True}}}) == 403
    assert reader("GET", f"/api/v1/namespaces/{ns}/secrets") == 403
    assert jobs.status("mine")["phase"] == "Running"


def test_another_jobs_account_is_refused_by_the_api_server(
    kubetrain_installed: ControlPlane, jobs: Jobs, tmp_path: Path
):
    job = standin_job("thief", tmp_path, "ok", "1",
                      template={"serviceAccountName": "victim-trainer"})  # fmt: skip
    with pytest.raises(ApiException) as e:
        jobs.create(job)
    assert e.value.status == 422
    assert "per-job accounts of kubetrain" in e.value.body


def test_a_listed_exit_code_fails_the_job_at_once(operator: Operator, jobs: Jobs, tmp_path: Path):
    job = standin_job("listed", tmp_path, "ok", "1", runPolicy={"failOnExitCodes": [42]})
    command = ["python", "-c", "import sys; sys.exit(42)"]
    job["metadata"]["annotations"]["kubetrain.io/command"] = json.dumps(command)
    jobs.create(job)

    status = jobs.wait_phase("listed", "Failed", 60)

    assert (status["reason"], status["restarts"]) == ("ExitCodeRule", 0)
    assert "exited with code 42 (runPolicy.failOnExitCodes)" in status["message"]


def test_exit_code_75_is_refused_as_a_failure_rule(
    kubetrain_installed: ControlPlane, jobs: Jobs, tmp_path: Path
):
    with pytest.raises(ApiException) as e:
        jobs.create(standin_job("rule75", tmp_path, "ok", "1",
                                runPolicy={"failOnExitCodes": [1, 75]}))  # fmt: skip
    assert e.value.status == 422 and "75 is the trainer's stop after SIGTERM" in e.value.body
