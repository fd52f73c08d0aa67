"""The status patch is the diff of two dumped models, applied by the server as a merge patch."""

from __future__ import annotations

from typing import Any

import pytest
from operator_builders import NOW, ago, cond, job, pod, spec
from test_status import CASES

from kubetrain.api.conditions import Phase, Reason
from kubetrain.api.status import TrainingJobStatus
from kubetrain_operator.decision import JobState
from kubetrain_operator.status import decide, invalid
from kubetrain_operator.status_patch import dump, merge_patch, status_patch


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386, as the API server applies `application/merge-patch+json`."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = apply_merge_patch(out.get(key), value)
    return out


@pytest.mark.parametrize("name", list(CASES))
def test_the_patch_turns_the_current_status_into_the_decided_one(name: str):
    state, pods, _ = CASES[name]
    desired = decide(state, pods, NOW).status
    stored = apply_merge_patch(dump(state.status), status_patch(state.status, desired))
    assert stored == dump(desired)
    # and the server's copy, read back, parses to the same model: the next patch is empty
    assert status_patch(TrainingJobStatus.model_validate(stored), desired) == {}


def test_an_unchanged_status_is_an_empty_patch_so_nothing_is_written():
    state = job(
        "Running",
        conditions=[cond("Running", reason="Training", since=20)],
        reason="Training",
        message="2 worker pod(s) running",
        startTime=ago(30),
        replicas={"active": 2},
    )
    d = decide(state, [pod(0), pod(1)], NOW)
    assert (d.status.phase, d.events, d.create, d.delete) == (Phase.RUNNING, [], [], [])
    assert status_patch(state.status, d.status) == {}


def test_fields_that_disappear_are_patched_to_null():
    suspended = decide(job("Running", spec(runPolicy={"suspend": True}), startTime=ago(50)),
                       [pod(0), pod(1)], NOW)  # fmt: skip
    assert (
        status_patch(job("Running", startTime=ago(50)).status, suspended.status)["startTime"]
        is None
    )  # the deadline counts running time only
    fixed = JobState("demo", 2, spec(), TrainingJobStatus.model_validate({
        "phase": "Failed", "reason": "InvalidSpec", "observedGeneration": 1,
        "completionTime": ago(5)}))  # fmt: skip
    patch = status_patch(fixed.status, decide(fixed, [], NOW).status)
    assert patch["completionTime"] is None and patch["phase"] == "Starting"


def test_an_object_is_sent_whole_with_null_for_its_vanished_keys():
    current = {"plan": {"worldSize": 2, "strategy": "ddp"}, "restarts": 1}
    desired = {"plan": {"worldSize": 4}, "restarts": 1}
    patch = merge_patch(current, desired)
    assert patch == {"plan": {"worldSize": 4, "strategy": None}}
    assert apply_merge_patch(current, patch) == desired


def test_the_trainers_progress_is_never_in_the_patch():
    state = job("Running", progress={"step": 7, "heartbeatTime": ago(1)})
    desired = state.status.model_copy(update={"progress": None, "message": "x"})
    assert status_patch(state.status, desired) == {"message": "x"}


def test_a_first_decision_writes_the_phase_and_the_reason():
    patch = status_patch(TrainingJobStatus(), decide(job(), [], NOW).status)
    assert (patch["phase"], patch["reason"], patch["observedGeneration"]) == (
        "Starting",
        "PodsStarting",
        1,
    )


def test_every_reason_the_machine_writes_is_a_constant():
    """Apart from a failed pod's own reason (the kubelet's), which passes through."""
    written = {decide(state, pods, NOW).status.reason for state, pods, _ in CASES.values()}
    written.add(invalid(job(), [], "bad", NOW).status.reason)
    assert written - {"Same"} <= set(Reason)  # "Same": the builders' unchanged reason
