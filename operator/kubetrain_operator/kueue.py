"""Kueue admission for TrainingJobs with `spec.queueName` (pure: dicts in, dicts out).

Kueue's documented path for a job kind it does not build in ("externalFrameworks"): the job's
own controller creates a `Workload` (kueue.x-k8s.io/v1beta1) owned by the job, starts the job
once Kueue admits the Workload (with the admitted ResourceFlavors' node labels and
tolerations), stops it when Kueue evicts the Workload, and then gives the quota back by
clearing the Workload's admission, as Kueue's own job reconciler does
(pkg/controller/jobframework/reconciler.go, "handle eviction"). At the end it marks the
Workload Finished so the quota is released.

An elastic job (parallelism.minNodes or maxNodes set) may be admitted with fewer workers than
`parallelism.nodes` (Kueue's partial admission, the PartialAdmission feature gate, beta and on
by default since Kueue v0.5): its pod set carries `minCount`, Kueue admits the largest count
that fits (`status.admission.podSetAssignments[].count`), and the group runs at that size.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from kubetrain.api.conditions import ConditionType, Phase, Reason
from kubetrain.api.job import GROUP, KIND, VERSION
from kubetrain.api.plan import resolve_plan
from kubetrain.api.spec import TrainingJobSpec
from kubetrain.errors import InvalidJob
from kubetrain_operator.conditions import find_condition, set_condition
from kubetrain_operator.decision import Decision, Event, JobState, PodRef
from kubetrain_operator.names import (
    KUEUE_POD_GROUP_COUNT,
    KUEUE_POD_GROUP_LABEL,
    KUEUE_QUEUE_LABEL,
    LABEL_JOB,
    JobMeta,
    common_labels,
)
from kubetrain_operator.observe import ObservedPod, format_time
from kubetrain_operator.render import CONTAINER, DEFAULT_COMMAND, owner_reference

Obj = dict[str, Any]

KUEUE_GROUP = "kueue.x-k8s.io"
KUEUE_API = f"{KUEUE_GROUP}/v1beta1"
# What Kueue's configuration lists under integrations.externalFrameworks (Kind.version.group).
EXTERNAL_FRAMEWORK = f"{KIND}.{VERSION}.{GROUP}"
POD_SET = "workers"
# The priority's source when it comes from a pod PriorityClass (Kueue's constant).
POD_PRIORITY_SOURCE = "scheduling.k8s.io/priorityclass"
# The Admitted condition's reason when Kueue admitted fewer workers than parallelism.nodes.
PARTIALLY_ADMITTED = "PartiallyAdmitted"
# Kueue's condition types on a Workload.
QUOTA_RESERVED, ADMITTED, EVICTED, FINISHED, REQUEUED = (
    "QuotaReserved", "Admitted", "Evicted", "Finished", "Requeued",
)  # fmt: skip
# Phases whose condition is set False while the job waits in the queue.
_PHASE_CONDITIONS = (
    ConditionType.RUNNING, ConditionType.RESTARTING, ConditionType.SUSPENDED,
)  # fmt: skip
# The pod template fields Kueue reads to count resources and pick flavors.
_TEMPLATE_FIELDS = (
    "nodeSelector", "tolerations", "affinity", "priorityClassName", "runtimeClassName",
    "overhead", "initContainers",
)  # fmt: skip


def workload_name(meta: JobMeta) -> str:
    """`trainingjob-<name>-<hash of the uid>`, at most 63 characters (a new job of the same
    name gets a new Workload, as Kueue's own naming does)."""
    digest = hashlib.sha256(meta.uid.encode()).hexdigest()[:5]
    prefix = f"{KIND.lower()}-{meta.name}"[: 63 - 6].rstrip("-.")
    return f"{prefix}-{digest}"


def _pod_template(pod: Obj) -> Obj:
    """The worker pod reduced to what admission needs: containers' names, images and
    resources, and the scheduling fields (Kueue does not start pods from it)."""
    spec = pod["spec"]
    containers = [
        {k: c[k] for k in ("name", "image", "resources") if k in c} for c in spec["containers"]
    ]
    out: Obj = {"containers": containers}
    out.update({k: spec[k] for k in _TEMPLATE_FIELDS if k in spec})
    if "initContainers" in out:
        out["initContainers"] = [
            {k: c[k] for k in ("name", "image", "resources") if k in c}
            for c in out["initContainers"]
        ]
    return {"spec": out}


def at_nodes(spec: TrainingJobSpec, nodes: int) -> TrainingJobSpec:
    """The spec with `parallelism.nodes` set to `nodes` (the size a group runs at)."""
    if nodes == spec.parallelism.nodes:
        return spec
    parallelism = spec.parallelism.model_copy(update={"nodes": nodes})
    return spec.model_copy(update={"parallelism": parallelism})


def runnable(spec: TrainingJobSpec, nodes: int) -> bool:
    """Whether the trainer can run the spec on `nodes` nodes: globalBatchSize divides by the
    world size and fsdp has more than one process (the rules the trainer checks)."""
    try:
        resolve_plan(at_nodes(spec, nodes))
    except InvalidJob:
        return False
    return True


def min_count(spec: TrainingJobSpec) -> int | None:
    """The fewest workers an elastic job may be admitted with (the pod set's minCount): the
    smallest size from minNodes (1 without it) to nodes that the trainer can run; None (all
    or nothing) for a fixed-size job, or when no smaller size can run."""
    par = spec.parallelism
    if par.min_nodes is None and par.max_nodes is None:
        return None
    floor = par.min_nodes or 1
    return next((n for n in range(floor, par.nodes) if runnable(spec, n)), None)


def run_nodes(spec: TrainingJobSpec, admission: Admission) -> int:
    """How many nodes the group runs on: `parallelism.nodes`, or for a partial admission of
    k workers the largest size at most k that the trainer can run (the quota of the other
    admitted workers, if any, stays unused)."""
    nodes = spec.parallelism.nodes
    if admission.count is None or admission.count >= nodes:
        return nodes
    floor = spec.parallelism.min_nodes or 1
    fits = [n for n in range(admission.count, floor - 1, -1) if runnable(spec, n)]
    return fits[0] if fits else admission.count


def render_workload(
    meta: JobMeta, spec: TrainingJobSpec, pod: Obj, priority: int | None = None
) -> Obj:
    """The Workload for a job: one pod set of `parallelism.nodes` workers, each as `pod` (a
    rendered worker pod) requests; all or nothing, but an elastic job's pod set carries a
    minCount (see `min_count`); owned by the job (deleted with it)."""
    assert spec.queue_name, "only jobs with a queueName have a Workload"
    pod_set: Obj = {"name": POD_SET, "count": spec.parallelism.nodes}
    fewest = min_count(spec)
    if fewest is not None:
        pod_set["minCount"] = fewest
    pod_set["template"] = _pod_template(pod)
    body: Obj = {"queueName": spec.queue_name, "podSets": [pod_set]}
    if spec.template.priority_class_name:
        body["priorityClassName"] = spec.template.priority_class_name
        body["priorityClassSource"] = POD_PRIORITY_SOURCE
        body["priority"] = int(priority or 0)
    return {
        "apiVersion": KUEUE_API,
        "kind": "Workload",
        "metadata": {
            "name": workload_name(meta),
            "namespace": meta.namespace,
            "labels": {**common_labels(meta.name), KUEUE_QUEUE_LABEL: spec.queue_name},
            "ownerReferences": [owner_reference(meta)],
        },
        "spec": body,
    }


def same_request(workload: Obj, wanted: Obj) -> bool:
    """Whether an existing Workload asks for what `wanted` asks (queue, pod sets, priority)."""
    have, want = workload.get("spec") or {}, wanted["spec"]
    keys = ("queueName", "priorityClassName", "priority")
    if any(have.get(k) != want.get(k) for k in keys):
        return False
    sets = [(p.get("name"), p.get("count"), p.get("minCount")) for p in have.get("podSets") or []]
    return sets == [(p["name"], p["count"], p.get("minCount")) for p in want["podSets"]] and [
        (p.get("template") or {}).get("spec", {}).get("containers")
        for p in have.get("podSets") or []
    ] == [p["template"]["spec"]["containers"] for p in want["podSets"]]


def _condition(workload: Obj | None, type_: str) -> Obj | None:
    conditions = ((workload or {}).get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == type_), None)


def _true(workload: Obj | None, type_: str) -> bool:
    c = _condition(workload, type_)
    return c is not None and c.get("status") == "True"


State = Literal["missing", "pending", "admitted", "evicted", "finished"]


@dataclass(frozen=True)
class Admission:
    """What Kueue says about a job's Workload."""

    state: State
    reason: str = ""
    message: str = ""
    cluster_queue: str = ""
    # Resource name → ResourceFlavor name, for the workers' pod set.
    flavors: dict[str, str] = field(default_factory=dict)
    # Workers admitted (podSetAssignments[].count): fewer than asked after a partial admission;
    # None when Kueue does not say (then the pod set's count).
    count: int | None = None

    @property
    def reserved(self) -> bool:
        """Kueue holds quota for the job (admitted, or evicted but not yet given back)."""
        return self.state in ("admitted", "evicted")


def read_admission(workload: Obj | None) -> Admission:
    """The Workload's state: evicted (stop the job, then give the quota back), admitted (run
    with these flavors), pending (hold; with Kueue's reason), finished, or missing."""
    if workload is None:
        return Admission("missing", Reason.QUEUED, "creating the Kueue Workload")
    if _true(workload, FINISHED):
        return Admission("finished", FINISHED)
    admission = (workload.get("status") or {}).get("admission")
    reserved = _true(workload, QUOTA_RESERVED) and admission is not None
    if reserved and _true(workload, EVICTED):
        c = _condition(workload, EVICTED) or {}
        return Admission("evicted", str(c.get("reason") or EVICTED), str(c.get("message") or ""))
    if reserved and _true(workload, ADMITTED):
        assignments = admission.get("podSetAssignments") or []
        mine = next((a for a in assignments if a.get("name") == POD_SET), {})
        flavors = {str(k): str(v) for k, v in (mine.get("flavors") or {}).items()}
        count = mine.get("count")
        c = _condition(workload, ADMITTED) or {}
        return Admission(
            "admitted", str(c.get("reason") or ADMITTED), str(c.get("message") or ""),
            str(admission.get("clusterQueue") or ""), flavors,
            int(count) if count is not None else None,
        )  # fmt: skip
    # Waiting: QuotaReserved=False carries why (Pending, Inadmissible, ...); with quota but
    # not yet Admitted, the admission checks are pending.
    c = _condition(workload, ADMITTED if reserved else QUOTA_RESERVED) or {}
    reason = str(c.get("reason") or Reason.QUEUED)
    message = str(c.get("message") or "waiting for Kueue to admit the Workload")
    return Admission("pending", reason, message)


@dataclass(frozen=True)
class Placement:
    """Where the admitted flavors put the pods."""

    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: list[Obj] = field(default_factory=list)
    # The group's size when it is not the spec's parallelism.nodes (a partial admission): the
    # trainer reads the spec from the job's ConfigMap, so its command says the size.
    nodes: int | None = None


def placement(flavors: list[Obj], nodes: int | None = None) -> Placement:
    """The node labels and tolerations of the ResourceFlavors the job was admitted with, and
    the group's size if it runs at another than its spec's."""
    selector: dict[str, str] = {}
    tolerations: list[Obj] = []
    for flavor in flavors:
        spec = flavor.get("spec") or {}
        selector.update(spec.get("nodeLabels") or {})
        for t in spec.get("tolerations") or []:
            if t not in tolerations:
                tolerations.append(t)
    return Placement(selector, tolerations, nodes)


def place(pod: Obj, where: Placement) -> Obj:
    """A worker pod of an admitted job: the flavors' node labels (which win over the
    template's: Kueue counted the quota of that flavor) and tolerations added, and no Kueue
    labels of plain pods (the Workload was admitted already; where Kueue's pod integration is
    on, those labels would make it gate and count the pods a second time)."""
    meta = dict(pod["metadata"])
    meta["labels"] = {k: v for k, v in (meta.get("labels") or {}).items()
                      if k not in (KUEUE_QUEUE_LABEL, KUEUE_POD_GROUP_LABEL)}  # fmt: skip
    meta["annotations"] = {k: v for k, v in (meta.get("annotations") or {}).items()
                           if k != KUEUE_POD_GROUP_COUNT}  # fmt: skip
    spec = dict(pod["spec"])
    if where.node_selector:
        spec["nodeSelector"] = {**(spec.get("nodeSelector") or {}), **where.node_selector}
    if where.tolerations:
        tolerations = list(spec.get("tolerations") or [])
        spec["tolerations"] = tolerations + [t for t in where.tolerations if t not in tolerations]
    if where.nodes is not None:
        spec["containers"] = [_sized(c, where.nodes) for c in spec["containers"]]
    return {**pod, "metadata": meta, "spec": spec}


def _sized(container: Obj, nodes: int) -> Obj:
    """The trainer's container told to run at `nodes` (`kubetrain run --set`, which it
    validates like the file): its ConfigMap holds the spec's parallelism.nodes, which must
    equal PET_NNODES. A command override (the kubetrain.io/command annotation) is left as it
    is: it sees the size in PET_NNODES only."""
    if container.get("name") != CONTAINER or container.get("command") != DEFAULT_COMMAND:
        return container
    command = [*DEFAULT_COMMAND, "--set", f"spec.parallelism.nodes={nodes}"]
    return {**container, "command": command}


# A new job's Workload that Kueue has not looked at yet: wait up to this long for Kueue's word
# (its Workload event wakes the reconcile sooner) before saying Queued without it, so that a
# queued job's status is written once, with Kueue's reason, instead of twice.
FIRST_WORD_SECONDS = 5.0


def awaiting_first_word(
    workload: Obj | None, job: JobState, pods: list[ObservedPod], now: datetime
) -> float | None:
    """Seconds to wait before a job's first status, or None: write now. Only a job without a
    status yet, no pods, and a Workload created less than FIRST_WORD_SECONDS ago on which
    Kueue has set no condition waits."""
    if workload is None or job.status.phase or pods:
        return None
    if (workload.get("status") or {}).get("conditions"):
        return None  # Kueue has spoken
    created = (workload.get("metadata") or {}).get("creationTimestamp")
    try:
        age = (now - datetime.fromisoformat(str(created))).total_seconds()
    except (TypeError, ValueError):
        return None
    left = FIRST_WORD_SECONDS - age
    return min(left, FIRST_WORD_SECONDS) if left > 0 else None  # a skewed clock waits no longer


def hold(job: JobState, pods: list[ObservedPod], admission: Admission, now: datetime) -> Decision:
    """Not admitted (or evicted): no pods (deleted with their grace period, so the trainer
    checkpoints on SIGTERM), phase Queued with Kueue's reason. An eviction that stops running
    workers is a disruption: counted in `restarts` and `disruptions` (the pods come back at the
    next generation), never against maxRestarts. The start time is cleared: time in the queue
    counts toward no deadline."""
    old = job.status
    status = old.model_copy(deep=True, update={"observed_generation": job.generation})
    d = Decision(status=status)
    for p in pods:
        if not p.deleting:
            d.delete.append(PodRef(p.name, p.uid))
    if admission.state == "evicted" and d.delete:  # once: later holds see them deleting
        status.restarts += 1
        status.disruptions += 1
    if admission.state == "evicted":
        message = f"evicted by Kueue ({admission.reason}): {admission.message}".rstrip(": ")
        message += "; stopping the workers (they checkpoint), then back in the queue"
    else:
        message = admission.message
    if (status.phase, status.reason) != (Phase.QUEUED, admission.reason):
        kind = "Warning" if admission.state == "evicted" else "Normal"
        d.events.append(Event(kind, admission.reason, f"{Phase.QUEUED}: {message}"))
    status.phase, status.reason, status.message = Phase.QUEUED, admission.reason, message
    status.start_time = None
    conditions = set_condition(
        status.conditions, ConditionType.ADMITTED, "False", admission.reason, message, now
    )
    for type_ in _PHASE_CONDITIONS:
        if find_condition(status, type_) is not None:
            conditions = set_condition(
                conditions, type_, "False", admission.reason, message, now
            )
    status.conditions = conditions
    status.replicas = status.replicas.model_copy(
        update={"active": sum(1 for p in pods if not p.finished and not p.deleting)}
    )
    return d


def admitted(job: JobState, admission: Admission, now: datetime) -> JobState:
    """The job as the state machine should see it once admitted: a Queued job is Pending
    again (it then creates its pods), and its Admitted condition is True. After a partial
    admission its spec is the one it runs: `parallelism.nodes` is the admitted size (reason
    PartiallyAdmitted), so pods, world size and plan follow it."""
    status = job.status.model_copy(deep=True)
    message = f"admitted by ClusterQueue {admission.cluster_queue}".strip()
    reason: str = Reason.ADMITTED
    spec = job.spec
    if spec is not None:
        nodes = run_nodes(spec, admission)
        if nodes != spec.parallelism.nodes:
            reason = PARTIALLY_ADMITTED
            message += (
                f" with {admission.count} of {spec.parallelism.nodes} worker(s) (partial"
                " admission)"
            )
            if nodes != admission.count:
                message += f"; running on {nodes}, the largest size the trainer can run"
            spec = at_nodes(spec, nodes)
    if status.phase == Phase.QUEUED:
        status.phase, status.reason, status.message = Phase.PENDING, reason, message
    status.conditions = set_condition(
        status.conditions, ConditionType.ADMITTED, "True", reason, message, now
    )
    return replace(job, spec=spec, status=status)


def release_patch(workload: Obj, now: datetime) -> Obj:
    """The status merge patch that gives an evicted Workload's quota back once the job's pods
    are gone (Kueue's own job reconciler does exactly this): Requeued (True after a
    preemption; for other reasons Kueue decides when to requeue), QuotaReserved=False
    (Pending), Admitted=False (NoReservation), no admission. The resourceVersion makes it
    fail (409) if Kueue changed the Workload meanwhile."""
    evicted = _condition(workload, EVICTED) or {}
    reason = str(evicted.get("reason") or EVICTED)
    message = str(evicted.get("message") or "")
    generation = (workload.get("metadata") or {}).get("generation")
    stamp = format_time(now)
    changes = {
        REQUEUED: ("True" if reason == "Preempted" else "False", reason, message),
        QUOTA_RESERVED: ("False", "Pending", message),
        ADMITTED: ("False", "NoReservation", "The workload has no reservation"),
    }
    conditions = []
    for c in (workload.get("status") or {}).get("conditions") or []:
        change = changes.pop(c.get("type"), None)
        conditions.append(c if change is None else _kube_condition(c, change, generation, stamp))
    for type_, change in changes.items():
        conditions.append(_kube_condition({"type": type_}, change, generation, stamp))
    return {
        "metadata": {"resourceVersion": workload["metadata"]["resourceVersion"]},
        "status": {"admission": None, "conditions": conditions},
    }


def finished_patch(workload: Obj, succeeded: bool, message: str, now: datetime) -> Obj:
    """Mark the Workload Finished (Succeeded or Failed): Kueue releases its quota."""
    change = ("True", "Succeeded" if succeeded else "Failed", message[:1024])
    generation = (workload.get("metadata") or {}).get("generation")
    conditions = [
        c for c in (workload.get("status") or {}).get("conditions") or []
        if c.get("type") != FINISHED
    ]  # fmt: skip
    conditions.append(_kube_condition({"type": FINISHED}, change, generation, format_time(now)))
    return {
        "metadata": {"resourceVersion": workload["metadata"]["resourceVersion"]},
        "status": {"conditions": conditions},
    }


def _kube_condition(
    old: Obj, change: tuple[str, str, str], generation: int | None, stamp: str
) -> Obj:
    status, reason, message = change
    since = old.get("lastTransitionTime") if old.get("status") == status else stamp
    out = {
        "type": old["type"], "status": status, "reason": reason, "message": message,
        "lastTransitionTime": since or stamp,
    }  # fmt: skip
    if generation is not None:
        out["observedGeneration"] = generation
    return out


def job_key(workload: Obj) -> tuple[str, str] | None:
    """The (namespace, job name) a Workload of ours belongs to."""
    meta = workload.get("metadata") or {}
    name = (meta.get("labels") or {}).get(LABEL_JOB)
    return (meta.get("namespace", ""), name) if name else None


__all__ = [
    "EXTERNAL_FRAMEWORK",
    "PARTIALLY_ADMITTED",
    "Admission",
    "Placement",
    "admitted",
    "at_nodes",
    "finished_patch",
    "hold",
    "min_count",
    "place",
    "placement",
    "read_admission",
    "release_patch",
    "render_workload",
    "run_nodes",
    "runnable",
    "same_request",
    "workload_name",
]
