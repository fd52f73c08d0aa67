"""Pod status the way a kubelet reports it, from container statuses (pure).

Container statuses are Kubernetes-shaped dicts (`containerStatuses` entries);
the helpers below build them, and `pod_status` derives phase and conditions
following the kubelet's `getPhase`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Status = dict[str, Any]

# A container's terminationMessage is capped like the kubelet's (4 KiB).
MAX_MESSAGE = 4096


def _base(container: Mapping[str, Any], restart_count: int, last: Status | None) -> Status:
    image = container.get("image", "")
    status: Status = {
        "name": container["name"],
        "image": image,
        "imageID": f"testenv://{image}",
        "restartCount": restart_count,
        "ready": False,
        "started": False,
        "lastState": {"terminated": last} if last else {},
    }
    return status


def waiting(
    container: Mapping[str, Any],
    reason: str,
    message: str = "",
    restart_count: int = 0,
    last: Status | None = None,
) -> Status:
    """A container not running yet (ContainerCreating, PodInitializing, CrashLoopBackOff...)."""
    state: Status = {"reason": reason}
    if message:
        state["message"] = message
    return {**_base(container, restart_count, last), "state": {"waiting": state}}


def running(
    container: Mapping[str, Any],
    started_at: str,
    container_id: str,
    restart_count: int = 0,
    last: Status | None = None,
) -> Status:
    return {
        **_base(container, restart_count, last),
        "state": {"running": {"startedAt": started_at}},
        "ready": True,
        "started": True,
        "containerID": container_id,
    }


def terminated_state(
    exit_code: int, started_at: str, finished_at: str, container_id: str, message: str = ""
) -> Status:
    """The `terminated` state of a process that exited with `exit_code` (negative: signal)."""
    state: Status = {
        # Like a container runtime: death by signal N reads as exit code 128+N.
        "exitCode": exit_code if exit_code >= 0 else 128 - exit_code,
        "reason": "Completed" if exit_code == 0 else "Error",
        "startedAt": started_at,
        "finishedAt": finished_at,
        "containerID": container_id,
    }
    if message:
        state["message"] = message[-MAX_MESSAGE:]
    return state


def terminated(
    container: Mapping[str, Any],
    state: Status,
    restart_count: int = 0,
    last: Status | None = None,
) -> Status:
    return {
        **_base(container, restart_count, last),
        "state": {"terminated": state},
        "containerID": state["containerID"],
    }


def _exit_code(status: Mapping[str, Any]) -> int | None:
    term = status.get("state", {}).get("terminated")
    return None if term is None else int(term["exitCode"])


def _restarting(status: Mapping[str, Any]) -> bool:
    """Waiting after having run once (the kubelet counts it as stopped)."""
    return "waiting" in status.get("state", {}) and bool(
        status.get("lastState", {}).get("terminated")
    )


def pod_phase(
    restart_policy: str,
    init_statuses: Sequence[Mapping[str, Any]],
    statuses: Sequence[Mapping[str, Any]],
    n_init: int,
) -> str:
    """Pending, Running, Succeeded or Failed, as the kubelet's getPhase decides."""
    init_done = sum(1 for s in init_statuses if _exit_code(s) == 0)
    init_failed = any((_exit_code(s) or 0) != 0 or _restarting(s) for s in init_statuses)
    if init_done < n_init:
        return "Failed" if init_failed and restart_policy == "Never" else "Pending"
    run = stopped = succeeded = wait = 0
    for s in statuses:
        state = s.get("state", {})
        if "running" in state:
            run += 1
        elif "terminated" in state:
            stopped += 1
            succeeded += _exit_code(s) == 0
        elif _restarting(s):
            stopped += 1
        else:
            wait += 1
    if wait or not statuses:
        return "Pending"
    if run:
        return "Running"
    if restart_policy == "Always":
        return "Running"
    if stopped == succeeded:
        return "Succeeded"
    return "Failed" if restart_policy == "Never" else "Running"


def _condition(
    kind: str, ok: bool, reason: str, previous: Mapping[str, Mapping[str, Any]], now: str
) -> Status:
    status = "True" if ok else "False"
    before = previous.get(kind)
    changed = before is None or before.get("status") != status
    condition: Status = {
        "type": kind,
        "status": status,
        "lastProbeTime": None,
        "lastTransitionTime": now if changed else before["lastTransitionTime"],  # type: ignore[index]
    }
    if not ok and reason:
        condition["reason"] = reason
    return condition


def pod_status(
    pod: Mapping[str, Any],
    init_statuses: Sequence[Status],
    statuses: Sequence[Status],
    pod_ip: str,
    host_ip: str,
    start_time: str,
    now: str,
) -> Status:
    """The pod's whole `status`, keeping conditions' transition times that did not change."""
    spec = pod.get("spec", {})
    phase = pod_phase(
        spec.get("restartPolicy", "Always"),
        init_statuses,
        statuses,
        len(spec.get("initContainers", [])),
    )
    previous = {c["type"]: c for c in pod.get("status", {}).get("conditions", [])}
    initialized = all(_exit_code(s) == 0 for s in init_statuses) and len(init_statuses) == len(
        spec.get("initContainers", [])
    )
    all_running = bool(statuses) and all("running" in s.get("state", {}) for s in statuses)
    done = phase in ("Succeeded", "Failed")
    not_ready = "PodCompleted" if done else "ContainersNotReady"
    conditions = [
        _condition("PodReadyToStartContainers", True, "", previous, now),
        _condition("Initialized", initialized, "ContainersNotInitialized", previous, now),
        _condition("Ready", all_running, not_ready, previous, now),
        _condition("ContainersReady", all_running, not_ready, previous, now),
        _condition("PodScheduled", True, "", previous, now),
    ]
    return {
        "phase": phase,
        "conditions": conditions,
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": start_time,
        "initContainerStatuses": list(init_statuses),
        "containerStatuses": list(statuses),
        "qosClass": pod.get("status", {}).get("qosClass", "BestEffort"),
    }


def _explicit(state: Mapping[str, Any]) -> Status:
    return {k: state.get(k) for k in ("waiting", "running", "terminated")}


def as_patch(status: Status) -> Status:
    """`status` for a strategic merge patch: absent container states become explicit nulls.

    A patch merges maps, so a container going from waiting to running must say
    `waiting: null`, or the API object would end up holding both.
    """
    patch = dict(status)
    for key in ("initContainerStatuses", "containerStatuses"):
        patch[key] = [
            {**s, "state": _explicit(s["state"]), "lastState": _explicit(s["lastState"])}
            for s in status[key]
        ]
    return patch
