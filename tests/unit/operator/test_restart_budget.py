"""Which pod endings use the restart budget (failures) and which do not (disruptions), pods of
an earlier job of the same name, and deadlines while Queued (table-driven, pure)."""

from __future__ import annotations

from typing import Any

import pytest
from operator_builders import NOW, ago, cond, job, pod, spec

from kubetrain.api.status import TrainingJobStatus
from kubetrain_operator.decision import Decision, JobState, PodRef
from kubetrain_operator.observe import ObservedPod, observe_pod
from kubetrain_operator.status import decide

RUNNING = [cond("Running", since=20)]
PREEMPTED = ("PreemptionByScheduler", "preempted by a higher-priority pod")
EVICTED = ("EvictionByEvictionAPI", "Eviction API: evicting")


def summary(d: Decision) -> dict[str, Any]:
    s = d.status
    return {
        "phase": s.phase, "reason": s.reason, "restarts": s.restarts,
        "disruptions": s.disruptions, "requeue": d.requeue_after,
    }  # fmt: skip


def restart(reason: str, restarts: int, disruptions: int, requeue: float) -> dict[str, Any]:
    return {"phase": "Restarting", "reason": reason, "restarts": restarts,
            "disruptions": disruptions, "requeue": requeue}  # fmt: skip


def running(**status: Any) -> JobState:
    return job("Running", conditions=RUNNING, **status)


# (job, pods, expected): every way a worker pod can end, and the counter it uses.
CASES: dict[str, tuple[JobState, list[ObservedPod], dict[str, Any]]] = {
    # Failures: the budget.
    "a crash (exit 1) is a failure": (
        running(), [pod(0), pod(1, "Failed", exit_code=1)], restart("WorkerCrashed", 1, 0, 10.0),
    ),
    "an unknown exit code is a failure": (
        running(), [pod(0, "Failed", exit_code=42), pod(1)], restart("WorkerCrashed", 1, 0, 10.0),
    ),
    "a kill without a disruption condition is a failure": (
        running(), [pod(0), pod(1, "Failed", exit_code=137)], restart("WorkerKilled", 1, 0, 10.0),
    ),
    "out of memory is a failure": (
        running(), [pod(0, "Failed", exit_code=137, exit_reason="OOMKilled"), pod(1)],
        restart("OOMKilled", 1, 0, 10.0),
    ),
    "a stall is a failure": (
        job("Running", conditions=[cond("Running", since=900)],
            progress={"heartbeatTime": ago(301)}),
        [pod(0), pod(1)], restart("Stalled", 1, 0, 10.0),
    ),
    "a failed pod without exit code or known reason is a failure": (
        running(), [pod(0), pod(1, "Failed", pod_reason="Weird")], restart("Weird", 1, 0, 10.0),
    ),
    # Disruptions: counted apart, never the budget.
    "exit 75 (stopped by SIGTERM after a checkpoint) is a disruption": (
        running(), [pod(0, "Failed", exit_code=75), pod(1)], restart("Interrupted", 1, 1, 10.0),
    ),
    "a DisruptionTarget condition makes any exit a disruption": (
        running(), [pod(0), pod(1, "Failed", exit_code=137, disruption=PREEMPTED)],
        restart("PreemptionByScheduler", 1, 1, 10.0),
    ),
    "a pod being evicted (still stopping) is a disruption": (
        running(), [pod(0), pod(1, deleting=True, disruption=EVICTED)],
        restart("EvictionByEvictionAPI", 1, 1, 10.0),
    ),
    "the kubelet's eviction is a disruption": (
        running(), [pod(0), pod(1, "Failed", pod_reason="Evicted", pod_message="low memory")],
        restart("Evicted", 1, 1, 10.0),
    ),
    "a node shutdown is a disruption": (
        running(), [pod(0), pod(1, "Failed", pod_reason="Terminated")],
        restart("Terminated", 1, 1, 10.0),
    ),
    "a lost node is a disruption": (
        running(), [pod(0, "Unknown"), pod(1)], restart("NodeLost", 1, 1, 10.0),
    ),
    "a pod deleted by hand is a disruption": (
        running(), [pod(0)], restart("PodDeleted", 1, 1, 10.0),
    ),
    # Which one counts when several pods end at once.
    "a peer's crash after a preemption is the preemption's": (
        running(),
        [pod(0, "Failed", exit_code=1), pod(1, "Failed", exit_code=137, disruption=PREEMPTED)],
        restart("PreemptionByScheduler", 1, 1, 10.0),
    ),
    "the trainer's verdict wins over a disruption": (
        running(), [pod(0, "Failed", exit_code=75), pod(1, "Failed", exit_code=2)],
        {"phase": "Failed", "reason": "InvalidData", "restarts": 0, "disruptions": 0,
         "requeue": None},
    ),
    "a crash on exit 3 despite a DisruptionTarget is still Diverged": (
        running(), [pod(0, "Failed", exit_code=3, disruption=PREEMPTED), pod(1)],
        {"phase": "Failed", "reason": "Diverged", "restarts": 0, "disruptions": 0,
         "requeue": None},
    ),
    # The budget.
    "failures used up fail the job": (
        running(restarts=3), [pod(0, gen=3), pod(1, "Failed", gen=3, exit_code=1)],
        {"phase": "Failed", "reason": "BackoffLimitExceeded", "restarts": 3, "disruptions": 0,
         "requeue": None},
    ),
    "a disruption restarts even with the failures used up": (
        running(restarts=3), [pod(0, gen=3), pod(1, "Failed", gen=3, exit_code=75)],
        restart("Interrupted", 4, 1, 40.0),
    ),
    "maxRestarts 0 still survives a preemption": (
        job("Running", spec(runPolicy={"maxRestarts": 0}), conditions=RUNNING),
        [pod(0), pod(1, "Failed", exit_code=143, disruption=PREEMPTED)],
        restart("PreemptionByScheduler", 1, 1, 10.0),
    ),
    "maxRestarts 0 fails on the first crash": (
        job("Running", spec(runPolicy={"maxRestarts": 0}), conditions=RUNNING),
        [pod(0), pod(1, "Failed", exit_code=1)],
        {"phase": "Failed", "reason": "BackoffLimitExceeded", "restarts": 0, "disruptions": 0,
         "requeue": None},
    ),
    "earlier disruptions leave the budget whole": (
        running(restarts=5, disruptions=3),
        [pod(0, gen=5), pod(1, "Failed", gen=5, exit_code=1)],
        restart("WorkerCrashed", 6, 3, 40.0),
    ),
    "the budget counts failures across disruptions": (
        running(restarts=6, disruptions=3),
        [pod(0, gen=6), pod(1, "Failed", gen=6, exit_code=1)],
        {"phase": "Failed", "reason": "BackoffLimitExceeded", "restarts": 6, "disruptions": 3,
         "requeue": None},
    ),
    "disruptions do not grow the back-off": (
        running(restarts=4, disruptions=4), [pod(0, gen=4), pod(1, "Failed", gen=4, exit_code=75)],
        restart("Interrupted", 5, 5, 10.0),
    ),
    "the next generation waits the failures' back-off only": (
        job("Restarting", restarts=5, disruptions=4, conditions=[cond("Restarting", since=9)]),
        [], {"phase": "Restarting", "reason": "Same", "restarts": 5, "disruptions": 4,
             "requeue": 1.0},
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_restart_budget(name: str):
    state, pods, expected = CASES[name]
    assert summary(decide(state, pods, NOW)) == expected


def owned(state: JobState, uid: str) -> JobState:
    return JobState(state.name, state.generation, state.spec, state.status, uid)


def test_pods_of_an_earlier_job_of_the_same_name_are_waited_for_not_adopted():
    """Deleted and re-created at once: the old job's pods (another owner UID) still hold the
    names; the new job neither adopts them nor deletes them, and counts no restart."""
    old = [pod(0, owner_uid="old"), pod(1, deleting=True, owner_uid="old")]

    d = decide(owned(job(), "new"), old, NOW)

    assert (d.status.phase, d.status.restarts, d.status.disruptions) == ("Pending", 0, 0)
    assert (d.create, d.delete, d.force_delete) == ([], [], [])
    assert d.status.message == (
        "waiting for pods of an earlier job of this name to go: demo-worker-0, demo-worker-1"
    )
    assert d.requeue_after == 60.0
    assert d.status.replicas.active == 0


def test_the_new_job_starts_once_the_old_pods_are_gone():
    waiting = decide(owned(job(), "new"), [pod(1, owner_uid="old")], NOW)
    state = owned(JobState("demo", 1, spec(), waiting.status), "new")

    d = decide(state, [], NOW)

    assert (d.status.phase, d.create, d.status.restarts) == ("Starting", [0, 1], 0)


def test_a_running_job_ignores_an_old_pod_and_keeps_its_own():
    pods = [pod(0, owner_uid="new"), pod(1, owner_uid="new"), pod(1, owner_uid="old", gen=7)]

    d = decide(owned(running(), "new"), pods, NOW)

    assert (d.status.phase, d.status.restarts, d.delete) == ("Running", 0, [])


def test_queued_time_counts_toward_no_deadline():
    """A job back in Queued (Kueue evicted it) has no startTime: activeDeadlineSeconds starts
    again at the next admission, and it has no pods whose start could time out."""
    policy = {"activeDeadlineSeconds": 100, "startTimeoutSeconds": 10}
    state = job("Queued", spec(runPolicy=policy), startTime=ago(5000))

    d = decide(state, [], NOW)

    assert d.status.phase == "Queued"
    assert d.status.start_time is None
    assert d.create == [] and not any(e.reason == "DeadlineExceeded" for e in d.events)
    assert not any(c.type == "PodsStarted" for c in d.status.conditions)


def test_the_deadline_still_counts_while_running():
    state = job("Running", spec(runPolicy={"activeDeadlineSeconds": 100}), startTime=ago(100),
                conditions=RUNNING)  # fmt: skip

    assert decide(state, [pod(0), pod(1)], NOW).status.reason == "DeadlineExceeded"


def test_old_status_without_disruptions_reads_as_all_failures():
    status = TrainingJobStatus.model_validate({"phase": "Running", "restarts": 2})
    assert status.disruptions == 0


def test_observe_reads_the_owner_and_the_disruption_condition():
    obj = {
        "metadata": {
            "name": "demo-worker-1", "uid": "p1", "creationTimestamp": ago(10),
            "labels": {"kubetrain.io/replica-index": "1", "kubetrain.io/restart-generation": "2"},
            "ownerReferences": [
                {"kind": "Other", "uid": "x", "controller": False},
                {"kind": "TrainingJob", "uid": "job-uid", "controller": True},
            ],
        },
        "status": {
            "phase": "Failed",
            "conditions": [{"type": "DisruptionTarget", "status": "True",
                            "reason": "PreemptionByScheduler", "message": "by p"}],
            "containerStatuses": [{"state": {"terminated": {"exitCode": 143}}}],
        },
    }  # fmt: skip

    p = observe_pod(obj)

    assert (p.owner_uid, p.exit_code) == ("job-uid", 143)
    assert p.disruption == ("PreemptionByScheduler", "by p")
    assert observe_pod({"metadata": {"name": "x"}}).owner_uid == ""


def test_pod_refs_of_a_disruption_restart_delete_the_whole_group():
    d = decide(running(), [pod(0), pod(1, "Failed", exit_code=75)], NOW)
    assert d.delete == [PodRef("demo-worker-0", "u0-0"), PodRef("demo-worker-1", "u0-1")]
    assert d.restarted


def elastic(nodes: int, **policy: Any) -> Any:
    return spec(parallelism={"nodes": nodes, "minNodes": 1, "maxNodes": 4, "procsPerNode": 1},
                **policy)  # fmt: skip


@pytest.mark.parametrize(
    ("phase", "nodes", "pods", "expected"),
    [
        ("Running", 1, [pod(0, nodes=2), pod(1, nodes=2)], ("Restarting", "Resized", 1, 1)),
        ("Running", 4, [pod(0, nodes=2), pod(1, nodes=2)], ("Restarting", "Resized", 1, 1)),
        ("Starting", 1, [pod(0, "Pending", nodes=2), pod(1, nodes=2)],
         ("Restarting", "Resized", 1, 1)),
        ("Running", 2, [pod(0, nodes=2), pod(1, nodes=2)], ("Running", "Same", 0, 0)),
        # Pods made before pods carried their size: never taken for a resize.
        ("Running", 2, [pod(0), pod(1)], ("Running", "Same", 0, 0)),
    ],
)
def test_an_elastic_job_restarts_at_its_new_size(
    phase: str, nodes: int, pods: list[ObservedPod], expected: tuple
):
    state = job(phase, elastic(nodes), conditions=RUNNING, startTime=ago(30))

    d = decide(state, pods, NOW)

    s = d.status
    assert (s.phase, s.reason, s.restarts, s.disruptions) == expected
    if s.phase == "Restarting":
        assert len(d.delete) == len(pods)
        assert s.message == f"restarting at {nodes} node(s)"


def test_the_next_generation_has_the_new_size():
    state = job("Restarting", elastic(4), restarts=1, disruptions=1,
                conditions=[cond("Restarting", since=11)])  # fmt: skip

    d = decide(state, [], NOW)

    assert (d.status.phase, d.create) == ("Starting", [0, 1, 2, 3])


def test_a_queued_elastic_job_keeps_its_admitted_size_until_the_next_admission():
    s = spec(parallelism={"nodes": 1, "minNodes": 1, "maxNodes": 4, "procsPerNode": 1},
             queueName="q")  # fmt: skip
    state = job("Running", s, conditions=RUNNING)

    d = decide(state, [pod(0, nodes=2), pod(1, nodes=2)], NOW)

    assert (d.status.phase, d.delete) == ("Running", [])


@pytest.mark.parametrize("parallelism", [{"nodes": 5, "maxNodes": 4}, {"nodes": 1, "minNodes": 2}])
def test_nodes_outside_the_elastic_bounds_are_refused(parallelism: dict):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="nodes must lie within minNodes and maxNodes"):
        spec(parallelism={**parallelism, "procsPerNode": 1})


@pytest.mark.parametrize(
    ("pods", "expected"),
    [
        ([pod(0, "Failed", exit_code=42, exit_message="CUDA error: bad card\n"), pod(1)],
         ("Failed", "ExitCodeRule",
          "demo-worker-0 exited with code 42 (runPolicy.failOnExitCodes): CUDA error: bad card")),
        # Not listed: a failure that restarts.
        ([pod(0, "Failed", exit_code=1), pod(1)],
         ("Restarting", "WorkerCrashed", "demo-worker-0 exited with code 1")),
        # Preempted: a disruption whatever the code.
        ([pod(0, "Failed", exit_code=42, disruption=PREEMPTED), pod(1)],
         ("Restarting", "PreemptionByScheduler", "demo-worker-0: " + PREEMPTED[1])),
    ],
)
def test_exit_codes_listed_fail_the_job_at_once(pods: list[ObservedPod], expected: tuple):
    state = job("Running", spec(runPolicy={"failOnExitCodes": [42, 43]}), conditions=RUNNING)

    s = decide(state, pods, NOW).status

    assert (s.phase, s.reason, s.message) == expected


def test_exit_code_75_cannot_be_a_failure_rule():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="75 is the trainer's stop after SIGTERM"):
        spec(runPolicy={"failOnExitCodes": [1, 75]})
