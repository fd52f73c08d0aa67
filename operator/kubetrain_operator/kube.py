"""The one module that talks to the API server (the `kubernetes` client's REST layer).

Every write is either server-side apply under the field manager `kubetrain-operator`, a
delete with a UID precondition, a merge patch of the job's status, or an Event.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from kubetrain.api.job import KIND, PLURAL
from kubetrain_operator.decision import Event, PodRef
from kubetrain_operator.kueue import KUEUE_API
from kubetrain_operator.names import FIELD_MANAGER, selector

log = logging.getLogger(__name__)
Obj = dict[str, Any]
JOB_API = "/apis/kubetrain.io/v1alpha1"

# Paths of the kinds the operator writes (namespaced).
_COLLECTIONS = {
    ("v1", "Pod"): "/api/v1/namespaces/{ns}/pods",
    ("v1", "Service"): "/api/v1/namespaces/{ns}/services",
    ("v1", "ConfigMap"): "/api/v1/namespaces/{ns}/configmaps",
    ("v1", "ServiceAccount"): "/api/v1/namespaces/{ns}/serviceaccounts",
    ("rbac.authorization.k8s.io/v1", "Role"):
        "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"):
        "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings",
}  # fmt: skip


_VERBS = {"POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}


def request_kind(method: str, path: str) -> tuple[str, str]:
    """(verb, resource) of a request, named as the API server's audit log names them:
    ("list", "pods"), ("patch", "trainingjobs/status"), ("create", "events")..."""
    parts = path.split("?")[0].strip("/").split("/")
    rest = parts[2:] if parts[:1] == ["api"] else parts[3:]  # past the group and version
    if rest[:1] == ["namespaces"] and len(rest) > 2:
        rest = rest[2:]
    resource = "/".join(rest[0:3:2])  # the resource, and a subresource after the name
    if method == "GET":
        return ("get" if len(rest) > 1 else "list"), resource
    return _VERBS.get(method, method.lower()), resource


def is_status(error: Exception, *codes: int) -> bool:
    return isinstance(error, ApiException) and error.status in codes


def load_config() -> client.ApiClient:
    """In-cluster credentials when there are some, else the kubeconfig."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.ApiClient()


class Kube:
    """Typed-enough access to the few endpoints the operator needs."""

    def __init__(
        self,
        api: client.ApiClient | None = None,
        on_request: Callable[[str, str], None] | None = None,
    ) -> None:
        self.api = api or load_config()
        # The request metric, by verb and resource (request_kind).
        self.on_request = on_request or (lambda verb, resource: None)
        # Events are recorded by one thread of their own, in order: a reconcile never waits
        # for them (they change nothing it decides on).
        self._events = ThreadPoolExecutor(1, thread_name_prefix="events")

    def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> Obj:
        self.on_request(*request_kind(method, path))
        method, url, headers, body, post = self.api.param_serialize(
            method, path,
            query_params=query or [],
            header_params={"Content-Type": content_type, "Accept": "application/json"},
            body=body,
            auth_settings=["BearerToken"],
        )  # fmt: skip
        response = self.api.call_api(method, url, headers, body, post, _request_timeout=30)
        data = response.read()
        if not 200 <= response.status <= 299:
            raise ApiException(http_resp=response)
        return json.loads(data) if data else {}

    # -- TrainingJobs ---------------------------------------------------------------

    def job_path(self, namespace: str, name: str) -> str:
        return f"{JOB_API}/namespaces/{namespace}/{PLURAL}/{name}"

    def get_job(self, namespace: str, name: str) -> Obj | None:
        try:
            return self._call("GET", self.job_path(namespace, name))
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def patch_job_status(self, namespace: str, name: str, status: Obj) -> Obj:
        """Merge patch: touches only the fields given (the trainer owns status.progress);
        returns the job as the server now has it."""
        return self._call(
            "PATCH", self.job_path(namespace, name) + "/status", {"status": status},
            content_type="application/merge-patch+json",
        )  # fmt: skip

    def delete_job(self, namespace: str, name: str, uid: str) -> None:
        """Background propagation: the garbage collector removes the children."""
        body = {"propagationPolicy": "Background", "preconditions": {"uid": uid}}
        self._delete(self.job_path(namespace, name), body)

    # -- children -------------------------------------------------------------------

    def apply(self, obj: Obj) -> Obj:
        """Server-side apply (create or update) under our field manager."""
        ns, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        path = _COLLECTIONS[(obj["apiVersion"], obj["kind"])].format(ns=ns) + f"/{name}"
        return self._call(
            "PATCH", path, obj,
            query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
            content_type="application/apply-patch+yaml",
        )  # fmt: skip

    def list_pods(self, namespace: str, job: str) -> list[Obj]:
        labels = ",".join(f"{k}={v}" for k, v in selector(job).items())
        answer = self._call(
            "GET", f"/api/v1/namespaces/{namespace}/pods", query=[("labelSelector", labels)]
        )
        return list(answer.get("items") or [])

    def delete_pod(self, namespace: str, pod: PodRef, grace_seconds: int | None = None) -> None:
        """Delete one pod with its grace period (SIGTERM: the trainer checkpoints first)."""
        body: Obj = {"preconditions": {"uid": pod.uid}}
        if grace_seconds is not None:
            body["gracePeriodSeconds"] = grace_seconds
        self._delete(f"/api/v1/namespaces/{namespace}/pods/{pod.name}", body)

    def _delete(self, path: str, body: Obj) -> None:
        try:
            self._call("DELETE", path, body)
        except ApiException as e:
            if e.status not in (404, 409):  # gone already, or a newer object of that name
                raise

    # -- Kueue (jobs with a queueName) ---------------------------------------------

    def workload_path(self, namespace: str, name: str) -> str:
        return f"/apis/{KUEUE_API}/namespaces/{namespace}/workloads/{name}"

    def get_workload(self, namespace: str, name: str) -> Obj | None:
        return self._get_or_none(self.workload_path(namespace, name))

    def apply_workload(self, workload: Obj) -> Obj:
        """Server-side apply of a job's Workload (its spec; Kueue owns the status)."""
        meta = workload["metadata"]
        return self._call(
            "PATCH", self.workload_path(meta["namespace"], meta["name"]), workload,
            query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
            content_type="application/apply-patch+yaml",
        )  # fmt: skip

    def patch_workload_status(self, namespace: str, name: str, patch: Obj) -> Obj:
        """Merge patch of a Workload's status; its resourceVersion makes a stale one fail."""
        return self._call(
            "PATCH", self.workload_path(namespace, name) + "/status", patch,
            content_type="application/merge-patch+json",
        )  # fmt: skip

    def get_resource_flavor(self, name: str) -> Obj | None:
        return self._get_or_none(f"/apis/{KUEUE_API}/resourceflavors/{name}")

    def get_priority_class(self, name: str) -> Obj | None:
        return self._get_or_none(f"/apis/scheduling.k8s.io/v1/priorityclasses/{name}")

    def _get_or_none(self, path: str) -> Obj | None:
        try:
            return self._call("GET", path)
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    # -- events ---------------------------------------------------------------------

    def emit(self, job: Obj, event: Event) -> None:
        """Record an Event on the job in the background; failures are logged, never raised."""
        self._events.submit(self._emit, job, event, datetime.now(UTC))

    def close(self) -> None:
        """Stop recording Events: the ones not sent yet are dropped (an unreachable API server
        would otherwise hold the process's exit, 30 s per Event)."""
        self._events.shutdown(wait=False, cancel_futures=True)

    def _emit(self, job: Obj, event: Event, when: datetime) -> None:
        meta = job["metadata"]
        now = when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": job.get("apiVersion"), "kind": KIND, "name": meta["name"],
                "namespace": meta["namespace"], "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": event.type,
            "reason": event.reason,
            "message": event.message[:1024],
            "source": {"component": FIELD_MANAGER},
            "reportingComponent": FIELD_MANAGER,
            "reportingInstance": FIELD_MANAGER,
            "firstTimestamp": now[:19] + "Z",
            "lastTimestamp": now[:19] + "Z",
            "count": 1,
        }  # fmt: skip
        try:
            self._call("POST", f"/api/v1/namespaces/{meta['namespace']}/events", body)
        except (ApiException, OSError) as e:
            log.warning("cannot record event %s on %s: %s", event.reason, meta["name"], e)
