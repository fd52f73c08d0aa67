"""One level-based reconcile of one TrainingJob: read → validate → render → apply → observe →
decide → act → patch status once. Idempotent: running it twice changes nothing more."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from kubernetes.client.exceptions import ApiException

from kubetrain.api.conditions import ConditionType, Reason
from kubetrain.api.plan import resolve_plan
from kubetrain.api.spec import TrainingJobSpec
from kubetrain.api.status import TrainingJobStatus
from kubetrain.errors import InvalidJob
from kubetrain_operator import validation
from kubetrain_operator.cache import Bodies, by_label
from kubetrain_operator.children import Children, ref_of
from kubetrain_operator.conditions import find_condition, set_condition
from kubetrain_operator.decision import Decision, Event, JobState
from kubetrain_operator.drift import MISSING, fingerprint, repair
from kubetrain_operator.kube import Kube
from kubetrain_operator.kueue import Placement, place
from kubetrain_operator.metrics import Metrics
from kubetrain_operator.names import JobMeta
from kubetrain_operator.observe import ObservedPod, observe_pod
from kubetrain_operator.queueing import Gate
from kubetrain_operator.render import render_children, render_worker_pod
from kubetrain_operator.status import decide, invalid
from kubetrain_operator.status_patch import status_patch

log = logging.getLogger("kubetrain_operator")
Key = tuple[str, str]
# How often a job is read from the API server instead of the cache: a watch that was
# restarted (kopf lists again) shows no deletion that happened in between.
RESYNC_SECONDS = 300.0


def _now() -> datetime:
    return datetime.now(UTC)


class Reconciler:
    def __init__(
        self, kube: Kube, metrics: Metrics, clock: Callable[[], datetime] = _now
    ) -> None:
        self.kube, self.metrics, self.clock = kube, metrics, clock
        # Jobs, Workloads and children as last seen (fed by handlers.py's watches and by our
        # writes' answers): a reconcile reads them without a request (cache.py). Pods are
        # LISTed (but not those of a job known to have none: `_podless`): decisions to create
        # and delete them are made on what the server has.
        self.jobs = Bodies()
        self.workloads = Bodies(by_label)
        self.children = Children()
        self.gate = Gate(kube, clock, self.workloads)  # Kueue admission of a queueName
        # When each job was last read from the API server rather than the cache.
        self._read: dict[Key, float] = {}
        # Jobs (their UID) known to have no pod: seen created by the watch, or a LIST found
        # none and no pod was made since. Only this process makes their pods, so a reconcile
        # lists none until it is about to make or delete one (a queued job waits without a
        # LIST per reconcile).
        self._podless: dict[Key, str] = {}
        # (uid, generation) whose children were applied once: later applies are repairs.
        self._applied: dict[Key, tuple[str, int]] = {}

    def created(self, key: Key, uid: str) -> None:
        """The watch saw the job created (not listed at start): no pod of it exists yet."""
        if self._applied.get(key, ("",))[0] != uid:  # else a late event of a job we run
            self._podless[key] = uid

    def forget(self, key: Key) -> None:
        self._applied.pop(key, None)
        self._read.pop(key, None)
        self._podless.pop(key, None)
        for cache in (self.jobs, self.workloads):
            cache.forget(key)
        self.children.forget(key)
        self.metrics.set_phase(key, None)

    def reconcile(self, key: Key) -> float | None:
        """Bring one job closer to its spec; returns when to look again (seconds) or None."""
        with self.metrics.reconcile_timer():
            seen: dict[str, Any] = {}
            try:
                return self._reconcile(key, seen)
            except ApiException as e:
                if "obj" in seen and e.status not in (404, 409):
                    self._report(seen["obj"], e)
                raise  # retried with back-off by the queue

    def _report(self, obj: dict[str, Any], error: ApiException) -> None:
        """Say in the job's status why it does not progress (a quota, missing RBAC...)."""
        current = TrainingJobStatus.model_validate(obj.get("status") or {})
        message = f"{error.status} {_api_message(error)}"[:1024]
        conditions = set_condition(
            current.conditions, ConditionType.RECONCILE_ERROR, "True", Reason.API_ERROR, message,
            self.clock(),
        )  # fmt: skip
        patch = status_patch(current, current.model_copy(update={"conditions": conditions}))
        if patch:
            meta = obj["metadata"]
            with contextlib.suppress(ApiException):
                self.jobs.wrote(self.kube.patch_job_status(meta["namespace"], meta["name"], patch))

    def _reconcile(self, key: Key, seen: dict[str, Any]) -> float | None:
        namespace, name = key
        obj = None if self._resync_due(key) else self.jobs.get(key)
        if obj is None:  # not seen by the watch (yet), or time to check the cache: read it
            obj = self.kube.get_job(namespace, name)
            self._read[key] = time.monotonic()
            if obj is not None:
                self.jobs.wrote(obj)
        if obj is None or obj["metadata"].get("deletionTimestamp"):
            self.forget(key)  # the garbage collector removes the children
            return None
        seen["obj"] = obj
        meta = JobMeta.from_object(obj)
        status = TrainingJobStatus.model_validate(obj.get("status") or {})
        spec, problems = validation.parse(obj)
        if spec is not None:
            problems = validation.validate(meta.name, dict(meta.annotations), spec)
        podless = self._podless.get(key) == meta.uid
        pods = [] if podless else [observe_pod(p) for p in self.kube.list_pods(namespace, name)]
        job = JobState(meta.name, meta.generation, spec if not problems else None, status,
                       meta.uid)
        now = self.clock()
        if problems:
            return self._act(obj, meta, job, invalid(job, pods, "; ".join(problems), now))
        assert spec is not None
        if not (status.phase and status.phase.finished):  # a finished job's are left alone
            self._apply_children(key, meta, spec)
        job = JobState(meta.name, meta.generation, spec, status, meta.uid)
        queued = spec.queue_name and not spec.run_policy.suspend and not (
            status.phase and status.phase.finished
        )
        verdict = self.gate.check(meta, spec, job, pods) if queued else None
        if verdict is not None and verdict.wait is not None:
            self._note_podless(key, meta.uid, pods, podless)
            return verdict.wait  # Kueue's word first: then one status write, not two
        if verdict is not None and verdict.hold is None and verdict.job.spec is not None:
            # Admitted (perhaps partially): pods, world size and plan follow the admitted size.
            spec = verdict.job.spec
            job = replace(job, spec=spec)
        if verdict is not None and verdict.hold is not None:
            decision = verdict.hold  # waiting for Kueue (or evicted by it): no pods
        else:
            decision = decide(verdict.job if verdict else job, pods, now)
        touches = bool(decision.create or decision.delete or decision.force_delete)
        if podless and touches:
            # About to touch pods: decide on what the server has (a deleted job of the same
            # name may still have pods), from a LIST, from now on.
            del self._podless[key]
            return self._reconcile(key, seen)
        if not touches:
            self._note_podless(key, meta.uid, pods, podless)
        if (verdict is None or verdict.hold is None) and spec.queue_name:
            self.gate.finish(meta, decision)
        if not status.phase:  # the first reconcile of this job
            decision.events += [Event("Warning", Reason.CHECKPOINTS_NOT_SHARED, w)
                                for w in validation.warnings(spec)]  # fmt: skip
        done = decision.status.phase is not None and decision.status.phase.finished
        if not (done and decision.status.plan):  # a finished job keeps the plan it ran with
            with contextlib.suppress(InvalidJob):  # validation reported it already
                decision.status.plan = resolve_plan(spec)
        return self._act(obj, meta, job, decision, verdict.placement if verdict else None)

    def _note_podless(
        self, key: Key, uid: str, pods: list[ObservedPod], podless: bool
    ) -> None:
        """A LIST found no pod and this pass makes none: there is none until we make one."""
        if not (podless or pods):
            self._podless[key] = uid

    def _resync_due(self, key: Key) -> bool:
        now = time.monotonic()
        read = self._read.setdefault(key, now)  # the watch event that queued it is fresh
        return now - read > RESYNC_SECONDS

    def _apply_children(self, key: Key, meta: JobMeta, spec: TrainingJobSpec) -> None:
        """Apply each child that is missing or differs from its rendering (drift.py); an
        unchanged one costs no request."""
        repairing = self._applied.get(key) == (meta.uid, meta.generation)
        for child in render_children(meta, spec):
            ref = ref_of(child)
            why = repair(child, self.children.get(ref), self.children.written(ref))
            if not why:
                continue
            if repairing:
                log.info("%s/%s: %s %s %s; applying it again", meta.namespace, meta.name,
                         ref[1], ref[2], "is gone" if why == [MISSING] else
                         f"differs at {', '.join(why)}")  # fmt: skip
            answer = self.kube.apply(child)
            self.children.wrote(key, answer, fingerprint(child))
            cause = "missing" if why == [MISSING] else "changed"
            self.metrics.child_applies.labels(ref[1], cause).inc()
        self._applied[key] = (meta.uid, meta.generation)

    def _act(
        self, obj: dict[str, Any], meta: JobMeta, job: JobState, d: Decision,
        placement: Placement | None = None,
    ) -> float | None:  # fmt: skip
        ns = meta.namespace
        for ref in d.delete:
            self.kube.delete_pod(ns, ref)
        for ref in d.force_delete:
            log.warning("%s/%s: force-deleting %s (overdue)", ns, meta.name, ref.name)
            self.kube.delete_pod(ns, ref, grace_seconds=0)
        if d.create:
            assert job.spec is not None
            generation = d.status.restarts
            try:
                for index in d.create:
                    pod = render_worker_pod(meta, job.spec, index, generation)
                    self.kube.apply(place(pod, placement) if placement else pod)
            except ApiException as e:
                if e.status not in (400, 422):
                    raise
                # The API server rejects the pod (a bad override): retrying cannot help.
                reason = _api_message(e)
                message = f"worker pod rejected: {reason}"
                d = invalid(job, [], message, self.clock(), reason=Reason.INVALID_POD_TEMPLATE)
        error = find_condition(d.status, ConditionType.RECONCILE_ERROR)
        if error is not None and error.status == "True":  # this pass got through
            d.status.conditions = set_condition(
                d.status.conditions, ConditionType.RECONCILE_ERROR, "False", Reason.RECONCILED, "",
                self.clock(),
            )  # fmt: skip
        patch = status_patch(job.status, d.status)
        if patch:
            self.jobs.wrote(self.kube.patch_job_status(ns, meta.name, patch))
        for event in d.events:
            log.info("%s/%s: %s %s", ns, meta.name, event.reason, event.message)
            self.kube.emit(obj, event)
        if d.restarted:
            self.metrics.restarts.labels(d.status.reason or "Unknown").inc()
        self.metrics.set_phase((ns, meta.name), d.status.phase)
        if d.delete_job:
            log.info("%s/%s: ttlSecondsAfterFinished passed; deleting the job", ns, meta.name)
            self.kube.delete_job(ns, meta.name, meta.uid)
            return None
        return d.requeue_after


def _api_message(e: ApiException) -> str:
    try:
        return str(json.loads(e.body).get("message", e.reason))
    except (TypeError, ValueError):
        return str(e.reason)
