"""kopf wiring only: watch events feed a work queue; workers run `Reconciler.reconcile`.

Why not kopf's create/update handlers with timers: kopf puts a finalizer on every object
that has a timer or daemon, so deleting a job would block while the operator is down.
Plain watch-event handlers need no finalizer and store nothing on the object; the queue
gives level-based reconciles with exact requeue times instead (docs/design-operator.md).
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf

from kubetrain.api.job import GROUP, PLURAL, VERSION
from kubetrain_operator.cache import by_label
from kubetrain_operator.children import WATCHED
from kubetrain_operator.kueue import KUEUE_GROUP
from kubetrain_operator.names import LABEL_JOB
from kubetrain_operator.reconcile import Key, Reconciler
from kubetrain_operator.workqueue import WorkQueue

log = logging.getLogger("kubetrain_operator")


class Controller:
    """The queue and its workers, living in kopf's event loop."""

    def __init__(self, reconciler: Reconciler, workers: int = 4) -> None:
        self.reconciler = reconciler
        self.workers = workers
        self.queue: WorkQueue | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="reconcile")
        self._seen: dict[Key, tuple[Any, ...]] = {}

    def start(self) -> None:
        self.queue = WorkQueue()
        self._tasks = [asyncio.create_task(self._work()) for _ in range(self.workers)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._executor.shutdown(wait=False, cancel_futures=True)
        self.reconciler.kube.close()

    def job_event(self, key: Key, kind: str | None, body: dict[str, Any]) -> None:
        assert self.queue is not None
        self.reconciler.jobs.event(kind, body)
        if kind == "DELETED":
            self._seen.pop(key, None)
            self.queue.forget(key)
            self.reconciler.forget(key)
            self.reconciler.metrics.set_progress(key, None)
            return
        meta = body.get("metadata", {})
        if kind == "ADDED":  # created while we watch (the start's listing has no type)
            self.reconciler.created(key, meta.get("uid", ""))
        self.reconciler.metrics.set_progress(key, (body.get("status") or {}).get("progress"))
        # Progress updates (the trainer's, every few seconds) change nothing to decide on;
        # heartbeats are checked at their deadline by a timed requeue.
        fingerprint = (
            meta.get("uid"), meta.get("generation"), meta.get("deletionTimestamp"),
            tuple(sorted((meta.get("annotations") or {}).items())),
        )  # fmt: skip
        if self._seen.get(key) != fingerprint:
            self._seen[key] = fingerprint
            self.queue.add(key)

    def child_event(self, kind: str | None, obj: dict[str, Any]) -> None:
        """A Service, ConfigMap, ServiceAccount, Role or RoleBinding of a job changed or went:
        remember it, and reconcile the job (which re-applies it if it drifted)."""
        key = self.reconciler.children.event(kind, obj)
        if key is not None:
            self.wake(key)

    def workload_event(self, kind: str | None, obj: dict[str, Any]) -> None:
        """A job's Kueue Workload changed (admitted, pending, evicted): remember it, reconcile
        the job."""
        self.reconciler.workloads.event(kind, obj)
        key = by_label(obj)
        if key is not None:
            self.wake(key)

    def wake(self, key: Key) -> None:
        assert self.queue is not None
        if key in self._seen:  # pods of jobs we do not know yet are found once the job is
            self.queue.add(key)

    async def _work(self) -> None:
        assert self.queue is not None
        loop = asyncio.get_running_loop()
        while True:
            key = await self.queue.get()
            try:
                delay = await loop.run_in_executor(self._executor, self.reconciler.reconcile, key)
            except Exception:
                log.exception("reconcile of %s/%s failed; retrying with back-off", *key)
                self.queue.add_rate_limited(key)
            else:
                self.queue.forget_failures(key)
                if delay is not None:
                    self.queue.add_after(key, delay)
            finally:
                self.queue.done(key)


def build_registry(controller: Controller) -> kopf.OperatorRegistry:
    """A fresh registry with the operator's handlers (one per operator, also in tests)."""
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        return kopf.login_via_client(**kwargs)

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        # No handler here needs a finalizer, progress or diff-base storage; name ours
        # explicitly so nothing is ever written under kopf's default keys.
        settings.persistence.finalizer = f"{GROUP}/finalizer"
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=GROUP, key="last-handled-configuration"
        )
        settings.posting.enabled = False  # our Events come from the reconciler
        settings.watching.server_timeout = 300
        # Children are watched through the API server's label selector: the operator keeps no
        # copy of the namespace's other ConfigMaps, Services... (RBAC cannot narrow list/watch
        # to labels, the selector narrows what is sent).
        for resource in WATCHED:
            settings.watching.label_selectors[resource] = LABEL_JOB
        controller.start()

    @kopf.on.cleanup(registry=registry)
    async def cleanup(**_: Any) -> None:
        await controller.stop()

    @kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)
    async def job_event(event: kopf.RawEvent, namespace: str, name: str, **_: Any) -> None:
        controller.job_event((namespace, name), event.get("type"), dict(event["object"]))

    @kopf.on.event("", "v1", "pods", labels={LABEL_JOB: kopf.PRESENT}, registry=registry)
    async def pod_event(namespace: str, labels: kopf.Labels, **_: Any) -> None:
        controller.wake((namespace, labels[LABEL_JOB]))

    # A job's Kueue Workload (admitted, evicted) fills the Workload cache (cache.py) and wakes
    # the job's reconcile. Where Kueue is not installed kopf finds no such resource and watches
    # nothing.
    @kopf.on.event(KUEUE_GROUP, "v1beta1", "workloads", labels={LABEL_JOB: kopf.PRESENT},
                   registry=registry)  # fmt: skip
    async def workload_event(event: kopf.RawEvent, **_: Any) -> None:
        controller.workload_event(event.get("type"), dict(event["object"]))

    # The job's other children: one edited or deleted by hand is put back by the reconcile.
    async def child_event(event: kopf.RawEvent, **_: Any) -> None:
        controller.child_event(event.get("type"), dict(event["object"]))

    for group, version, plural in WATCHED:
        # No client-side label filter: a child whose job label was removed by hand arrives
        # as DELETED (it left the selector), which may carry the object without the label.
        kopf.on.event(group, version, plural, registry=registry)(child_event)

    return registry
