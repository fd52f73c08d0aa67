"""Kueue admission and cooperative preemption on real nodes: real Kueue (its manager and
webhooks, kubetrain_testenv.kueue) against the real-node cluster, the operator as the pod the
chart installs, the trainer image's containers (CPU, gloo, 2 workers) placed by the real
kube-scheduler. Quota for one job: the second waits; a higher-priority job preempts the
running one, which checkpoints on SIGTERM (exit 75), waits in the queue without using its
restart budget, resumes from that checkpoint and ends with the loss of an uninterrupted run."""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from e2e_helpers import (
    PodWatch,
    apply_job,
    checkpoint_step,
    example_job,
    install_chart,
    status,
    step,
    wait_phase,
)

from kubetrain_testenv import wait_for
from kubetrain_testenv.e2e_cluster import Cluster, LocalCluster
from kubetrain_testenv.kueue import Kueue, queue_objects
from kubetrain_testenv.pytest_support import TIMINGS

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

NS = "kubetrain-e2e-kueue"
# Per worker; the ClusterQueue's quota is one job's (2 workers). 4 workers fit the two nodes
# (2 CPUs each) beside the operator (100m).
CPU = "900m"
RUN_DIRS: list[str] = []
# Short: a few seconds of training; what costs time is each start (torch imported by torchrun
# and its worker, rendezvous): three in a row.
TRAINING = {"maxSteps": 120, "eval": {"everySteps": 60}, "logging": {"everySteps": 10}}
CHECKPOINT_EVERY = 20


def setup_objects(tag: str) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The namespace, the queues (one job's quota: 2 × CPU) and the PriorityClasses `low`
    and `high` (names by role), named with `tag`."""
    objects: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
        *queue_objects(f"kt-e2e-{tag}", NS, {"cpu": "1800m", "memory": "64Gi"}),
    ]
    priorities = {"low": f"kt-e2e-{tag}-low", "high": f"kt-e2e-{tag}-high"}
    for name, value in (("low", 100), ("high", 10_000)):
        objects.append({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                        "metadata": {"name": priorities[name]}, "value": value})  # fmt: skip
    return objects, priorities


@pytest.fixture(scope="module")
def queued(cluster: Cluster) -> Iterator[dict[str, str]]:
    """Kueue running against the cluster (before the operator starts, so that its Workload
    kind exists from the operator's first watch), the chart installed, a namespace with a
    LocalQueue `team` onto a ClusterQueue of one job's quota, and two PriorityClasses.
    Yields the PriorityClass names; removes all of it afterwards."""
    if os.environ.get("KUBETRAIN_E2E_KIND_CLUSTER"):
        pytest.skip(
            "needs Kueue, which tests/e2e/kind does not install: the testenv runs Kueue's "
            "manager as a local process with webhooks on loopback, which a kind API server "
            "(in a container) cannot reach"
        )
    assert isinstance(cluster, LocalCluster)
    started = time.monotonic()
    kueue = Kueue(cluster.cp).start()
    TIMINGS["e2e: Kueue start (CRDs, manager ready, webhooks)"] = time.monotonic() - started
    tag = secrets.token_hex(3)
    objects, priorities = setup_objects(tag)
    manifest = Path(cluster.kubeconfig).parent / f"kueue-{tag}.yaml"
    manifest.write_text(yaml.safe_dump_all(objects))
    try:
        install_chart(cluster)
        cluster.kubectl("apply", "-f", str(manifest))
        yield priorities
    finally:
        # The jobs first, while Kueue runs: it removes its finalizers from their Workloads.
        cluster.kubectl("delete", "tj", "--all", "-n", NS, "--wait=true", "--timeout=120s",
                        check=False)  # fmt: skip
        wait_for(lambda: not cluster.kubectl_json("get", "workloads", "-n", NS)["items"], 60,
                 1.0, "the Workloads to go")  # fmt: skip
        cluster.kubectl("delete", "-f", str(manifest), "--wait=true", "--timeout=120s",
                        check=False)  # fmt: skip
        kueue.stop()
        if RUN_DIRS:
            cluster.on_nodes("rm", "-rf", *RUN_DIRS)


def job(cluster: Cluster, name: str, priority: str | None, nodes: int = 2,
        **training: Any) -> dict[str, Any]:  # fmt: skip
    """The CPU example at CPU per worker on `nodes` nodes, no restart allowed (a preemption
    counted as a failure would fail it); in the queue `team` with `priority` if one is given."""
    spec = example_job(cluster, name, CPU, **{**TRAINING, **training})
    spec["spec"]["parallelism"]["nodes"] = nodes
    spec["spec"].update(
        checkpoint={"everySteps": CHECKPOINT_EVERY},
        runPolicy={"maxRestarts": 0, "heartbeatTimeoutSeconds": 120,
                   "progressIntervalSeconds": 1},
    )  # fmt: skip
    if priority is not None:
        spec["spec"]["queueName"] = "team"
        spec["spec"]["template"]["priorityClassName"] = priority
    return spec


def pods_of(cluster: Cluster, name: str) -> list[dict[str, Any]]:
    return cluster.kubectl_json("get", "pods", "-n", NS, "-l",
                                f"kubetrain.io/job-name={name}")["items"]  # fmt: skip


def condition(s: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in s.get("conditions") or [] if c["type"] == type_), {})


def test_quota_holds_the_second_job_and_preemption_resumes_to_the_same_loss(
    cluster: Cluster, queued: dict[str, str]
) -> None:
    started = time.monotonic()
    # `low` through the queue; beside it, outside any queue, `reference`: the same training
    # never interrupted, whose loss `low` must end with.
    apply_job(cluster, NS, job(cluster, "low", queued["low"]), RUN_DIRS)
    apply_job(cluster, NS, job(cluster, "reference", None), RUN_DIRS)
    wait_phase(cluster, NS, "low", ("Pending", "Starting", "Running"), 120)

    # A second job of the same priority is held: Queued with Kueue's reason, no pods, no
    # start time. (It has shown what it is for: deleted, it costs no start.)
    apply_job(cluster, NS, job(cluster, "second", queued["low"]), RUN_DIRS)
    waiting = wait_for(
        lambda: (s := status(cluster, NS, "second")).get("reason") == "Pending" and s,
        60, 1.0, "the second job to be held with Kueue's reason",
    )  # fmt: skip
    assert waiting["phase"] == "Queued", waiting
    admitted = condition(waiting, "Admitted")
    assert (admitted["status"], admitted["reason"]) == ("False", "Pending"), admitted
    assert "insufficient unused quota" in admitted["message"].lower(), admitted
    assert pods_of(cluster, "second") == []
    assert not waiting.get("startTime"), waiting
    cluster.kubectl("delete", "tj", "second", "-n", NS)

    # `low` runs on the nodes the scheduler chose, past its first checkpoint.
    before = wait_for(
        lambda: (s := status(cluster, NS, "low")).get("phase") == "Running"
        and checkpoint_step(s) >= CHECKPOINT_EVERY and s,
        300, 0.5, "the low-priority job past its first checkpoint",
    )  # fmt: skip
    low_nodes = {p["spec"].get("nodeName") for p in pods_of(cluster, "low")}
    assert low_nodes and None not in low_nodes, low_nodes

    # A higher-priority job: Kueue preempts `low`, whose workers checkpoint on SIGTERM.
    phases: list[tuple[str, str]] = []

    def seen(s: dict[str, Any]) -> None:
        entry = (s.get("phase", ""), s.get("reason", ""))
        if not phases or phases[-1] != entry:
            phases.append(entry)

    with PodWatch(cluster, NS, "kubetrain.io/job-name=low") as low_pods:
        preempting = time.monotonic()
        apply_job(cluster, NS, job(cluster, "high", queued["high"], 1, maxSteps=10), RUN_DIRS)
        queued_low = wait_phase(cluster, NS, "low", ("Queued",), 120, seen=seen, interval=0.5)
        preempted_at = time.monotonic()
        # The workers' exits, as the kubelet reports them before the pods go.
        exits = wait_for(lambda: len(c := low_pods.exit_codes()) >= 2 and c, 120, 0.5,
                         "both of low's workers to exit")  # fmt: skip
    assert exits == {"low-worker-0": 75, "low-worker-1": 75}, exits
    at_queued = wait_for(  # the checkpoint saved on SIGTERM, as the trainer reported it
        lambda: (s := status(cluster, NS, "low")).get("phase") == "Queued"
        and checkpoint_step(s) >= step(before) and s, 60, 1.0,
        "low's SIGTERM checkpoint in its status",
    )  # fmt: skip
    saved = checkpoint_step(at_queued)
    assert queued_low["reason"] == "Preempted", queued_low

    # `high` runs (one worker: any quota it needs must come from `low`), then `low` resumes
    # from what it saved.
    high = wait_phase(cluster, NS, "high", ("Succeeded", "Failed"), 300)
    final = wait_phase(cluster, NS, "low", ("Succeeded", "Failed"), 600, seen=seen)
    reference = wait_phase(cluster, NS, "reference", ("Succeeded", "Failed"), 60)
    TIMINGS["e2e: Kueue preemption story (3 starts in a row)"] = time.monotonic() - started
    TIMINGS["e2e: Kueue: high created to low Queued"] = preempted_at - preempting

    assert high["phase"] == reference["phase"] == final["phase"] == "Succeeded", (
        high, reference, final)  # fmt: skip
    assert ("Queued", "Preempted") in phases, phases
    # The preemption is one disruption; no restart of the budget used (maxRestarts 0 would
    # have failed the job).
    assert (final["restarts"], final.get("disruptions")) == (1, 1), final
    assert reference["restarts"] == 0 and not reference.get("disruptions"), reference
    # Resumed from the SIGTERM checkpoint, not started over (the log of the worker that ran
    # after the queue).
    logs = cluster.kubectl("logs", "-n", NS, "low-worker-0")
    resumed = [int(m) for m in re.findall(r"kubetrain: resuming from \S+ at step (\d+)", logs)]
    assert resumed == [saved], (saved, logs[-3000:])
    # The same result as the run that never stopped.
    assert final["progress"]["step"] == reference["progress"]["step"] == TRAINING["maxSteps"]
    assert final["progress"]["loss"] == pytest.approx(reference["progress"]["loss"], rel=1e-6)
    print(f"saved at step {saved}; final loss: preempted {final['progress']['loss']}, "
          f"uninterrupted {reference['progress']['loss']}")  # fmt: skip
