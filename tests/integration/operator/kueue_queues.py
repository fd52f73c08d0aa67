"""The queues an operator test admits its jobs through: a ResourceFlavor, a ClusterQueue (one
flavor, preemption of lower priorities within it) for the test's namespace and its LocalQueue
`team` (kubetrain_testenv.kueue.queue_objects), plus PriorityClasses on demand; all removed
afterwards (the flavor, the ClusterQueue and the PriorityClasses are cluster-scoped)."""

from __future__ import annotations

import contextlib
import secrets
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kubetrain_testenv.kueue import GROUP, queue_objects

V = "v1beta1"
PLURALS = {"ResourceFlavor": "resourceflavors", "ClusterQueue": "clusterqueues",
           "LocalQueue": "localqueues"}  # fmt: skip


class Queues:
    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.scheduling = client.SchedulingV1Api(api)
        self.namespace = namespace
        self.name = f"kt-{secrets.token_hex(3)}"  # the flavor's and the ClusterQueue's
        self.priority_classes: list[str] = []

    def create(self, cpu: str, node_labels: dict[str, str] | None = None) -> None:
        """Quota for `cpu` (and memory enough for anything); the flavor's `node_labels`."""
        quota = {"cpu": cpu, "memory": "64Gi"}
        for obj in queue_objects(self.name, self.namespace, quota, node_labels=node_labels):
            plural = PLURALS[obj["kind"]]
            if obj["kind"] == "LocalQueue":
                self.custom.create_namespaced_custom_object(GROUP, V, self.namespace, plural, obj)
            else:
                self.custom.create_cluster_custom_object(GROUP, V, plural, obj)

    def set_cpu(self, cpu: str) -> None:
        """Change the ClusterQueue's CPU quota (Kueue then admits what fits)."""
        queue = self.custom.get_cluster_custom_object(GROUP, V, "clusterqueues", self.name)
        groups = queue["spec"]["resourceGroups"]
        for resource in groups[0]["flavors"][0]["resources"]:
            if resource["name"] == "cpu":
                resource["nominalQuota"] = cpu
        self.custom.patch_cluster_custom_object(
            GROUP, V, "clusterqueues", self.name, {"spec": {"resourceGroups": groups}}
        )

    def priority_class(self, value: int) -> str:
        name = f"{self.name}-{value}"
        self.scheduling.create_priority_class({"metadata": {"name": name}, "value": value})
        self.priority_classes.append(name)
        return name

    def workload_of(self, job: str) -> dict[str, Any] | None:
        """The job's Workload (None while there is none)."""
        items = self.custom.list_namespaced_custom_object(
            GROUP, V, self.namespace, "workloads"
        )["items"]
        mine = [w for w in items if w["metadata"]["labels"].get("kubetrain.io/job-name") == job]
        return mine[0] if mine else None

    def workload(self, job: str) -> dict[str, Any]:
        """The job's Workload, which must exist."""
        workload = self.workload_of(job)
        assert workload is not None, f"no Workload for job {job!r}"
        return workload

    def workload_condition(self, job: str, type_: str) -> dict[str, Any]:
        """The condition `type_` of the job's Workload ({} while there is neither)."""
        conditions = ((self.workload_of(job) or {}).get("status") or {}).get("conditions") or []
        return next((c for c in conditions if c["type"] == type_), {})

    def delete(self) -> None:
        for plural in ("clusterqueues", "resourceflavors"):
            with contextlib.suppress(ApiException):
                self.custom.delete_cluster_custom_object(GROUP, V, plural, self.name)
        for name in self.priority_classes:
            self.scheduling.delete_priority_class(name)
