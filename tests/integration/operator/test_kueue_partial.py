"""Kueue partial admission against real Kueue and the real API server: an elastic job
(nodes 2, minNodes 1) in a queue with quota for one worker is admitted with one, runs its group
on one node (world size 1) and succeeds; a fixed-size job in the same queue stays queued."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kueue_queues import Queues
from operator_helpers import Jobs, Operator, cpu_job, standin_job, until

pytestmark = pytest.mark.timeout(300)
ELASTIC = {"nodes": 2, "minNodes": 1, "maxNodes": 2}
# cpu_job's workers ask for 400m each: quota for one of them, never two.
ONE_WORKER = "500m"


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    conditions = (obj.get("status") or obj).get("conditions") or []
    return next((c for c in conditions if c["type"] == type_), {})


def live_pods(jobs: Jobs, name: str) -> list[client.V1Pod]:
    return [p for p in jobs.pods(name) if not p.metadata.deletion_timestamp]


def test_an_elastic_job_admitted_with_one_of_two_workers_runs_on_one_node(
    operator: Operator, jobs: Jobs, queues: Queues, tmp_path: Path
):
    queues.create(cpu=ONE_WORKER)
    (tmp_path / "elastic").mkdir()
    jobs.create(standin_job("elastic", tmp_path / "elastic", "ok", "200", queueName="team",
                            parallelism=ELASTIC))  # fmt: skip

    running = jobs.wait_phase("elastic", "Running", 90)

    workload = queues.workload("elastic")
    (pod_set,) = workload["spec"]["podSets"]
    assert (pod_set["count"], pod_set["minCount"]) == (2, 1)
    (assignment,) = workload["status"]["admission"]["podSetAssignments"]
    assert assignment["count"] == 1  # Kueue's partial admission: quota for one worker
    admitted = condition(running, "Admitted")
    assert (admitted["status"], admitted["reason"]) == ("True", "PartiallyAdmitted")
    assert "with 1 of 2 worker(s) (partial admission)" in admitted["message"]
    assert running["plan"]["worldSize"] == 1
    (pod,) = live_pods(jobs, "elastic")
    env = {e.name: e.value for e in pod.spec.containers[0].env}
    assert (env["PET_NNODES"], pod.metadata.labels["kubetrain.io/nodes"]) == ("1", "1")

    status = jobs.wait_phase("elastic", "Succeeded", 120)
    assert (status["restarts"], status["disruptions"]) == (0, 0)
    assert status["progress"]["step"] == 200
    assert status["plan"]["worldSize"] == 1
    assert len(jobs.pods("elastic")) == 1  # never a second worker
    until(lambda: queues.workload_condition("elastic", "Finished").get("status") == "True",
          30, "the Workload to be Finished")  # fmt: skip


def test_a_fixed_size_job_in_the_same_queue_waits_for_all_its_workers(
    operator: Operator, jobs: Jobs, queues: Queues, tmp_path: Path
):
    queues.create(cpu=ONE_WORKER)
    jobs.create(standin_job("fixed", tmp_path, "ok", "20", queueName="team"))
    status = jobs.wait_phase("fixed", "Queued", 60)
    until(lambda: queues.workload_condition("fixed", "QuotaReserved").get("reason")
          == "Pending", 30, "Kueue to keep the fixed-size job waiting")  # fmt: skip
    (pod_set,) = queues.workload("fixed")["spec"]["podSets"]
    assert "minCount" not in pod_set
    status = until(lambda: (s := jobs.status("fixed")).get("reason") == "Pending" and s, 30,
                   "the job to carry Kueue's reason")  # fmt: skip
    assert condition(status, "Admitted")["status"] == "False"
    assert jobs.pods("fixed") == []


def test_a_preempted_elastic_job_comes_back_smaller_and_resumes_from_its_checkpoint(
    operator: Operator, jobs: Jobs, queues: Queues, tmp_path: Path
):
    """Quota for two workers: the elastic job runs on 2; a higher-priority 1-worker job
    preempts it; it checkpoints, requeues, is admitted again with the one worker's quota that
    is left, resumes from its checkpoint at world size 1 (no restart used) and succeeds."""
    queues.create(cpu="1")
    low, high = queues.priority_class(100), queues.priority_class(10_000)
    for name in ("elastic", "urgent"):
        (tmp_path / name).mkdir()
    jobs.create(standin_job("elastic", tmp_path / "elastic", "ok", "600", queueName="team",
                            parallelism=ELASTIC, runPolicy={"maxRestarts": 0},
                            template={"priorityClassName": low}))  # fmt: skip
    full = jobs.wait_phase("elastic", "Running", 90)
    assert condition(full, "Admitted")["reason"] == "Admitted"
    assert full["plan"]["worldSize"] == 2 and len(live_pods(jobs, "elastic")) == 2
    checkpoint = until(
        lambda: ((jobs.status("elastic").get("progress") or {}).get("lastCheckpoint") or {}).get(
            "step"), 60, "a first checkpoint of the elastic job")  # fmt: skip

    steps: list[tuple[str, str, int]] = []  # (phase, reason, progress step) as polled

    def seen(status: dict[str, Any]) -> None:
        steps.append((status.get("phase", ""), status.get("reason", ""),
                      int((status.get("progress") or {}).get("step") or 0)))  # fmt: skip

    # Long enough to still hold its worker's quota when the elastic job is admitted again.
    jobs.create(standin_job("urgent", tmp_path / "urgent", "ok", "400", queueName="team",
                            parallelism={"nodes": 1}, template={"priorityClassName": high}))
    jobs.wait_phase("elastic", "Queued", 60, seen=seen)
    smaller = until(lambda: (s := jobs.status("elastic")).get("phase") == "Running"
                    and condition(s, "Admitted").get("reason") == "PartiallyAdmitted" and s,
                    90, "the elastic job back, admitted with one worker")  # fmt: skip
    # Both hold quota at once: one worker each.
    assert jobs.status("urgent")["phase"] in ("Starting", "Running")
    assert smaller["plan"]["worldSize"] == 1
    (pod,) = live_pods(jobs, "elastic")
    env = {e.name: e.value for e in pod.spec.containers[0].env}
    assert (env["PET_NNODES"], env["KUBETRAIN_RESTART_GENERATION"]) == ("1", "1")

    status = jobs.wait_phase("elastic", "Succeeded", 120, seen=seen)
    jobs.wait_phase("urgent", "Succeeded", 60)
    assert ("Queued", "Preempted") in [(p, r) for p, r, _ in steps], steps[:5]
    assert (status["restarts"], status["disruptions"]) == (1, 1)  # the preemption
    assert status["progress"]["step"] == 600
    assert status["plan"]["worldSize"] == 1
    # Resumed, not started over: back from the queue no step before the last checkpoint
    # taken before the preemption is reported again.
    queued_at = next(i for i, (phase, _, _) in enumerate(steps) if phase == "Queued")
    before = max([checkpoint] + [step for _, _, step in steps[:queued_at]])
    after = [step for phase, _, step in steps[queued_at:] if phase != "Queued" and step]
    assert after and min(after) >= (before // 10) * 10 >= checkpoint, (before, after[:5])


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_real_trainer_runs_a_partially_admitted_job_at_world_size_one(
    operator: Operator, jobs: Jobs, queues: Queues, tmp_path: Path
):
    """examples/cpu-cluster.yaml (DDP over gloo) declared on 2 nodes, admitted with 1: the
    trainer reads its spec (2 nodes) from the ConfigMap and the size from its command line,
    trains at world size 1 and succeeds."""
    queues.create(cpu=ONE_WORKER)
    jobs.create(cpu_job("real", tmp_path, queueName="team", parallelism=ELASTIC,
                        training={"maxSteps": 40, "eval": {"everySteps": 20}}))  # fmt: skip
    status = jobs.wait_phase("real", ("Succeeded", "Failed"), 400)
    assert status["phase"] == "Succeeded", status
    assert condition(status, "Admitted")["reason"] == "PartiallyAdmitted"
    assert status["plan"]["worldSize"] == 1
    assert status["progress"]["step"] == 40
    (pod,) = jobs.pods("real")
    assert pod.spec.containers[0].command[-2:] == ["--set", "spec.parallelism.nodes=1"]
