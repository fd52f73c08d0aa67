"""Observed pods + job + now → the job's status and the next action (pure).

`decide` is the whole state machine; handlers apply its `Decision` and patch
the status once. Everything it needs to remember lives in the status itself
(phase, restarts = restart generation, conditions' transition times), so an
operator restart continues where the last one stopped.
"""

from __future__ import annotations

from datetime import datetime

from kubetrain.api.conditions import WAITING_PROBLEMS, ConditionType, Phase, Reason
from kubetrain.api.spec import TrainingJobSpec
from kubetrain.api.status import ConditionStatus, Replicas
from kubetrain_operator.conditions import find_condition, set_condition
from kubetrain_operator.decision import Decision, Event, JobState, PodRef
from kubetrain_operator.observe import (
    Failure,
    ObservedPod,
    disrupted,
    format_time,
    parse_time,
    worker_failure,
)

# The condition that is True in each phase (the others present are set False).
PHASE_CONDITIONS = {
    Phase.RUNNING: ConditionType.RUNNING,
    Phase.RESTARTING: ConditionType.RESTARTING,
    Phase.SUSPENDED: ConditionType.SUSPENDED,
    Phase.SUCCEEDED: ConditionType.SUCCEEDED,
    Phase.FAILED: ConditionType.FAILED,
}
INVALID_REASONS = (Reason.INVALID_SPEC, Reason.INVALID_POD_TEMPLATE)
MAX_BACKOFF = 600.0
# A pod still there this long after its grace period ended has no kubelet to finish it (node
# lost): it is force-deleted, since its stable name blocks the group's next generation.
OVERDUE_SECONDS = 60.0
# Re-check active jobs at least this often, whatever else happens.
RESYNC_SECONDS = 60.0
WARNING_PHASES = frozenset({Phase.FAILED, Phase.RESTARTING})
PROBLEM_REASONS = frozenset({Reason.UNSCHEDULABLE, Reason.START_TIMEOUT, *WAITING_PROBLEMS})


def restart_backoff(spec: TrainingJobSpec, restarts: int) -> float:
    """Delay before restart number `restarts` (1-based): doubling, at most 10 min."""
    base = spec.run_policy.restart_backoff_seconds
    return min(base * 2 ** max(restarts - 1, 0), MAX_BACKOFF)


class _Machine:
    """One evaluation of the state machine; accumulates the decision."""

    def __init__(self, job: JobState, pods: list[ObservedPod], now: datetime) -> None:
        self.job, self.now = job, now
        old = job.status
        # A pod of an earlier job of the same name holds a name the new one needs: wait for it
        # to go (the garbage collector deletes it), never adopt it.
        self.foreign = [p for p in pods if job.uid and p.owner_uid != job.uid]
        pods = [p for p in pods if p not in self.foreign]
        # Pods newer than the status (status lost or edited) are adopted, never duplicated.
        self.gen = max([old.restarts, *(p.generation for p in pods)])
        self.pods = pods
        self.current = [p for p in pods if p.generation == self.gen]
        self.stale = [p for p in pods if p.generation != self.gen]
        # The desired status starts as the current one: what is not decided here stays.
        self.status = old.model_copy(deep=True, update={
            "phase": old.phase or Phase.PENDING,
            "reason": old.reason or Reason.CREATED,
            "message": old.message or "",
            "observed_generation": job.generation,
            "restarts": self.gen,
        })  # fmt: skip
        self.d = Decision(status=self.status)
        self.spec_edited = old.observed_generation not in (None, job.generation)

    @property
    def phase(self) -> Phase:
        return self.status.phase or Phase.PENDING

    @property
    def spec(self) -> TrainingJobSpec:
        assert self.job.spec is not None, "a job without a spec only fails and finishes"
        return self.job.spec

    # -- building blocks -------------------------------------------------------------

    def transition(self, phase: Phase, reason: str, message: str) -> None:
        """Enter `phase`; an Event records every change of phase or reason."""
        if (phase, reason) != (self.status.phase, self.status.reason):
            self.event(phase, reason, message)
        self.status.phase, self.status.reason, self.status.message = phase, reason, message
        if phase.finished:  # earlier checks (heartbeat, start) no longer matter
            self.d.requeue_after = None
        for ph, type_ in PHASE_CONDITIONS.items():
            if ph == phase:
                self.set_condition(type_, "True", reason, message)
            elif find_condition(self.status, type_) is not None:
                self.set_condition(type_, "False", reason, message)

    def set_condition(
        self, type_: ConditionType, status: ConditionStatus, reason: str, message: str
    ) -> None:
        self.status.conditions = set_condition(
            self.status.conditions, type_, status, reason, message, self.now
        )

    def event(self, phase: Phase, reason: str, message: str) -> None:
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
        self.status.replicas = self._replicas()
        return self.d

    def _step(self) -> None:
        fixed = self.status.reason in INVALID_REASONS and self.spec_edited
        if self.phase == Phase.FAILED and fixed:
            self.transition(
                Phase.PENDING, Reason.SPEC_UPDATED, "the spec was fixed; starting again"
            )
            self.status.completion_time = None
        elif self.phase.finished:
            return self._finished()
        if self.spec.run_policy.suspend:
            return self._suspend()
        if self.phase == Phase.SUSPENDED:
            self.transition(
                Phase.PENDING, Reason.RESUMED, "resumed; continuing from the last checkpoint"
            )
        if self.phase == Phase.QUEUED:
            # Waiting for admission: no pods, and no deadline counts (see _deadline_exceeded).
            self.status.start_time = None
        if self._deadline_exceeded():
            return
        if self.foreign and self.phase in (Phase.PENDING, Phase.RESTARTING):
            names = ", ".join(sorted(p.name for p in self.foreign))
            self.status.message = f"waiting for pods of an earlier job of this name to go: {names}"
            self.d.requeue(RESYNC_SECONDS)
            return
        if self.stale:  # the previous generation must be gone before the next starts
            self.delete(self.stale)
            self._force_overdue(self.stale)
            self.d.requeue(RESYNC_SECONDS)
            return
        if self.phase in (Phase.PENDING, Phase.RESTARTING) and any(
            p.deleting for p in self.current
        ):  # pods removed by a suspend: names are reused, so wait until they are gone
            self._force_overdue(self.current)
            self.d.requeue(RESYNC_SECONDS)
            return
        if self._resized():
            return self._fail_or_restart(Failure(
                Reason.RESIZED, f"restarting at {self.spec.parallelism.nodes} node(s)", True, True
            ))  # fmt: skip
        failure = self._failure()
        if failure is not None:
            return self._fail_or_restart(failure)
        if self.phase == Phase.RESTARTING and not self._backoff_elapsed():
            return
        self._progress()

    def _finished(self) -> None:
        """cleanPodPolicy, then ttlSecondsAfterFinished."""
        if self.job.spec is None:  # an unparsable job: nothing of it may run
            self.delete(self.pods)
            return
        policy = self.spec.run_policy.clean_pod_policy
        if policy == "All":
            self.delete(self.pods)
        elif policy == "Running" or self.phase == Phase.FAILED:
            # A failed job never keeps pods running (they would hold GPUs for nothing);
            # finished ones stay for their logs unless the policy is All.
            self.delete([p for p in self.pods if not p.finished])
        ttl = self.spec.run_policy.ttl_seconds_after_finished
        age = self.since(self.status.completion_time)
        if ttl is not None and age is not None:
            if age >= ttl:
                self.d.delete_job = True
            else:
                self.d.requeue(ttl - age)

    def _suspend(self) -> None:
        self.delete(self.pods)
        if self.phase != Phase.SUSPENDED:
            self.transition(Phase.SUSPENDED, Reason.SUSPENDED, "pods removed; checkpoints kept")
        # The deadline counts running time only (as a Job's does): it restarts on resume.
        self.status.start_time = None

    def _deadline_exceeded(self) -> bool:
        """activeDeadlineSeconds, counted from startTime: the first pod creation since the
        job was created, resumed or (re)admitted; Queued and Suspended clear startTime."""
        limit = self.spec.run_policy.active_deadline_seconds
        elapsed = self.since(self.status.start_time)
        if limit is None or elapsed is None or self.phase == Phase.QUEUED:
            return False
        if elapsed < limit:
            self.d.requeue(limit - elapsed)
            return False
        self._fail(
            Reason.DEADLINE_EXCEEDED, f"the job ran longer than activeDeadlineSeconds ({limit})"
        )
        return True

    def _fail(self, reason: str, message: str) -> None:
        self.transition(Phase.FAILED, reason, message)
        self.status.completion_time = format_time(self.now)
        self._finished()

    def _failure(self) -> Failure | None:
        """What ends the current generation, if anything: the trainer's own verdict (invalid
        data, divergence) or a code of runPolicy.failOnExitCodes first; then a disruption of
        any worker, since the failures of its peers (a broken collective) follow from it; then
        the first failure by index; then pods gone; then a stall."""
        codes = frozenset(self.spec.run_policy.fail_on_exit_codes)
        failures = [f for p in sorted(self.current, key=lambda p: p.index)
                    if (f := worker_failure(p, codes)) is not None]  # fmt: skip
        for wanted in (lambda f: not f.retryable, lambda f: f.disruption, lambda f: True):
            found = next((f for f in failures if wanted(f)), None)
            if found is not None:
                return found
        if self.phase in (Phase.STARTING, Phase.RUNNING):
            gone = [p for p in self.current if p.deleting]
            for pod in sorted(gone, key=lambda p: p.index):
                if pod.disruption is not None:  # preempted or evicted, still stopping
                    return disrupted(pod)
            present = {p.index for p in self.current if not p.deleting}
            missing = [i for i in range(self.spec.parallelism.nodes) if i not in present]
            if missing:
                # Deleted by someone else than the operator (a person, a drain): a disruption.
                names = ", ".join(f"{self.job.name}-worker-{i}" for i in missing)
                return Failure(Reason.POD_DELETED, f"worker pod deleted: {names}", True, True)
        return self._stall()

    def _resized(self) -> bool:
        """An elastic job's nodes changed while its group runs (with a queueName the new size
        waits for the next admission: the admitted Workload cannot change)."""
        if self.phase not in (Phase.STARTING, Phase.RUNNING) or self.spec.queue_name:
            return False
        nodes = self.spec.parallelism.nodes
        return any(p.nodes not in (None, nodes) for p in self.current if not p.finished)

    def _stall(self) -> Failure | None:
        if self.phase != Phase.RUNNING:
            return None
        running = find_condition(self.status, ConditionType.RUNNING)
        progress = self.job.status.progress
        beats = [
            parse_time(progress.heartbeat_time if progress else None),
            parse_time(running.last_transition_time if running else None),
        ]
        seen = [b for b in beats if b is not None]
        if not seen:
            return None
        timeout = self.spec.run_policy.heartbeat_timeout_seconds
        quiet = (self.now - max(seen)).total_seconds()
        if quiet < timeout:
            self.d.requeue(timeout - quiet)
            return None
        return Failure(Reason.STALLED, f"no trainer heartbeat for {int(quiet)}s "
                       f"(heartbeatTimeoutSeconds {timeout})", True)  # fmt: skip

    @property
    def failures(self) -> int:
        """Restarts that used the budget (maxRestarts): all but the disruptions."""
        return max(self.gen - self.status.disruptions, 0)

    def _fail_or_restart(self, failure: Failure) -> None:
        if not failure.retryable:
            return self._fail(failure.reason, failure.message)
        limit = self.spec.run_policy.max_restarts
        if not failure.disruption and self.failures >= limit:
            return self._fail(
                Reason.BACKOFF_LIMIT_EXCEEDED,
                f"{limit} restarts used; last failure: {failure.message}",
            )
        self.gen += 1
        self.status.restarts = self.gen
        if failure.disruption:
            self.status.disruptions += 1
        self.delete(self.current)
        self.transition(Phase.RESTARTING, failure.reason, failure.message)
        self.d.restarted = True
        self.d.requeue(self._backoff())

    def _backoff(self) -> float:
        """Back-off doubles with the failures only: a disruption waits the base delay (or
        the current failure back-off), however many there were."""
        return restart_backoff(self.spec, max(self.failures, 1))

    def _backoff_elapsed(self) -> bool:
        restarting = find_condition(self.status, ConditionType.RESTARTING)
        since = self.since(restarting.last_transition_time if restarting else None)
        wait = self._backoff() - (since or 0.0)
        if wait > 0:
            self.d.requeue(wait)
            return False
        return True

    def _progress(self) -> None:
        nodes = self.spec.parallelism.nodes
        cur = self.current
        phase = self.phase
        if phase in (Phase.PENDING, Phase.RESTARTING):
            present = {p.index for p in cur}
            self.d.create = [i for i in range(nodes) if i not in present]
            if self.d.create or cur:
                self.transition(Phase.STARTING, Reason.PODS_STARTING,
                                f"creating {nodes} worker pod(s), restart generation {self.gen}")
                self.status.start_time = self.status.start_time or format_time(self.now)
            self.d.requeue(RESYNC_SECONDS)
            return
        if len(cur) == nodes and all(p.succeeded for p in cur):
            self.transition(Phase.SUCCEEDED, Reason.COMPLETED, "training finished")
            self.status.completion_time = format_time(self.now)
            return self._finished()
        if all(p.running or p.succeeded for p in cur) and len(cur) == nodes:
            if phase != Phase.RUNNING:
                self.transition(Phase.RUNNING, Reason.TRAINING, f"{nodes} worker pod(s) running")
                if find_condition(self.status, ConditionType.PODS_STARTED) is not None:
                    self.set_condition(ConditionType.PODS_STARTED, "True", Reason.RUNNING,
                                       "all worker pods running")  # fmt: skip
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
        reason: str
        if pod.unschedulable:
            reason, message = Reason.UNSCHEDULABLE, pod.unschedulable
        elif pod.waiting_reason in WAITING_PROBLEMS:
            reason, message = pod.waiting_reason, pod.waiting_message or pod.waiting_reason
        else:
            reason, message = Reason.START_TIMEOUT, "pod not running"
        message = f"{pod.name} not running after {int(max(ages))}s: {message}"
        self.set_condition(ConditionType.PODS_STARTED, "False", reason, message)
        self.transition(Phase.STARTING, reason, message)

    def _replicas(self) -> Replicas:
        cur = self.current if self.phase != Phase.RESTARTING else []
        return Replicas(
            active=sum(1 for p in cur if not p.finished and not p.deleting),
            succeeded=sum(1 for p in cur if p.succeeded),
            failed=sum(1 for p in cur if p.phase == "Failed"),
        )


def decide(job: JobState, pods: list[ObservedPod], now: datetime) -> Decision:
    """The status the job should have and what to do to get there."""
    return _Machine(job, pods, now).run()


def invalid(
    job: JobState,
    pods: list[ObservedPod],
    message: str,
    now: datetime,
    reason: Reason = Reason.INVALID_SPEC,
) -> Decision:
    """A spec the operator cannot run: Failed with reason InvalidSpec, never retried
    (a later edit of the spec starts it again)."""
    m = _Machine(job, pods, now)
    s = m.status
    if (s.phase, s.reason, s.message) != (Phase.FAILED, reason, message):
        m._fail(reason, message)
    else:
        m._finished()
    m.delete(m.pods)
    s.replicas = m._replicas()
    return m.d


__all__ = ["decide", "invalid", "restart_backoff"]
