"""Observed pods, reduced to what the status computation needs (pure)."""

from __future__ import annotations

import re
import signal
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubetrain.api.conditions import Reason
from kubetrain.exitcodes import ExitCode, classify
from kubetrain_operator.names import LABEL_GENERATION, LABEL_INDEX, LABEL_NODES


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def format_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class ObservedPod:
    """One worker pod as last seen."""

    name: str
    uid: str
    index: int
    generation: int
    phase: str = "Pending"
    deleting: bool = False
    # deletionTimestamp: when the grace period ends and the kubelet should have killed it.
    grace_ends: datetime | None = None
    created: datetime | None = None
    running: bool = False
    exit_code: int | None = None
    exit_reason: str = ""
    exit_message: str = ""
    pod_reason: str = ""
    pod_message: str = ""
    waiting_reason: str = ""
    waiting_message: str = ""
    unschedulable: str | None = None
    # The controller owner's UID: a pod of an earlier job of the same name has another one.
    owner_uid: str = ""
    # A DisruptionTarget condition (reason, message): the pod is being or was removed by
    # preemption, eviction, a taint or the pod GC, not by a failure of its own.
    disruption: tuple[str, str] | None = None
    # The group size it was made for (None: made before pods carried it).
    nodes: int | None = None

    @property
    def finished(self) -> bool:
        return self.phase in ("Succeeded", "Failed")

    @property
    def succeeded(self) -> bool:
        return self.phase == "Succeeded"


def observe_pod(pod: dict[str, Any]) -> ObservedPod:
    """A pod object from the API → ObservedPod."""
    meta, status = pod.get("metadata", {}), pod.get("status") or {}
    labels = meta.get("labels") or {}
    state: dict[str, Any] = {}
    for cs in status.get("containerStatuses") or []:
        state = cs.get("state") or {}
        break  # one container per worker pod
    terminated = state.get("terminated") or {}
    waiting = state.get("waiting") or {}
    unschedulable, disruption = None, None
    for c in status.get("conditions") or []:
        if c.get("type") == "PodScheduled" and c.get("status") == "False":
            unschedulable = c.get("message") or c.get("reason") or "Unschedulable"
        if c.get("type") == "DisruptionTarget" and c.get("status") == "True":
            disruption = (c.get("reason") or Reason.DISRUPTED, c.get("message") or "")
    owners = [o for o in meta.get("ownerReferences") or [] if o.get("controller")]
    return ObservedPod(
        name=meta.get("name", ""),
        uid=meta.get("uid", ""),
        index=int(labels.get(LABEL_INDEX, -1)),
        generation=int(labels.get(LABEL_GENERATION, 0)),
        phase=status.get("phase") or "Pending",
        deleting=bool(meta.get("deletionTimestamp")),
        grace_ends=parse_time(meta.get("deletionTimestamp")),
        created=parse_time(meta.get("creationTimestamp")),
        running="running" in state,
        exit_code=terminated.get("exitCode"),
        exit_reason=terminated.get("reason") or "",
        exit_message=(terminated.get("message") or "").strip(),
        pod_reason=status.get("reason") or "",
        pod_message=status.get("message") or "",
        waiting_reason=waiting.get("reason") or "",
        waiting_message=waiting.get("message") or "",
        unschedulable=unschedulable,
        owner_uid=str(owners[0].get("uid", "")) if owners else "",
        disruption=disruption,
        nodes=int(labels[LABEL_NODES]) if str(labels.get(LABEL_NODES, "")).isdigit() else None,
    )


@dataclass(frozen=True)
class Failure:
    """Why a worker failed, whether a group restart can help, and whether it was a
    disruption (from outside: restarts after one do not use the restart budget)."""

    reason: str  # a Reason, or a failed pod's own (the kubelet's: Evicted...)
    message: str
    retryable: bool
    disruption: bool = False


# A failed pod's own reasons (no exit code) that say it was removed from outside: the kubelet's
# eviction, a node shutdown, the node controller.
DISRUPTION_POD_REASONS = frozenset({
    Reason.EVICTED, "Preempting", "Shutdown", "NodeShutdown", "Terminated", "NodeLost",
    "UnexpectedAdmissionError",
})  # fmt: skip


def _last_line(text: str, limit: int = 1024) -> str:
    """The most telling line of a termination message or log tail: the last error line
    (torchrun ends its report with rulers and blank fields), else the last worded line."""
    lines = [line.strip() for line in text.splitlines() if re.search(r"[A-Za-z]", line)]
    errors = [line for line in lines if re.search(r"(Error|Exception|error:)", line)]
    chosen = errors[-1] if errors else (lines[-1] if lines else "")
    return chosen[:limit]


def worker_failure(pod: ObservedPod, fail_codes: frozenset[int] = frozenset()) -> Failure | None:
    """The failure a pod shows, or None while it runs, waits or has succeeded; `fail_codes`
    (runPolicy.failOnExitCodes) fail the job at once."""
    if pod.phase == "Unknown":
        return Failure(Reason.NODE_LOST, f"{pod.name}: its node stopped reporting", True, True)
    if pod.phase != "Failed" and not (pod.exit_code not in (None, 0)):
        return None
    code = pod.exit_code
    kind = classify(code)
    if kind in (ExitCode.INVALID, ExitCode.DIVERGED):  # the trainer's verdict, whatever else
        detail = _last_line(pod.exit_message)
        if kind == ExitCode.INVALID:
            return Failure(Reason.INVALID_DATA, detail or f"{pod.name} exited with code 2", False)
        return Failure(Reason.DIVERGED, detail or f"{pod.name}: the loss diverged", False)
    if pod.disruption is not None:
        return disrupted(pod)
    if code in fail_codes:
        detail = _last_line(pod.exit_message)
        message = f"{pod.name} exited with code {code} (runPolicy.failOnExitCodes)"
        return Failure(Reason.EXIT_CODE_RULE, message + (f": {detail}" if detail else ""), False)
    if code is None:
        reason = pod.pod_reason or Reason.WORKER_FAILED
        return Failure(reason, f"{pod.name}: {pod.pod_message or reason}", True,
                       reason in DISRUPTION_POD_REASONS)  # fmt: skip
    detail = _last_line(pod.exit_message)
    if kind == ExitCode.INTERRUPTED:
        # 75 only follows a SIGTERM: someone stopped the worker, and it saved a checkpoint.
        message = f"{pod.name} was stopped (SIGTERM) after a checkpoint"
        return Failure(Reason.INTERRUPTED, message, True, True)
    if pod.exit_reason == "OOMKilled":  # the kubelet's word
        return Failure(Reason.OOM_KILLED, f"{pod.name} ran out of memory", True)
    if code > 128:
        try:
            name = signal.Signals(code - 128).name
        except ValueError:
            name = f"signal {code - 128}"
        message = f"{pod.name} was killed by {name} (exit code {code})"
        return Failure(Reason.WORKER_KILLED, message, True)
    message = f"{pod.name} exited with code {code}" + (f": {detail}" if detail else "")
    return Failure(Reason.WORKER_CRASHED, message, True)


def disrupted(pod: ObservedPod) -> Failure:
    """A pod with a DisruptionTarget condition: preempted, evicted, tainted away..."""
    reason, message = pod.disruption or (Reason.DISRUPTED, "")
    return Failure(reason, f"{pod.name}: {message or reason}", True, True)
