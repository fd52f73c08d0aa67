"""Kueue partial admission against real Kueue and the real API server: an elastic job
(nodes 2, minNodes 1) in a queue with quota for one worker is admitted with one, runs its group
on one node (world size 1) and succeeds; a fixed-size job in the same queue stays queued."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from operator_helpers import Jobs, Operator, cpu_job, standin_job, until

from kubetrain_testenv import ControlPlane
from kubetrain_testenv.kueue import Kueue

pytestmark = pytest.mark.timeout(300)
KUEUE, V = "kueue.x-k8s.io", "v1beta1"
ELASTIC = {"nodes": 2, "minNodes": 1, "maxNodes": 2}


@pytest.fixture(scope="module")
def kueue(kubetrain_installed: ControlPlane) -> Iterator[Kueue]:
    k = Kueue(kubetrain_installed).start()
    yield k
    k.stop()


@pytest.fixture
def one_worker_queue(
    kueue: Kueue, api_client: client.ApiClient, namespace: str
) -> Iterator[client.CustomObjectsApi]:  # fmt: skip
    """LocalQueue `team` → a ClusterQueue with quota for one worker of cpu_job (400m, 2Gi)."""
    custom = client.CustomObjectsApi(api_client)
    name = f"kt-partial-{secrets.token_hex(3)}"
    flavor = {"apiVersion": f"{KUEUE}/{V}", "kind": "ResourceFlavor", "metadata": {"name": name}}
    cluster_queue = {
        "apiVersion": f"{KUEUE}/{V}", "kind": "ClusterQueue", "metadata": {"name": name},
        "spec": {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
            "resourceGroups": [{
                "coveredResources": ["cpu", "memory"],
                "flavors": [{"name": name, "resources": [
                    {"name": "cpu", "nominalQuota": "500m"},
                    {"name": "memory", "nominalQuota": "3Gi"},
                ]}],
            }],
        },
    }  # fmt: skip
    local_queue = {"apiVersion": f"{KUEUE}/{V}", "kind": "LocalQueue",
                   "metadata": {"name": "team", "namespace": namespace},
                   "spec": {"clusterQueue": name}}  # fmt: skip
    custom.create_cluster_custom_object(KUEUE, V, "resourceflavors", flavor)
    custom.create_cluster_custom_object(KUEUE, V, "clusterqueues", cluster_queue)
    custom.create_namespaced_custom_object(KUEUE, V, namespace, "localqueues", local_queue)
    yield custom
    for plural in ("clusterqueues", "resourceflavors"):
        with contextlib.suppress(ApiException):
            custom.delete_cluster_custom_object(KUEUE, V, plural, name)


def workload_of(custom: client.CustomObjectsApi, namespace: str, job: str) -> dict[str, Any]:
    items = custom.list_namespaced_custom_object(KUEUE, V, namespace, "workloads")["items"]
    (mine,) = [w for w in items if w["metadata"]["labels"].get("kubetrain.io/job-name") == job]
    return mine


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    conditions = (obj.get("status") or obj).get("conditions") or []
    return next((c for c in conditions if c["type"] == type_), {})


def live_pods(jobs: Jobs, name: str) -> list[client.V1Pod]:
    return [p for p in jobs.pods(name) if not p.metadata.deletion_timestamp]


def test_an_elastic_job_admitted_with_one_of_two_workers_runs_on_one_node(
    operator: Operator, jobs: Jobs, one_worker_queue: client.CustomObjectsApi, namespace: str,
    tmp_path: Path,
):  # fmt: skip
    custom = one_worker_queue
    (tmp_path / "elastic").mkdir()
    jobs.create(standin_job("elastic", tmp_path / "elastic", "ok", "200", queueName="team",
                            parallelism=ELASTIC))  # fmt: skip

    running = jobs.wait_phase("elastic", "Running", 90)

    workload = workload_of(custom, namespace, "elastic")
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
    until(lambda: condition(workload_of(custom, namespace, "elastic"), "Finished").get("status")
          == "True", 30, "the Workload to be Finished")  # fmt: skip


def test_a_fixed_size_job_in_the_same_queue_waits_for_all_its_workers(
    operator: Operator, jobs: Jobs, one_worker_queue: client.CustomObjectsApi, namespace: str,
    tmp_path: Path,
):  # fmt: skip
    jobs.create(standin_job("fixed", tmp_path, "ok", "20", queueName="team"))
    status = jobs.wait_phase("fixed", "Queued", 60)
    until(lambda: condition(workload_of(one_worker_queue, namespace, "fixed"),
                            "QuotaReserved").get("reason") == "Pending",
          30, "Kueue to keep the fixed-size job waiting")  # fmt: skip
    (pod_set,) = workload_of(one_worker_queue, namespace, "fixed")["spec"]["podSets"]
    assert "minCount" not in pod_set
    status = until(lambda: (s := jobs.status("fixed")).get("reason") == "Pending" and s, 30,
                   "the job to carry Kueue's reason")  # fmt: skip
    assert condition(status, "Admitted")["status"] == "False"
    assert jobs.pods("fixed") == []


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_real_trainer_runs_a_partially_admitted_job_at_world_size_one(
    operator: Operator, jobs: Jobs, one_worker_queue: client.CustomObjectsApi, tmp_path: Path
):
    """examples/cpu-cluster.yaml (DDP over gloo) declared on 2 nodes, admitted with 1: the
    trainer reads its spec (2 nodes) from the ConfigMap and the size from its command line,
    trains at world size 1 and succeeds."""
    jobs.create(cpu_job("real", tmp_path, queueName="team", parallelism=ELASTIC,
                        training={"maxSteps": 40, "eval": {"everySteps": 20}}))  # fmt: skip
    status = jobs.wait_phase("real", ("Succeeded", "Failed"), 400)
    assert status["phase"] == "Succeeded", status
    assert condition(status, "Admitted")["reason"] == "PartiallyAdmitted"
    assert status["plan"]["worldSize"] == 1
    assert status["progress"]["step"] == 40
    (pod,) = jobs.pods("real")
    assert pod.spec.containers[0].command[-2:] == ["--set", "spec.parallelism.nodes=1"]
