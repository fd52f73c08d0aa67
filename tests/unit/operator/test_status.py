"""The state machine: observed pods + job + now → status and next action (table-driven)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from operator_builders import NOW, ago, cond, job, pod, spec

from kubetrain.api.status import Condition, TrainingJobStatus
from kubetrain_operator.conditions import set_condition
from kubetrain_operator.decision import Decision, JobState, PodRef
from kubetrain_operator.observe import observe_pod
from kubetrain_operator.status import decide, invalid, restart_backoff
from kubetrain_operator.status_patch import status_patch


def refs(*pairs: tuple[int, int]) -> list[PodRef]:
    """(index, generation) → the PodRefs the builders' pods have."""
    return [PodRef(f"demo-worker-{i}", f"u{g}-{i}") for i, g in pairs]


def dumped(d: Decision) -> dict[str, Any]:
    """The decided status as the API server gets it."""
    return d.status.model_dump(mode="json", by_alias=True)


def summary(d: Decision) -> dict[str, Any]:
    s = dumped(d)
    return {
        "phase": s["phase"], "reason": s["reason"], "restarts": s["restarts"],
        "create": d.create, "delete": d.delete, "requeue": d.requeue_after,
        "events": [(e.type, e.reason) for e in d.events],
    }  # fmt: skip


RUNNING = [cond("Running", since=20)]
CASES = {
    "new job creates every worker": (
        job(), [],
        {"phase": "Starting", "reason": "PodsStarting", "restarts": 0, "create": [0, 1],
         "delete": [], "requeue": 60.0, "events": [("Normal", "PodsStarting")]},
    ),
    "pods not running yet wait for the start timeout": (
        job("Starting", startTime=ago(30)), [pod(0, "Pending", age=30), pod(1, "Running")],
        {"phase": "Starting", "reason": "Same", "restarts": 0, "create": [], "delete": [],
         "requeue": 60.0, "events": []},
    ),
    "all running is Running": (
        job("Starting", startTime=ago(30)), [pod(0), pod(1)],
        {"phase": "Running", "reason": "Training", "restarts": 0, "create": [], "delete": [],
         "requeue": 60.0, "events": [("Normal", "Training")]},
    ),
    "a killed worker restarts the group": (
        job("Running", conditions=RUNNING), [pod(0), pod(1, "Failed", exit_code=137)],
        {"phase": "Restarting", "reason": "WorkerKilled", "restarts": 1, "create": [],
         "delete": refs((0, 0), (1, 0)), "requeue": 10.0,
         "events": [("Warning", "WorkerKilled")]},
    ),
    "an interrupted worker (75) restarts the group": (
        job("Running", conditions=RUNNING), [pod(0, "Failed", exit_code=75), pod(1)],
        {"phase": "Restarting", "reason": "Interrupted", "restarts": 1, "create": [],
         "delete": refs((0, 0), (1, 0)), "requeue": 10.0,
         "events": [("Warning", "Interrupted")]},
    ),
    "an evicted pod restarts the group": (
        job("Running", conditions=RUNNING),
        [pod(0), pod(1, "Failed", pod_reason="Evicted", pod_message="low on memory")],
        {"phase": "Restarting", "reason": "Evicted", "restarts": 1, "create": [],
         "delete": refs((0, 0), (1, 0)), "requeue": 10.0, "events": [("Warning", "Evicted")]},
    ),
    "a deleted pod restarts the group": (
        job("Running", conditions=RUNNING), [pod(0)],
        {"phase": "Restarting", "reason": "PodDeleted", "restarts": 1, "create": [],
         "delete": refs((0, 0)), "requeue": 10.0, "events": [("Warning", "PodDeleted")]},
    ),
    "invalid data (2) fails at once; finished pods stay for their logs": (
        job("Running", conditions=RUNNING),
        [pod(0, "Failed", exit_code=2, exit_message="no column y\n"), pod(1)],
        {"phase": "Failed", "reason": "InvalidData", "restarts": 0, "create": [],
         "delete": refs((1, 0)), "requeue": None, "events": [("Warning", "InvalidData")]},
    ),
    "divergence (3) fails at once": (
        job("Running", conditions=RUNNING), [pod(0, "Failed", exit_code=3), pod(1)],
        {"phase": "Failed", "reason": "Diverged", "restarts": 0, "create": [],
         "delete": refs((1, 0)), "requeue": None, "events": [("Warning", "Diverged")]},
    ),
    "restarts used up fail the job": (
        job("Running", restarts=3, conditions=RUNNING),
        [pod(0, gen=3), pod(1, "Failed", gen=3, exit_code=1)],
        {"phase": "Failed", "reason": "BackoffLimitExceeded", "restarts": 3, "create": [],
         "delete": refs((0, 3)), "requeue": None,
         "events": [("Warning", "BackoffLimitExceeded")]},
    ),
    "the previous generation is deleted before the next starts": (
        job("Restarting", restarts=1, conditions=[cond("Restarting", since=60)]),
        [pod(0, "Failed", exit_code=143), pod(1, deleting=True)],
        {"phase": "Restarting", "reason": "Same", "restarts": 1, "create": [],
         "delete": refs((0, 0)), "requeue": 60.0, "events": []},
    ),
    "restart waits for its back-off": (
        job("Restarting", restarts=2, conditions=[cond("Restarting", since=5)]), [],
        {"phase": "Restarting", "reason": "Same", "restarts": 2, "create": [], "delete": [],
         "requeue": 15.0, "events": []},
    ),
    "restart creates the next generation after the back-off": (
        job("Restarting", restarts=1, conditions=[cond("Restarting", since=11)]), [],
        {"phase": "Starting", "reason": "PodsStarting", "restarts": 1, "create": [0, 1],
         "delete": [], "requeue": 60.0, "events": [("Normal", "PodsStarting")]},
    ),
    "a stale heartbeat is a stall": (
        job("Running", conditions=[cond("Running", since=900)],
            progress={"heartbeatTime": ago(301)}),
        [pod(0), pod(1)],
        {"phase": "Restarting", "reason": "Stalled", "restarts": 1, "create": [],
         "delete": refs((0, 0), (1, 0)), "requeue": 10.0, "events": [("Warning", "Stalled")]},
    ),
    "a fresh heartbeat schedules the next check": (
        job("Running", conditions=[cond("Running", since=900)],
            progress={"heartbeatTime": ago(290)}),
        [pod(0), pod(1)],
        {"phase": "Running", "reason": "Same", "restarts": 0, "create": [], "delete": [],
         "requeue": 10.0, "events": []},
    ),
    "no heartbeat yet counts from the Running transition": (
        job("Running", conditions=[cond("Running", since=301)]), [pod(0), pod(1)],
        {"phase": "Restarting", "reason": "Stalled", "restarts": 1, "create": [],
         "delete": refs((0, 0), (1, 0)), "requeue": 10.0, "events": [("Warning", "Stalled")]},
    ),
    "all succeeded is Succeeded": (
        job("Running", conditions=RUNNING), [pod(0, "Succeeded"), pod(1, "Succeeded")],
        {"phase": "Succeeded", "reason": "Completed", "restarts": 0, "create": [],
         "delete": [], "requeue": None, "events": [("Normal", "Completed")]},
    ),
    "suspend removes every pod": (
        job("Running", spec(runPolicy={"suspend": True}), startTime=ago(50)),
        [pod(0), pod(1)],
        {"phase": "Suspended", "reason": "Suspended", "restarts": 0, "create": [],
         "delete": refs((0, 0), (1, 0)), "requeue": None,
         "events": [("Normal", "Suspended")]},
    ),
    "unsuspend waits for the old pods to be gone": (
        job("Suspended", reason="Suspended"), [pod(0, deleting=True)],
        {"phase": "Pending", "reason": "Resumed", "restarts": 0, "create": [], "delete": [],
         "requeue": 60.0, "events": [("Normal", "Resumed")]},
    ),
    "unsuspend starts the same generation again": (
        job("Suspended", reason="Suspended", restarts=1), [],
        {"phase": "Starting", "reason": "PodsStarting", "restarts": 1, "create": [0, 1],
         "delete": [], "requeue": 60.0,
         "events": [("Normal", "Resumed"), ("Normal", "PodsStarting")]},
    ),
    "the active deadline fails the job": (
        job("Running", spec(runPolicy={"activeDeadlineSeconds": 100}), startTime=ago(100)),
        [pod(0), pod(1)],
        {"phase": "Failed", "reason": "DeadlineExceeded", "restarts": 0, "create": [],
         "delete": refs((0, 0), (1, 0)), "requeue": None,
         "events": [("Warning", "DeadlineExceeded")]},
    ),
    "ttl after finishing deletes the job": (
        job("Succeeded", spec(runPolicy={"ttlSecondsAfterFinished": 60}),
            completionTime=ago(61)),
        [],
        {"phase": "Succeeded", "reason": "Same", "restarts": 0, "create": [], "delete": [],
         "requeue": None, "events": []},
    ),
    "ttl not reached requeues at it": (
        job("Succeeded", spec(runPolicy={"ttlSecondsAfterFinished": 60}),
            completionTime=ago(20)),
        [],
        {"phase": "Succeeded", "reason": "Same", "restarts": 0, "create": [], "delete": [],
         "requeue": 40.0, "events": []},
    ),
    "cleanPodPolicy All deletes finished pods too": (
        job("Succeeded", spec(runPolicy={"cleanPodPolicy": "All"})),
        [pod(0, "Succeeded"), pod(1, "Succeeded")],
        {"phase": "Succeeded", "reason": "Same", "restarts": 0, "create": [],
         "delete": refs((0, 0), (1, 0)), "requeue": None, "events": []},
    ),
    "cleanPodPolicy None keeps a succeeded job's pods": (
        job("Succeeded", spec(runPolicy={"cleanPodPolicy": "None"})),
        [pod(0, "Succeeded"), pod(1)],
        {"phase": "Succeeded", "reason": "Same", "restarts": 0, "create": [], "delete": [],
         "requeue": None, "events": []},
    ),
    "pods newer than the status are adopted, never duplicated": (
        job("Starting", restarts=0), [pod(0, gen=2), pod(1, gen=2)],
        {"phase": "Running", "reason": "Training", "restarts": 2, "create": [], "delete": [],
         "requeue": 60.0, "events": [("Normal", "Training")]},
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_decide(name: str):
    state, pods, expected = CASES[name]
    assert summary(decide(state, pods, NOW)) == expected


def test_ttl_expiry_asks_to_delete_the_job():
    state = job("Failed", spec(runPolicy={"ttlSecondsAfterFinished": 0}), completionTime=ago(1))
    assert decide(state, [], NOW).delete_job


def test_stuck_pods_surface_a_condition_with_the_reason():
    state = job("Starting", startTime=ago(700))
    pods = [pod(0, "Pending", age=700, running=False, unschedulable="0/3 nodes: Insufficient gpu"),
            pod(1)]  # fmt: skip

    d = decide(state, pods, NOW)
    s = dumped(d)

    assert (s["phase"], s["reason"]) == ("Starting", "Unschedulable")
    (stuck,) = [c for c in s["conditions"] if c["type"] == "PodsStarted"]
    assert stuck["status"] == "False" and stuck["reason"] == "Unschedulable"
    assert stuck["message"] == "demo-worker-0 not running after 700s: 0/3 nodes: Insufficient gpu"
    assert [(e.type, e.reason) for e in d.events] == [("Warning", "Unschedulable")]


def test_failure_message_names_the_worker_and_termination_message():
    state = job("Running", conditions=RUNNING)
    d = decide(state, [pod(0), pod(1, "Failed", exit_code=1, exit_message="x\nboom")], NOW)
    assert dumped(d)["message"] == "demo-worker-1 exited with code 1: boom"
    d = decide(state, [pod(0, "Failed", exit_code=2, exit_message="bad column y"), pod(1)], NOW)
    assert dumped(d)["message"] == "bad column y"


def test_status_fields_on_success():
    state = job("Running", conditions=RUNNING, startTime=ago(500))
    d = decide(state, [pod(0, "Succeeded"), pod(1, "Succeeded")], NOW)
    s = dumped(d)
    assert (s["startTime"], s["completionTime"]) == (ago(500), ago(0))
    assert s["replicas"] == {"active": 0, "succeeded": 2, "failed": 0}
    assert {c["type"]: c["status"] for c in s["conditions"]} == {
        "Running": "False", "Succeeded": "True"
    }
    assert s["observedGeneration"] == 1


def test_reconciling_twice_changes_nothing_more():
    state = job("Starting", startTime=ago(30))
    first = decide(state, [pod(0), pod(1)], NOW)
    again = decide(JobState("demo", 1, state.spec, first.status), [pod(0), pod(1)], NOW)
    assert status_patch(first.status, again.status) == {}
    assert again.events == [] and again.create == [] and again.delete == []


def test_invalid_spec_fails_once_and_deletes_pods():
    d = invalid(job(), [pod(0)], "spec.image: required", NOW)
    assert (dumped(d)["phase"], dumped(d)["reason"]) == ("Failed", "InvalidSpec")
    assert d.delete == refs((0, 0)) and d.requeue_after is None
    again = invalid(JobState("demo", 1, None, d.status), [], "spec.image: required", NOW)
    assert again.events == [] and status_patch(d.status, again.status) == {
        "replicas": {"active": 0, "succeeded": 0, "failed": 0}  # the pod is gone now
    }


def test_fixing_an_invalid_spec_starts_the_job():
    state = JobState("demo", 2, spec(), TrainingJobStatus.model_validate(
        {"phase": "Failed", "reason": "InvalidSpec", "observedGeneration": 1}))  # fmt: skip
    d = decide(state, [], NOW)
    assert (dumped(d)["phase"], d.create) == ("Starting", [0, 1])
    assert dumped(d)["completionTime"] is None


def test_set_condition_keeps_transition_time_while_status_holds():
    old = [Condition.model_validate(cond("Running", "True", "Training", since=100))]
    same = set_condition(old, "Running", "True", "Training", "still", NOW)
    flipped = set_condition(old, "Running", "False", "Restarting", "x", NOW)
    assert same[0].last_transition_time == ago(100) and same[0].message == "still"
    assert flipped[0].last_transition_time == ago(0)


@pytest.mark.parametrize(("restarts", "seconds"), [(1, 10), (2, 20), (3, 40), (8, 600)])
def test_restart_backoff_doubles_up_to_ten_minutes(restarts: int, seconds: float):
    assert restart_backoff(spec(), restarts) == seconds


def test_observe_pod_reads_what_a_kubelet_writes():
    raw = {
        "metadata": {"name": "demo-worker-1", "uid": "u", "creationTimestamp": ago(5),
                     "labels": {"kubetrain.io/replica-index": "1",
                                "kubetrain.io/restart-generation": "2"}},
        "status": {"phase": "Failed", "conditions": [],
                   "containerStatuses": [{"name": "trainer", "state": {"terminated": {
                       "exitCode": 137, "reason": "OOMKilled", "message": " killed "}}}]},
    }  # fmt: skip
    p = observe_pod(raw)
    assert (p.index, p.generation, p.phase, p.exit_code, p.exit_reason, p.exit_message) == (
        1, 2, "Failed", 137, "OOMKilled", "killed"
    )
    assert p.created == NOW.replace(second=0) or p.created is not None


def test_crash_message_prefers_the_error_line_of_a_log_tail():
    tail = "Traceback\n  File x\nRuntimeError: NCCL timeout\n=====\n  exitcode  : 1\n=====\n"
    state = job("Running", conditions=RUNNING)
    d = decide(state, [pod(0), pod(1, "Failed", exit_code=1, exit_message=tail)], NOW)
    assert dumped(d)["message"] == "demo-worker-1 exited with code 1: RuntimeError: NCCL timeout"


def test_pods_stuck_terminating_are_force_deleted_once_overdue():
    state = job("Restarting", restarts=1, conditions=[cond("Restarting", since=300)])
    lost = pod(0, "Unknown", deleting=True, grace_ends=NOW - timedelta(seconds=61))
    ending = pod(1, "Running", deleting=True, grace_ends=NOW - timedelta(seconds=5))

    d = decide(state, [lost, ending], NOW)

    assert d.force_delete == refs((0, 0)) and d.delete == [] and d.create == []
