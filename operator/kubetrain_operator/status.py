"""Observed pods + job + now → the job's status and the next action (pure).

`decide` is the whole state machine; handlers apply its `Decision` and patch
the status once. Everything it needs to remember lives in the status itself
(phase, restarts = restart generation, conditions' transition times), so an
operator restart continues where the last one stopped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kubetrain.api.spec import TrainingJobSpec
from kubetrain_operator.observe import (
    WAITING_PROBLEMS,
    Failure,
    ObservedPod,
    format_time,
    parse_time,
    worker_failure,
)

Obj = dict[str, Any]

ACTIVE = ("Pending", "Starting", "Running", "Restarting")
FINISHED = ("Succeeded", "Failed")
# The condition that is True in each phase (the others present are set False).
PHASE_CONDITIONS = {
    "Running": "Running",
    "Restarting": "Restarting",
    "Suspended": "Suspended",
    "Succeeded": "Succeeded",
    "Failed": "Failed",
}
INVALID_REASONS = ("InvalidSpec", "InvalidPodTemplate")
MAX_BACKOFF = 600.0
# A pod still there this long after its grace period ended has no kubelet to finish it (node
# lost): it is force-deleted, since its stable name blocks the group's next generation.
OVERDUE_SECONDS = 60.0
# Re-check active jobs at least this often, whatever else happens.
RESYNC_SECONDS = 60.0
WARNING_PHASES = frozenset({"Failed", "Restarting"})
PROBLEM_REASONS = frozenset({"Unschedulable", "StartTimeout", *WAITING_PROBLEMS})


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to record on the job."""

    type: str  # Normal | Warning
    reason: str
    message: str


@dataclass(frozen=True)
class PodRef:
    name: str
    uid: str


@dataclass
class Decision:
    """What the reconcile should do; `status` holds every operator-owned status field."""

    status: Obj
    create: list[int] = field(default_factory=list)
    delete: list[PodRef] = field(default_factory=list)
    force_delete: list[PodRef] = field(default_factory=list)
    delete_job: bool = False
    events: list[Event] = field(default_factory=list)
    requeue_after: float | None = None
    restarted: bool = False

    def requeue(self, seconds: float) -> None:
        """Ask to be called again in `seconds` (the earliest request wins)."""
        seconds = max(seconds, 0.5)
        if self.requeue_after is None or seconds < self.requeue_after:
            self.requeue_after = seconds


@dataclass(frozen=True)
class JobState:
    """The inputs: the job's name, generation, parsed spec and current status."""

    name: str
    generation: int
    spec: TrainingJobSpec | None  # None when the object does not even parse
    status: Obj


def set_condition(
    conditions: list[Obj], type_: str, status: str, reason: str, message: str, now: datetime
) -> list[Obj]:
    """Conditions with `type_` set; lastTransitionTime changes only when the status does."""
    out, found = [], False
    for c in conditions:
        if c.get("type") != type_:
            out.append(c)
            continue
        found = True
        changed = c.get("status") != status
        out.append({
            "type": type_, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": format_time(now) if changed else c.get("lastTransitionTime"),
        })  # fmt: skip
    if not found:
        out.append({
            "type": type_, "status": status, "reason": reason, "message": message,
            "lastTransitionTime": format_time(now),
        })  # fmt: skip
    return out


def condition(status: Obj, type_: str) -> Obj | None:
    return next((c for c in status.get("conditions") or [] if c.get("type") == type_), None)


def restart_backoff(spec: TrainingJobSpec, restarts: int) -> float:
    """Delay before restart number `restarts` (1-based): doubling, at most 10 min."""
    base = spec.run_policy.restart_backoff_seconds
    return min(base * 2 ** max(restarts - 1, 0), MAX_BACKOFF)


class _Machine:
    """One evaluation of the state machine; accumulates the decision."""

    def __init__(self, job: JobState, pods: list[ObservedPod], now: datetime) -> None:
        self.job, self.spec, self.now = job, job.spec, now
        old = dict(job.status)
        self.old_phase, self.old_reason = old.get("phase"), old.get("reason")
        gen = int(old.get("restarts") or 0)
        # Pods newer than the status (status lost or edited) are adopted, never duplicated.
        self.gen = max([gen, *(p.generation for p in pods)])
        self.pods = pods
        self.current = [p for p in pods if p.generation == self.gen]
        self.stale = [p for p in pods if p.generation != self.gen]
        self.status: Obj = {
            "phase": old.get("phase") or "Pending",
            "reason": old.get("reason") or "Created",
            "message": old.get("message") or "",
            "conditions": list(old.get("conditions") or []),
            "observedGeneration": job.generation,
            "startTime": old.get("startTime"),
            "completionTime": old.get("completionTime"),
            "restarts": self.gen,
        }
        self.d = Decision(status=self.status)
        self.spec_edited = old.get("observedGeneration") not in (None, job.generation)

    # -- building blocks -------------------------------------------------------------

    def transition(self, phase: str, reason: str, message: str) -> None:
        """Enter `phase`; an Event records every change of phase or reason."""
        if (phase, reason) != (self.status["phase"], self.status["reason"]):
            self.event(phase, reason, message)
        self.status.update(phase=phase, reason=reason, message=message)
        if phase in FINISHED:  # earlier checks (heartbeat, start) no longer matter
            self.d.requeue_after = None
        conditions = self.status["conditions"]
        for ph, type_ in PHASE_CONDITIONS.items():
            if ph == phase:
                conditions = set_condition(conditions, type_, "True", reason, message, self.now)
            elif condition({"conditions": conditions}, type_) is not None:
                conditions = set_condition(conditions, type_, "False", reason, message, self.now)
        self.status["conditions"] = conditions

    def event(self, phase: str, reason: str, message: str) -> None:
        warning = phase in WARNING_PHASES or reason in PROBLEM_REASONS
        kind = "Warning" if warning else "Normal"
        self.d.events.append(Event(kind, reason, f"{phase}: {message}"))

    def delete(self, pods: list[ObservedPod]) -> None:
        for p in pods:
            ref = PodRef(p.name, p.uid)
            if not p.deleting and ref not in self.d.delete:
                self.d.delete.append(ref)

    def _force_overdue(self, pods: list[ObservedPod]) -> None:
        for p in pods:
            if p.grace_ends and (self.now - p.grace_ends).total_seconds() > OVERDUE_SECONDS:
                self.d.force_delete.append(PodRef(p.name, p.uid))

    def since(self, value: str | None) -> float | None:
        t = parse_time(value)
        return None if t is None else (self.now - t).total_seconds()

    # -- the machine -----------------------------------------------------------------

    def run(self) -> Decision:
        self._step()
        self.status["replicas"] = self._replicas()
        return self.d

    def _step(self) -> None:
        phase = self.status["phase"]
        if phase == "Failed" and self.status["reason"] in INVALID_REASONS and self.spec_edited:
            self.transition("Pending", "SpecUpdated", "the spec was fixed; starting again")
            self.status["completionTime"] = None
        elif phase in FINISHED:
            return self._finished()
        if self.spec.run_policy.suspend:
            return self._suspend()
        if phase == "Suspended":
            self.transition("Pending", "Resumed", "resumed; continuing from the last checkpoint")
        if self._deadline_exceeded():
            return
        if self.stale:  # the previous generation must be gone before the next starts
            self.delete(self.stale)
            self._force_overdue(self.stale)
            self.d.requeue(RESYNC_SECONDS)
            return
        if self.status["phase"] in ("Pending", "Restarting") and any(
            p.deleting for p in self.current
        ):  # pods removed by a suspend: names are reused, so wait until they are gone
            self._force_overdue(self.current)
            self.d.requeue(RESYNC_SECONDS)
            return
        failure = self._failure()
        if failure is not None:
            return self._fail_or_restart(failure)
        if self.status["phase"] == "Restarting" and not self._backoff_elapsed():
            return
        self._progress()

    def _finished(self) -> None:
        """cleanPodPolicy, then ttlSecondsAfterFinished."""
        if self.spec is None:  # an unparsable job: nothing of it may run
            self.delete(self.pods)
            return
        policy = self.spec.run_policy.clean_pod_policy
        if policy == "All":
            self.delete(self.pods)
        elif policy == "Running" or self.status["phase"] == "Failed":
            # A failed job never keeps pods running (they would hold GPUs for nothing);
            # finished ones stay for their logs unless the policy is All.
            self.delete([p for p in self.pods if not p.finished])
        ttl = self.spec.run_policy.ttl_seconds_after_finished
        age = self.since(self.status.get("completionTime"))
        if ttl is not None and age is not None:
            if age >= ttl:
                self.d.delete_job = True
            else:
                self.d.requeue(ttl - age)

    def _suspend(self) -> None:
        self.delete(self.pods)
        if self.status["phase"] != "Suspended":
            self.transition("Suspended", "Suspended", "pods removed; checkpoints kept")
        # The deadline counts running time only (as a Job's does): it restarts on resume.
        self.status["startTime"] = None

    def _deadline_exceeded(self) -> bool:
        limit = self.spec.run_policy.active_deadline_seconds
        elapsed = self.since(self.status.get("startTime"))
        if limit is None or elapsed is None:
            return False
        if elapsed < limit:
            self.d.requeue(limit - elapsed)
            return False
        self._fail("DeadlineExceeded", f"the job ran longer than activeDeadlineSeconds ({limit})")
        return True

    def _fail(self, reason: str, message: str) -> None:
        self.transition("Failed", reason, message)
        self.status["completionTime"] = format_time(self.now)
        self._finished()

    def _failure(self) -> Failure | None:
        """The first worker failure of the current generation (or a stall)."""
        for pod in sorted(self.current, key=lambda p: p.index):
            failure = worker_failure(pod)
            if failure is not None:
                return failure
        if self.status["phase"] in ("Starting", "Running"):
            present = {p.index for p in self.current if not p.deleting}
            missing = [i for i in range(self.spec.parallelism.nodes) if i not in present]
            if missing:
                names = ", ".join(f"{self.job.name}-worker-{i}" for i in missing)
                return Failure("PodDeleted", f"worker pod deleted: {names}", True)
        return self._stall()

    def _stall(self) -> Failure | None:
        if self.status["phase"] != "Running":
            return None
        running = condition(self.status, "Running")
        progress = self.job.status.get("progress") or {}
        beats = [parse_time(progress.get("heartbeatTime")), parse_time((running or {}).get(
            "lastTransitionTime"))]
        seen = [b for b in beats if b is not None]
        if not seen:
            return None
        timeout = self.spec.run_policy.heartbeat_timeout_seconds
        quiet = (self.now - max(seen)).total_seconds()
        if quiet < timeout:
            self.d.requeue(timeout - quiet)
            return None
        return Failure("Stalled", f"no trainer heartbeat for {int(quiet)}s "
                       f"(heartbeatTimeoutSeconds {timeout})", True)

    def _fail_or_restart(self, failure: Failure) -> None:
        if not failure.retryable:
            return self._fail(failure.reason, failure.message)
        limit = self.spec.run_policy.max_restarts
        if self.gen >= limit:
            return self._fail(
                "BackoffLimitExceeded", f"{limit} restarts used; last failure: {failure.message}"
            )
        self.gen += 1
        self.status["restarts"] = self.gen
        self.delete(self.current)
        self.transition("Restarting", failure.reason, failure.message)
        self.d.restarted = True
        self.d.requeue(restart_backoff(self.spec, self.gen))

    def _backoff_elapsed(self) -> bool:
        since = self.since((condition(self.status, "Restarting") or {}).get("lastTransitionTime"))
        wait = restart_backoff(self.spec, self.gen) - (since or 0.0)
        if wait > 0:
            self.d.requeue(wait)
            return False
        return True

    def _progress(self) -> None:
        nodes = self.spec.parallelism.nodes
        cur = self.current
        phase = self.status["phase"]
        if phase in ("Pending", "Restarting"):
            present = {p.index for p in cur}
            self.d.create = [i for i in range(nodes) if i not in present]
            if self.d.create or cur:
                self.transition("Starting", "PodsStarting",
                                f"creating {nodes} worker pod(s), restart generation {self.gen}")
                self.status["startTime"] = self.status.get("startTime") or format_time(self.now)
            self.d.requeue(RESYNC_SECONDS)
            return
        if len(cur) == nodes and all(p.succeeded for p in cur):
            self.transition("Succeeded", "Completed", "training finished")
            self.status["completionTime"] = format_time(self.now)
            return self._finished()
        if all(p.running or p.succeeded for p in cur) and len(cur) == nodes:
            if phase != "Running":
                self.transition("Running", "Training", f"{nodes} worker pod(s) running")
                if condition(self.status, "PodsStarted") is not None:
                    self.status["conditions"] = set_condition(
                        self.status["conditions"], "PodsStarted", "True", "Running",
                        "all worker pods running", self.now)  # fmt: skip
            self._stall()  # schedules the next heartbeat check
            self.d.requeue(RESYNC_SECONDS)
            return
        self._check_start_timeout()

    def _check_start_timeout(self) -> None:
        timeout = self.spec.run_policy.start_timeout_seconds
        waiting = [p for p in self.current if not p.running and not p.finished]
        ages = [(self.now - p.created).total_seconds() for p in waiting if p.created]
        self.d.requeue(RESYNC_SECONDS)
        if not ages:
            return
        if max(ages) < timeout:
            self.d.requeue(timeout - max(ages))
            return
        pod = waiting[ages.index(max(ages))]
        if pod.unschedulable:
            reason, message = "Unschedulable", pod.unschedulable
        elif pod.waiting_reason in WAITING_PROBLEMS:
            reason, message = pod.waiting_reason, pod.waiting_message or pod.waiting_reason
        else:
            reason, message = "StartTimeout", "pod not running"
        message = f"{pod.name} not running after {int(max(ages))}s: {message}"
        self.status["conditions"] = set_condition(
            self.status["conditions"], "PodsStarted", "False", reason, message, self.now
        )
        self.transition("Starting", reason, message)

    def _replicas(self) -> Obj:
        cur = self.current if self.status["phase"] != "Restarting" else []
        return {
            "active": sum(1 for p in cur if not p.finished and not p.deleting),
            "succeeded": sum(1 for p in cur if p.succeeded),
            "failed": sum(1 for p in cur if p.phase == "Failed"),
        }



def decide(job: JobState, pods: list[ObservedPod], now: datetime) -> Decision:
    """The status the job should have and what to do to get there."""
    return _Machine(job, pods, now).run()


def invalid(
    job: JobState, pods: list[ObservedPod], message: str, now: datetime, reason: str = "InvalidSpec"
) -> Decision:
    """A spec the operator cannot run: Failed with reason InvalidSpec, never retried
    (a later edit of the spec starts it again)."""
    m = _Machine(job, pods, now)
    if (m.status["phase"], m.status["reason"], m.status["message"]) != (
        "Failed", reason, message
    ):
        m._fail(reason, message)
    else:
        m._finished()
    m.delete(m.pods)
    m.status["replicas"] = m._replicas()
    return m.d


def changed_fields(current: Obj, desired: Obj) -> Obj:
    """The part of `desired` that differs from `current` (what the status patch carries)."""
    return {k: v for k, v in desired.items() if current.get(k) != v}


__all__ = ["Decision", "Event", "JobState", "PodRef", "decide", "invalid", "set_condition"]
