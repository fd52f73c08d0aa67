"""Watches for bench/operator_queued.py: when each object of a job's kinds first appeared, and
the TrainingJobs' MODIFIED events (status writes)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from kubetrain_operator.names import LABEL_JOB

GROUP, VERSION, PLURAL = "kubetrain.io", "v1alpha1", "trainingjobs"
KUEUE, KV = "kueue.x-k8s.io", "v1beta1"


class Arrivals:
    """Watches of the kinds the operator creates in one namespace (objects carrying the job
    label): the local time each object was first seen."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
        custom = client.CustomObjectsApi(api)
        self.lists: dict[str, Callable[..., Any]] = {
            "ServiceAccount": core.list_namespaced_service_account,
            "Role": rbac.list_namespaced_role,
            "RoleBinding": rbac.list_namespaced_role_binding,
            "ConfigMap": core.list_namespaced_config_map,
            "Service": core.list_namespaced_service,
            "Pod": core.list_namespaced_pod,
            "Workload": partial(
                custom.list_namespaced_custom_object, KUEUE, KV, plural="workloads"
            ),
        }
        self.namespace, self.stop = namespace, threading.Event()
        self.seen: dict[tuple[str, str], float] = {}
        self.lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self._watch, args=(k, f), daemon=True)
            for k, f in self.lists.items()
        ]
        self.ready = threading.Barrier(len(self.threads) + 1)

    def start(self) -> Arrivals:
        for t in self.threads:
            t.start()
        self.ready.wait(60)  # every watch has listed: nothing created later is missed
        return self

    def _watch(self, kind: str, fn: Callable[..., Any]) -> None:
        listed = fn(namespace=self.namespace, label_selector=LABEL_JOB)
        rv = listed["metadata"]["resourceVersion"] if isinstance(listed, dict) \
            else listed.metadata.resource_version  # fmt: skip
        self.ready.wait(60)
        while not self.stop.is_set():
            try:
                for ev in watch.Watch().stream(fn, namespace=self.namespace,
                                               label_selector=LABEL_JOB, resource_version=rv,
                                               timeout_seconds=5):  # fmt: skip
                    obj = ev["raw_object"]
                    rv = obj["metadata"]["resourceVersion"]
                    if ev["type"] == "ADDED":
                        with self.lock:
                            self.seen.setdefault((kind, obj["metadata"]["name"]),
                                                 time.monotonic())  # fmt: skip
            except ApiException as e:
                if e.status != 410:
                    raise
                rv = ""  # expired: start over (ADDED for known objects keep their first time)

    def count(self, kind: str | None = None) -> int:
        with self.lock:
            return sum(1 for k, _ in self.seen if kind is None or k == kind)

    def span(self, kind: str | None = None) -> tuple[float, float]:
        """(first, last) time an object (of `kind`) was seen."""
        with self.lock:
            times = [t for (k, _), t in self.seen.items() if kind is None or k == kind]
        return min(times), max(times)

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(15)


class JobWrites(threading.Thread):
    """MODIFIED events of TrainingJobs in one namespace: (time, name, phase)."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        super().__init__(daemon=True)
        self.custom, self.namespace = client.CustomObjectsApi(api), namespace
        self.stop, self.events = threading.Event(), []  # type: list[tuple[float, str, str]]
        self.rv = self.custom.list_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL)["metadata"]["resourceVersion"]  # fmt: skip

    def run(self) -> None:
        fn = partial(self.custom.list_namespaced_custom_object, GROUP, VERSION, plural=PLURAL)
        while not self.stop.is_set():
            for ev in watch.Watch().stream(fn, namespace=self.namespace, resource_version=self.rv,
                                           timeout_seconds=5):  # fmt: skip
                obj = ev["raw_object"]
                self.rv = obj["metadata"]["resourceVersion"]
                if ev["type"] == "MODIFIED":
                    phase = (obj.get("status") or {}).get("phase", "")
                    self.events.append((time.monotonic(), obj["metadata"]["name"], phase))
