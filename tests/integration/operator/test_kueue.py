"""Kueue admission against real Kueue (built from its Go module) and the real API server: a job
with a queueName waits in Queued until its Workload is admitted; quota for one job holds the
second back; a higher-priority job preempts a running one, which checkpoints on SIGTERM, goes
back to the queue without using its restart budget and resumes from its checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kueue_queues import Queues
from operator_helpers import REPO, Jobs, Operator, cpu_job, kubectl, standin_job, until
from prometheus_client.parser import text_string_to_metric_families

from kubetrain_testenv.kueue import Kueue

pytestmark = pytest.mark.timeout(300)


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), {})


def test_quota_for_one_job_holds_the_second_in_the_queue(
    operator: Operator, jobs: Jobs, queues: Queues, kueue: Kueue, tmp_path: Path
):
    # Each job: 2 workers × 400m; quota 1 CPU fits one job, never two.
    queues.create(cpu="1", node_labels={"kubernetes.io/hostname": "node-1"})
    for name in ("first", "second"):
        (tmp_path / name).mkdir()
    jobs.create(standin_job("first", tmp_path / "first", "ok", "200", queueName="team"))
    jobs.wait_phase("first", "Running", 90)
    jobs.create(standin_job("second", tmp_path / "second", "ok", "40", queueName="team"))

    # The second is held: Queued with Kueue's reason, no pods, its Workload not admitted.
    status = jobs.wait_phase("second", "Queued", 60)
    until(lambda: queues.workload_condition("second", "QuotaReserved").get(
        "reason") == "Pending", 30, "Kueue to say why the second job waits")  # fmt: skip
    status = until(lambda: (s := jobs.status("second")).get("reason") == "Pending" and s, 30,
                   "the job to carry Kueue's reason")  # fmt: skip
    admitted = condition(status, "Admitted")
    assert (admitted["status"], admitted["reason"]) == ("False", "Pending")
    assert "insufficient unused quota" in admitted["message"].lower(), admitted
    assert jobs.pods("second") == []
    assert "startTime" not in status or status["startTime"] is None

    # The first runs on the admitted flavor's nodes and holds the quota.
    first_pods = jobs.pods("first")
    assert {p.spec.node_selector.get("kubernetes.io/hostname") for p in first_pods} == {
        "node-1"
    }
    first = queues.workload("first")
    assert queues.workload_condition("first", "Admitted")["status"] == "True"
    assert first["spec"]["podSets"][0]["count"] == 2
    assert first["metadata"]["ownerReferences"][0]["kind"] == "TrainingJob"

    # The first finishes: its Workload is Finished, the quota goes to the second.
    jobs.wait_phase("first", "Succeeded", 120)
    until(lambda: queues.workload_condition("first", "Finished").get("status")
          == "True", 30, "the first Workload to be Finished")  # fmt: skip
    status = jobs.wait_phase("second", "Succeeded", 120)
    assert condition(status, "Admitted")["status"] == "True"
    assert status["restarts"] == 0
    assert status["progress"]["step"] == 40


RECONCILES = "kubetrain_reconcile_duration_seconds_count"
POD_LISTS = {"name": "kubetrain_api_requests_total", "verb": "list", "resource": "pods"}


def counted(op: Operator, name: str, **labels: str) -> float:
    """The sum of the operator's samples `name` whose labels include `labels`."""
    return sum(
        s.value for family in text_string_to_metric_families(op.metrics()) for s in family.samples
        if s.name == name and labels.items() <= s.labels.items()
    )  # fmt: skip


def touch(op: Operator, jobs: Jobs, name: str, n: int) -> None:
    """Change an annotation of the job and wait for the reconcile that follows."""
    seen = counted(op, RECONCILES)
    jobs.custom.patch_namespaced_custom_object(
        "kubetrain.io", "v1alpha1", jobs.namespace, "trainingjobs", name,
        {"metadata": {"annotations": {"test/touch": str(n)}}},
    )  # fmt: skip
    until(lambda: counted(op, RECONCILES) > seen, 30, f"a reconcile of {name} after touch {n}")


def test_a_job_waiting_in_the_queue_lists_no_pods_until_admitted(
    operator: Operator, jobs: Jobs, queues: Queues, kueue: Kueue, tmp_path: Path
):
    # A job the operator has reconciled: it watches now, and sees the next one created.
    jobs.create(standin_job("probe", tmp_path, "ok", "20", runPolicy={"suspend": True}))
    jobs.wait_phase("probe", "Suspended", 60)
    before = counted(operator, **POD_LISTS)
    # 2 workers × 400m against 500m of quota: held until the quota grows.
    queues.create(cpu="500m")
    jobs.create(standin_job("waits", tmp_path, "ok", "20", queueName="team"))
    until(lambda: jobs.status("waits").get("reason") == "Pending", 60,
          "the job to be Queued with Kueue's reason")  # fmt: skip
    for n in range(3):
        touch(operator, jobs, "waits", n)
    assert counted(operator, **POD_LISTS) == before  # it saw the job created: it has no pods

    # A new operator finds the job waiting: its first LIST, empty, is its last until admission.
    jobs.delete("probe")
    until(lambda: not jobs.exists("probe"), 30, "the probe job to go")
    operator.stop()
    operator.start()
    until(lambda: counted(operator, RECONCILES) >= 1, 60, "the new operator's first reconcile")
    for n in range(3, 6):
        touch(operator, jobs, "waits", n)
    assert counted(operator, **POD_LISTS) == 1

    # Admitted: from its first pod on, the job's pods are what a LIST says, and it succeeds.
    queues.set_cpu("1")
    status = jobs.wait_phase("waits", "Succeeded", 120)
    assert status["progress"]["step"] == 20
    assert counted(operator, **POD_LISTS) > 1


def test_preemption_checkpoints_requeues_and_resumes_as_a_disruption(
    operator: Operator, jobs: Jobs, queues: Queues, kueue: Kueue, tmp_path: Path
):
    queues.create(cpu="1")
    low, high = queues.priority_class(100), queues.priority_class(10_000)
    for name in ("low", "high"):
        (tmp_path / name).mkdir()
    policy = {"maxRestarts": 0}  # one restart counted would fail the job
    jobs.create(standin_job("low", tmp_path / "low", "ok", "600", queueName="team",
                            runPolicy=policy, template={"priorityClassName": low}))  # fmt: skip
    jobs.wait_phase("low", "Running", 90)
    checkpoint = until(
        lambda: ((jobs.status("low").get("progress") or {}).get("lastCheckpoint") or {}).get(
            "step"), 60, "a first checkpoint of the low-priority job")  # fmt: skip
    assert queues.workload("low")["spec"]["priority"] == 100

    phases: list[tuple[str, str]] = []
    steps: list[tuple[str, int]] = []  # (phase, progress step) as polled

    def seen(status: dict[str, Any]) -> None:
        entry = (status.get("phase", ""), status.get("reason", ""))
        if not phases or phases[-1] != entry:
            phases.append(entry)
        steps.append((entry[0], int((status.get("progress") or {}).get("step") or 0)))

    jobs.create(standin_job("high", tmp_path / "high", "ok", "40", queueName="team",
                            template={"priorityClassName": high}))  # fmt: skip
    # Kueue preempts the low job: it is stopped cooperatively and goes back to the queue.
    jobs.wait_phase("low", "Queued", 60, seen=seen)
    jobs.wait_phase("high", "Succeeded", 120)
    status = jobs.wait_phase("low", "Succeeded", 180, seen=seen)

    assert ("Queued", "Preempted") in phases, phases
    # One disruption; the budget (maxRestarts 0) is untouched.
    assert (status["restarts"], status["disruptions"]) == (1, 1), status
    assert status["progress"]["step"] == 600
    events = {e.reason for e in jobs.events("low")}
    assert "Preempted" in events, events
    # Resumed from the checkpoint: once back from the queue, no step before the checkpoint
    # the job had when it was preempted is ever reported again (a fresh start would be).
    queued_at = next(i for i, (phase, _) in enumerate(steps) if phase == "Queued")
    before = max(step for _, step in steps[:queued_at])
    after = [step for phase, step in steps[queued_at:] if phase != "Queued" and step]
    assert after and min(after) >= (before // 10) * 10 >= checkpoint, (before, after[:5])
    requeued = queues.workload_condition("low", "Requeued")
    assert (requeued.get("status"), requeued.get("reason")) == ("True", "Preempted"), requeued


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_preempted_real_training_ends_with_the_loss_of_an_uninterrupted_run(
    operator: Operator, jobs: Jobs, queues: Queues, kueue: Kueue, tmp_path: Path
):
    """The real trainer (examples/cpu-cluster.yaml, DDP over gloo, 2 workers): preempted by a
    higher-priority job, it checkpoints on SIGTERM, waits in the queue, resumes, and ends with
    the loss of the same job run without interruption (beside it, outside any queue)."""
    queues.create(cpu="1")
    low, high = queues.priority_class(100), queues.priority_class(10_000)
    spec: dict[str, Any] = {
        "runPolicy": {"maxRestarts": 0, "heartbeatTimeoutSeconds": 120},
        "training": {"maxSteps": 160, "eval": {"everySteps": 40}},
        "checkpoint": {"everySteps": 30},
    }
    for name in ("reference", "low", "high"):
        (tmp_path / name).mkdir()
    jobs.create(cpu_job("reference", tmp_path / "reference", **spec))
    jobs.create(cpu_job("low", tmp_path / "low", queueName="team",
                        template={"priorityClassName": low}, **spec))  # fmt: skip
    until(lambda: int((jobs.status("low").get("progress") or {}).get("step") or 0) >= 40, 240,
          "the low-priority job past its first checkpoint")  # fmt: skip

    phases: list[tuple[str, str]] = []
    steps: list[tuple[str, int]] = []

    def seen(status: dict[str, Any]) -> None:
        entry = (status.get("phase", ""), status.get("reason", ""))
        if not phases or phases[-1] != entry:
            phases.append(entry)
        steps.append((entry[0], int((status.get("progress") or {}).get("step") or 0)))

    jobs.create(standin_job("high", tmp_path / "high", "ok", "20", queueName="team",
                            template={"priorityClassName": high}))  # fmt: skip
    jobs.wait_phase("low", "Queued", 90, seen=seen)
    jobs.wait_phase("high", "Succeeded", 120)
    status = jobs.wait_phase("low", ("Succeeded", "Failed"), 300, seen=seen)
    reference = jobs.wait_phase("reference", ("Succeeded", "Failed"), 240)

    assert status["phase"] == reference["phase"] == "Succeeded", (status, reference)
    assert ("Queued", "Preempted") in phases, phases
    assert (status["restarts"], status["disruptions"]) == (1, 1), status
    assert status["progress"]["step"] == reference["progress"]["step"] == 160
    assert status["progress"]["loss"] == pytest.approx(reference["progress"]["loss"], rel=1e-6)
    # Resumed, not started over: back from the queue, the first step reported is past the
    # checkpoint (every 30 steps) saved before or at the preemption.
    queued_at = next(i for i, (phase, _) in enumerate(steps) if phase == "Queued")
    after = [step for phase, step in steps[queued_at:] if phase in ("Starting", "Running")]
    assert after and min(after) >= 30, steps[queued_at:][:10]
    print(f"final loss: preempted {status['progress']['loss']}, "
          f"uninterrupted {reference['progress']['loss']}")


def test_the_operators_rbac_covers_kueue(
    kueue: Kueue, queues: Queues, jobs: Jobs, namespace: str, tmp_path: Path
):
    """Under exactly operator/manifests/operator-rbac.yaml (namespaced mode), a queued job with
    a PriorityClass is admitted on a flavor, runs and frees its quota: no request refused."""
    cp = kueue.cp
    rbac = REPO / "operator" / "manifests" / "operator-rbac.yaml"
    kubectl(cp, "apply", "--server-side", "-f", str(rbac))
    kubectl(cp, "-n", namespace, "create", "serviceaccount", "kubetrain-operator")
    kubectl(cp, "-n", namespace, "create", "rolebinding", "kubetrain-operator",
            "--clusterrole=kubetrain-operator", f"--serviceaccount={namespace}:kubetrain-operator")
    binding = f"kubetrain-operator-framework-{namespace}"
    kubectl(cp, "create", "clusterrolebinding", binding,
            "--clusterrole=kubetrain-operator-framework",
            f"--serviceaccount={namespace}:kubetrain-operator")  # fmt: skip
    queues.create(cpu="1", node_labels={"kubernetes.io/hostname": "node-1"})
    priority = queues.priority_class(500)
    kubeconfig = cp.service_account_kubeconfig(namespace, "kubetrain-operator")
    op = Operator(cp, namespace, tmp_path / "operator.log", kubeconfig=kubeconfig).start()
    try:
        (tmp_path / "run").mkdir()
        jobs.create(standin_job("least", tmp_path / "run", "ok", "20", queueName="team",
                                template={"priorityClassName": priority}))  # fmt: skip
        status = jobs.wait_phase("least", "Succeeded", 90)
        until(lambda: queues.workload_condition("least", "Finished").get("status")
              == "True", 30, "the Workload to be Finished")  # fmt: skip
    finally:
        op.stop()
        kubectl(cp, "delete", "clusterrolebinding", binding)
    assert condition(status, "Admitted")["status"] == "True"
    assert queues.workload("least")["spec"]["priority"] == 500
    log = op.output()
    assert "403" not in log and "Forbidden" not in log, log[-3000:]
