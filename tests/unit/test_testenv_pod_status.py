"""Pod phase and status from container statuses, as the kubelet computes them (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from kubetrain_testenv import pod_status as ps

C = {"name": "c", "image": "python"}
T0, T1 = "2025-01-01T00:00:00Z", "2025-01-01T00:00:05Z"


def run() -> dict[str, Any]:
    return ps.running(C, T0, "testenv://1")


def done(code: int) -> dict[str, Any]:
    return ps.terminated(C, ps.terminated_state(code, T0, T1, "testenv://1"))


def creating() -> dict[str, Any]:
    return ps.waiting(C, "ContainerCreating")


def backoff() -> dict[str, Any]:
    return ps.waiting(C, "CrashLoopBackOff", last=ps.terminated_state(1, T0, T1, "testenv://1"))


@pytest.mark.parametrize(
    ("policy", "init", "n_init", "main", "phase"),
    [
        ("Never", [], 0, [creating()], "Pending"),
        ("Never", [], 0, [run()], "Running"),
        ("Never", [], 0, [done(0)], "Succeeded"),
        ("Never", [], 0, [done(2)], "Failed"),
        ("Never", [], 0, [done(0), run()], "Running"),
        ("Never", [], 0, [done(0), done(1)], "Failed"),
        ("OnFailure", [], 0, [done(0)], "Succeeded"),
        ("OnFailure", [], 0, [backoff()], "Running"),
        ("OnFailure", [], 0, [done(0), backoff()], "Running"),
        ("Always", [], 0, [done(0)], "Running"),
        ("Always", [], 0, [backoff()], "Running"),
        ("Never", [ps.waiting(C, "PodInitializing")], 1, [creating()], "Pending"),
        ("Never", [done(1)], 1, [creating()], "Failed"),
        ("OnFailure", [backoff()], 1, [creating()], "Pending"),
        ("Never", [done(0)], 1, [run()], "Running"),
        ("Never", [done(0)], 2, [creating()], "Pending"),
    ],
)
def test_pod_phase(policy: str, init: list[Any], n_init: int, main: list[Any], phase: str) -> None:
    assert ps.pod_phase(policy, init, main, n_init) == phase


@pytest.mark.parametrize(
    ("code", "exit_code", "reason"),
    [(0, 0, "Completed"), (3, 3, "Error"), (-9, 137, "Error"), (-15, 143, "Error")],
)
def test_terminated_state(code: int, exit_code: int, reason: str) -> None:
    state = ps.terminated_state(code, T0, T1, "testenv://9", "x" * 5000)
    assert (state["exitCode"], state["reason"]) == (exit_code, reason)
    assert len(state["message"]) == ps.MAX_MESSAGE


def conditions(status: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in status["conditions"]}


@pytest.mark.parametrize(
    ("main", "phase", "ready", "reason"),
    [
        ([creating()], "Pending", "False", "ContainersNotReady"),
        ([run()], "Running", "True", None),
        ([done(0)], "Succeeded", "False", "PodCompleted"),
        ([done(1)], "Failed", "False", "PodCompleted"),
    ],
)
def test_pod_status(main: list[Any], phase: str, ready: str, reason: str | None) -> None:
    pod = {"spec": {"restartPolicy": "Never", "containers": [C]}}
    status = ps.pod_status(pod, [], main, "127.1.0.1", "127.0.0.1", T0, T1)
    assert status["phase"] == phase
    assert conditions(status) == {
        "PodReadyToStartContainers": "True",
        "Initialized": "True",
        "Ready": ready,
        "ContainersReady": ready,
        "PodScheduled": "True",
    }
    ready_condition = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready_condition.get("reason") == reason
    assert status["podIP"] == "127.1.0.1"
    assert status["podIPs"] == [{"ip": "127.1.0.1"}]


def test_transition_times_change_only_with_status() -> None:
    pod: dict[str, Any] = {"spec": {"restartPolicy": "Never", "containers": [C]}}
    first = ps.pod_status(pod, [], [creating()], "ip", "host", T0, T0)
    pod["status"] = first
    second = ps.pod_status(pod, [], [run()], "ip", "host", T0, T1)
    times = {c["type"]: c["lastTransitionTime"] for c in second["conditions"]}
    assert times["PodScheduled"] == T0
    assert times["Ready"] == T1


def test_as_patch_nulls_absent_states() -> None:
    status = {"initContainerStatuses": [], "containerStatuses": [run()], "phase": "Running"}
    patch = ps.as_patch(status)
    entry = patch["containerStatuses"][0]
    assert entry["state"] == {"waiting": None, "running": {"startedAt": T0}, "terminated": None}
    assert entry["lastState"] == {"waiting": None, "running": None, "terminated": None}
