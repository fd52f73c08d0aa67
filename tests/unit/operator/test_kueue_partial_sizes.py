"""Kueue partial admission of elastic jobs, pure parts: the pod set's minCount, the size a
partially admitted group runs at, what the status says, and the pods (and trainer command)
of that size."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from operator_builders import NOW, job, meta, spec

from kubetrain.api.loader import load_job
from kubetrain.api.plan import resolve_plan
from kubetrain_operator import kueue
from kubetrain_operator.render import (
    DEFAULT_COMMAND,
    render_spec_config_map,
    render_worker_pod,
)
from kubetrain_operator.status import decide


def queued(**parallelism: Any) -> Any:
    return spec(queueName="team", parallelism=parallelism)


def pod_set(s: Any) -> dict[str, Any]:
    m = meta()
    (only,) = kueue.render_workload(m, s, render_worker_pod(m, s, 0, 0))["spec"]["podSets"]
    return only


def admitted_with(count: int | None) -> kueue.Admission:
    return kueue.Admission("admitted", "Admitted", "", "cq", {"cpu": "default"}, count)


def env(pod: dict[str, Any]) -> dict[str, str]:
    (container,) = pod["spec"]["containers"]
    return {e["name"]: e.get("value", "") for e in container["env"]}


def test_an_elastic_jobs_pod_set_may_be_admitted_down_to_min_nodes() -> None:
    ps = pod_set(queued(nodes=2, minNodes=1))
    assert (ps["count"], ps["minCount"]) == (2, 1)
    # maxNodes alone: nodes may go down to 1, so may the admission.
    assert pod_set(queued(nodes=4, maxNodes=8))["minCount"] == 1


def test_a_fixed_size_job_stays_all_or_nothing() -> None:
    assert "minCount" not in pod_set(queued(nodes=2))
    assert "minCount" not in pod_set(queued(nodes=2, minNodes=2, maxNodes=4))


def test_min_count_is_the_fewest_nodes_the_trainer_can_run() -> None:
    # globalBatchSize 16: 3 nodes × 1 process does not divide it, 2 does.
    assert kueue.min_count(queued(nodes=4, minNodes=3)) is None
    assert kueue.min_count(spec(parallelism={"nodes": 4, "minNodes": 1})) == 1
    fsdp = spec(parallelism={"nodes": 2, "minNodes": 1, "strategy": "fsdp"})
    assert kueue.min_count(fsdp) is None  # fsdp needs more than one process
    assert kueue.min_count(spec(parallelism={"nodes": 4, "minNodes": 1, "strategy": "fsdp"})
                           ) == 2  # fmt: skip


def test_same_request_sees_a_change_of_min_count() -> None:
    m = meta()
    fixed, elastic = queued(nodes=2), queued(nodes=2, minNodes=1)
    a = kueue.render_workload(m, fixed, render_worker_pod(m, fixed, 0, 0))
    b = kueue.render_workload(m, elastic, render_worker_pod(m, elastic, 0, 0))
    assert not kueue.same_request(a, b) and kueue.same_request(b, b)


def test_read_admission_reads_the_admitted_count() -> None:
    workload = {
        "metadata": {"name": "w", "namespace": "ns"},
        "status": {
            "conditions": [{"type": "QuotaReserved", "status": "True"},
                           {"type": "Admitted", "status": "True", "reason": "Admitted"}],
            "admission": {"clusterQueue": "cq", "podSetAssignments": [
                {"name": "workers", "count": 1, "flavors": {"cpu": "default"}}]},
        },
    }  # fmt: skip
    assert kueue.read_admission(workload).count == 1
    del workload["status"]["admission"]["podSetAssignments"][0]["count"]
    assert kueue.read_admission(workload).count is None  # older Workloads: the spec's count


def test_run_nodes_is_the_largest_runnable_size_within_the_admission() -> None:
    s = queued(nodes=4, minNodes=1)
    assert kueue.run_nodes(s, admitted_with(None)) == 4
    assert kueue.run_nodes(s, admitted_with(4)) == 4
    assert kueue.run_nodes(s, admitted_with(2)) == 2
    # 3 workers' quota: 3 does not divide globalBatchSize 16, so the group runs on 2.
    assert kueue.run_nodes(s, admitted_with(3)) == 2


def test_a_partially_admitted_job_runs_at_the_admitted_size_and_says_so() -> None:
    s = queued(nodes=2, minNodes=1)
    ready = kueue.admitted(job("Queued", s, restarts=1), admitted_with(1), NOW)
    assert ready.spec is not None and ready.spec.parallelism.nodes == 1
    assert (ready.status.phase, ready.status.reason) == ("Pending", "PartiallyAdmitted")
    (condition,) = [c for c in ready.status.conditions if c.type == "Admitted"]
    assert (condition.status, condition.reason) == ("True", "PartiallyAdmitted")
    assert condition.message == (
        "admitted by ClusterQueue cq with 1 of 2 worker(s) (partial admission)"
    )
    assert resolve_plan(ready.spec).world_size == 1
    d = decide(ready, [], NOW)
    assert d.create == [0] and d.status.phase == "Starting"
    assert d.status.message == "creating 1 worker pod(s), restart generation 1"


def test_a_fully_admitted_job_keeps_its_spec() -> None:
    s = queued(nodes=2, minNodes=1)
    ready = kueue.admitted(job("Queued", s), admitted_with(2), NOW)
    assert ready.spec is s and ready.status.reason == "Admitted"


def test_the_message_says_when_the_group_runs_on_fewer_than_admitted() -> None:
    s = queued(nodes=4, minNodes=1)
    ready = kueue.admitted(job("Queued", s), admitted_with(3), NOW)
    assert ready.spec is not None and ready.spec.parallelism.nodes == 2
    assert ready.status.message == (
        "admitted by ClusterQueue cq with 3 of 4 worker(s) (partial admission); running on 2,"
        " the largest size the trainer can run"
    )


def test_pods_of_the_admitted_size_tell_the_trainer_their_size(tmp_path: Path) -> None:
    s = queued(nodes=2, minNodes=1)
    m = meta()
    ready = kueue.admitted(job("Queued", s), admitted_with(1), NOW)
    assert ready.spec is not None
    pod = kueue.place(render_worker_pod(m, ready.spec, 0, 0), kueue.placement([], 1))
    assert env(pod)["PET_NNODES"] == "1"
    assert pod["metadata"]["labels"]["kubetrain.io/nodes"] == "1"
    command = pod["spec"]["containers"][0]["command"]
    assert command == [*DEFAULT_COMMAND, "--set", "spec.parallelism.nodes=1"]
    # The trainer reads the job's ConfigMap (the declared 2 nodes) with that override: 1 node,
    # as PET_NNODES says (kubetrain run refuses a mismatch).
    path = tmp_path / "job.yaml"
    path.write_text(render_spec_config_map(m, s)["data"]["job.yaml"])
    assert load_job(path).spec.parallelism.nodes == 2
    assert load_job(path, [command[-1]]).spec.parallelism.nodes == 1
    # Without a partial admission nothing changes.
    full = kueue.place(render_worker_pod(m, s, 0, 0), kueue.placement([]))
    assert full["spec"]["containers"][0]["command"] == DEFAULT_COMMAND


def test_a_command_override_is_left_as_it_is() -> None:
    command = ["python", "standin.py", "ok", "10"]
    m = meta(**{"kubetrain.io/command": json.dumps(command)})
    s = kueue.at_nodes(queued(nodes=2, minNodes=1), 1)
    pod = kueue.place(render_worker_pod(m, s, 0, 0), kueue.placement([], 1))
    assert pod["spec"]["containers"][0]["command"] == command
    assert env(pod)["PET_NNODES"] == "1"
