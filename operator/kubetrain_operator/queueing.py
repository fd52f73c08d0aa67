"""The Kueue gate of one reconcile: the job's Workload is made to exist, and what Kueue says
about it decides whether the state machine runs (admitted) or the job is held (Queued)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from kubernetes.client.exceptions import ApiException

from kubetrain.api.spec import TrainingJobSpec
from kubetrain_operator import kueue
from kubetrain_operator.cache import Bodies
from kubetrain_operator.decision import Decision, JobState
from kubetrain_operator.kube import Kube, is_status
from kubetrain_operator.names import JobMeta
from kubetrain_operator.observe import ObservedPod
from kubetrain_operator.render import render_worker_pod

# While held, look again at least this often (Workload and pod events come first).
HOLD_RESYNC_SECONDS = 60.0
KUEUE_MISSING = "KueueNotInstalled"
KUEUE_MISSING_MESSAGE = (
    f"spec.queueName is set, but the API server serves no {kueue.KUEUE_API} Workloads: "
    "install Kueue, or remove queueName"
)


@dataclass(frozen=True)
class Verdict:
    """Either `hold` (apply it and stop) or the job to run (its spec at the admitted size)
    with `placement` for its pods."""

    hold: Decision | None
    job: JobState
    placement: kueue.Placement | None = None
    # Nothing to write yet: look again after this many seconds (kueue.awaiting_first_word).
    wait: float | None = None


class Gate:
    def __init__(
        self, kube: Kube, clock: Callable[[], datetime], workloads: Bodies | None = None
    ) -> None:
        self.kube, self.clock = kube, clock
        # The Workloads as the watch (handlers.py) and our writes last showed them.
        self.workloads = workloads if workloads is not None else Bodies()

    def _workload(self, meta: JobMeta, name: str, may_exist: bool) -> kueue.Obj | None:
        """The job's Workload from the cache. Not there: a job that was never reconciled has
        none (it is ours to create, by an idempotent apply: `may_exist` False); else the watch
        may not have shown it yet (the operator just started), so it is read."""
        found = self.workloads.get((meta.namespace, name))
        if found is None and may_exist:
            found = self.kube.get_workload(meta.namespace, name)
            if found is not None:
                self.workloads.wrote(found)
        return found

    def check(
        self, meta: JobMeta, spec: TrainingJobSpec, job: JobState, pods: list[ObservedPod]
    ) -> Verdict:
        """Create or update the Workload; admitted → run it where the flavors say, evicted →
        stop the pods and, once they are gone, give the quota back; else hold."""
        now = self.clock()
        name = kueue.workload_name(meta)
        workload = self._workload(meta, name, may_exist=bool(job.status.phase))
        admission = kueue.read_admission(workload)
        if not admission.reserved:
            wanted = kueue.render_workload(
                meta, spec, render_worker_pod(meta, spec, 0, job.status.restarts),
                self._priority(spec),
            )  # fmt: skip
            # Kueue allows no change to a Workload that holds quota; a waiting one follows
            # the spec (nodes, resources, queue).
            if workload is None or not kueue.same_request(workload, wanted):
                try:
                    workload = self.kube.apply_workload(wanted)
                    self.workloads.wrote(workload)
                except ApiException as e:
                    if not is_status(e, 404):
                        raise
                    # The API server serves no Workloads: say so instead of retrying mutely.
                    missing = kueue.Admission("pending", KUEUE_MISSING, KUEUE_MISSING_MESSAGE)
                    decision = kueue.hold(job, pods, missing, now)
                    decision.requeue(HOLD_RESYNC_SECONDS)
                    return Verdict(decision, job)
                admission = kueue.read_admission(workload)
        if admission.state == "admitted":
            names = sorted(set(admission.flavors.values()))
            flavors = [self.kube.get_resource_flavor(n) for n in names]
            # After a partial admission the job runs at the admitted size (its spec says so).
            ready = kueue.admitted(job, admission, now)
            assert ready.spec is not None
            nodes = ready.spec.parallelism.nodes
            resized = nodes if nodes != spec.parallelism.nodes else None
            where = kueue.placement([f for f in flavors if f is not None], resized)
            return Verdict(None, ready, where)
        wait = kueue.awaiting_first_word(workload, job, pods, now)
        if wait is not None and admission.state == "pending":
            return Verdict(None, job, wait=wait)
        decision = kueue.hold(job, pods, admission, now)
        if admission.state == "evicted" and not pods and workload is not None:
            # Every worker has stopped (and checkpointed): the quota goes back to Kueue.
            self.workloads.wrote(self.kube.patch_workload_status(
                meta.namespace, name, kueue.release_patch(workload, now)
            ))  # fmt: skip
        decision.requeue(HOLD_RESYNC_SECONDS)
        return Verdict(decision, job)

    def finish(self, meta: JobMeta, decision: Decision) -> None:
        """A finished job's Workload is marked Finished: Kueue releases its quota."""
        phase = decision.status.phase
        if phase is None or not phase.finished:
            return
        name = kueue.workload_name(meta)
        workload = self._workload(meta, name, may_exist=True)
        if workload is None or kueue.read_admission(workload).state == "finished":
            return
        patch = kueue.finished_patch(
            workload, phase == "Succeeded", decision.status.message or "", self.clock()
        )
        self.workloads.wrote(self.kube.patch_workload_status(meta.namespace, name, patch))

    def _priority(self, spec: TrainingJobSpec) -> int | None:
        """The value of the pods' PriorityClass (Kueue orders and preempts by it)."""
        name = spec.template.priority_class_name
        if not name:
            return None
        found = self.kube.get_priority_class(name)
        return int(found.get("value", 0)) if found else 0
