"""Children of a job edited or deleted by hand are put back by the next reconcile (drift.py),
without a loop: each hand change costs exactly one apply, a reconcile of an unchanged job none."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from operator_helpers import Jobs, Operator, standin_job, until
from prometheus_client.parser import text_string_to_metric_families

from kubetrain_testenv import wait_for

pytestmark = pytest.mark.timeout(180)
LABEL_JOB = "kubetrain.io/job-name"
SNAKE = {"Service": "service", "ConfigMap": "config_map", "ServiceAccount": "service_account",
         "Role": "role", "RoleBinding": "role_binding"}  # fmt: skip


class Children:
    """Read, delete and patch one job's five children through the admin's client."""

    def __init__(self, jobs: Jobs, job: str) -> None:
        api = jobs.core.api_client
        self.core, self.rbac = jobs.core, client.RbacAuthorizationV1Api(api)
        self.ns, self.job = jobs.namespace, job
        sa = f"{job}-trainer"
        self.names = {"Service": job, "ConfigMap": f"{job}-spec", "ServiceAccount": sa,
                      "Role": sa, "RoleBinding": sa}  # fmt: skip

    def _verb(self, verb: str, kind: str) -> Callable[..., Any]:
        snake = SNAKE[kind]
        api = self.rbac if kind.startswith("Role") else self.core
        return getattr(api, f"{verb}_namespaced_{snake}")  # type: ignore[no-any-return]

    def read(self, kind: str) -> Any | None:
        try:
            return self._verb("read", kind)(self.names[kind], self.ns)
        except ApiException as e:
            if e.status == 404:
                return None
            raise

    def delete(self, kind: str) -> None:
        self._verb("delete", kind)(self.names[kind], self.ns)

    def patch(self, kind: str, body: Any) -> None:
        self._verb("patch", kind)(self.names[kind], self.ns, body)

    def versions(self) -> dict[str, str]:
        return {kind: self.read(kind).metadata.resource_version for kind in self.names}


def counters(op: Operator) -> dict[str, float]:
    """Child applies (total and by kind/cause) and reconciles, from the operator's /metrics."""
    out: dict[str, float] = {"applies": 0.0, "reconciles": 0.0, "requests": 0.0}
    for family in text_string_to_metric_families(op.metrics()):
        for s in family.samples:
            if s.name == "kubetrain_child_applies_total":
                out["applies"] += s.value
                label = f"{s.labels['kind']}/{s.labels['cause']}"
                out[label] = out.get(label, 0.0) + s.value
            elif s.name == "kubetrain_reconcile_duration_seconds_count":
                out["reconciles"] = s.value
            elif s.name == "kubetrain_api_requests_total":
                out["requests"] += s.value  # summed over verb and resource
    return out


def settled(op: Operator, jobs: Jobs, children: Children) -> dict[str, float]:
    """Counters once every child exists and a reconcile made on purpose applied nothing."""

    def check() -> dict[str, float] | None:
        if any(children.read(kind) is None for kind in children.names):
            return None
        first = counters(op)
        return first if reconcile_once(op, jobs, children.job)["applies"] == first["applies"] \
            else None

    return until(check, 60, "the children to settle")  # type: ignore[no-any-return]


_pokes = iter(range(1_000_000))


def reconcile_once(op: Operator, jobs: Jobs, job: str) -> dict[str, float]:
    """Make the operator reconcile `job` (a new annotation changes its event fingerprint) and
    return the counters after that reconcile."""
    before = counters(op)["reconciles"]
    jobs.custom.patch_namespaced_custom_object(
        "kubetrain.io", "v1alpha1", jobs.namespace, "trainingjobs", job,
        {"metadata": {"annotations": {"test.kubetrain.io/poke": str(next(_pokes))}}},
    )  # fmt: skip
    return until(  # type: ignore[no-any-return]
        lambda: (c := counters(op))["reconciles"] > before and c, 30, "a reconcile"
    )


def running_job(jobs: Jobs, tmp_path: Path, name: str) -> None:
    """Pods that stay up (the stand-in reports once, then waits) with no deadline nearby."""
    jobs.create(standin_job(name, tmp_path, "freeze", runPolicy={"heartbeatTimeoutSeconds": 900}))
    jobs.wait_phase(name, "Running", 90)


def test_each_deleted_child_comes_back(operator: Operator, jobs: Jobs, tmp_path: Path) -> None:
    running_job(jobs, tmp_path, "gone")
    children = Children(jobs, "gone")
    before = settled(operator, jobs, children)
    back_in: dict[str, float] = {}
    for kind in children.names:
        old = children.read(kind).metadata.uid
        started = time.monotonic()
        children.delete(kind)
        wait_for(lambda k=kind, o=old: (c := children.read(k)) is not None
                 and c.metadata.uid != o,
                 30, interval=0.02, what=f"the {kind} to come back")  # fmt: skip
        back_in[kind] = time.monotonic() - started
    after = settled(operator, jobs, children)
    print("deleted child back after (s):", {k: round(v, 3) for k, v in back_in.items()})

    # One create per deleted child, nothing more.
    assert after["applies"] - before["applies"] == len(children.names), (before, after)
    for kind in children.names:
        assert after.get(f"{kind}/missing", 0) - before.get(f"{kind}/missing", 0) == 1, kind
    assert jobs.status("gone")["phase"] == "Running"
    sa = children.read("ServiceAccount")
    assert sa.metadata.owner_references[0].name == "gone"  # owned again: GC removes it

    # Idle afterwards: a loop (an apply whose own watch event leads to another apply) would
    # show within seconds; watched for 10 s, nothing is written and almost nothing read.
    start, began = counters(operator), time.monotonic()
    while time.monotonic() - began < 10:
        now = counters(operator)
        assert now["applies"] == start["applies"] and now["reconciles"] - start["reconciles"] <= 2
        time.sleep(0.5)  # the sampling period of an observation window, not a wait for a state
    print(f"idle 10 s: {now['requests'] - start['requests']:.0f} API requests, "
          f"{now['reconciles'] - start['reconciles']:.0f} reconciles, 0 child applies")


def test_edited_children_are_restored(operator: Operator, jobs: Jobs, tmp_path: Path) -> None:
    running_job(jobs, tmp_path, "edited")
    children = Children(jobs, "edited")
    before = settled(operator, jobs, children)
    selector = children.read("Service").spec.selector
    rules = children.read("Role").to_dict()["rules"]
    document = children.read("ConfigMap").data["job.yaml"]
    subjects = [s.name for s in children.read("RoleBinding").subjects]

    children.patch("Service", {"spec": {"selector": {LABEL_JOB: "someone-else"}}})
    children.patch("Role", {"rules": [{"apiGroups": [""], "resources": ["pods"],
                                       "verbs": ["get", "list"]}]})  # fmt: skip
    children.patch("ConfigMap", {"data": {"job.yaml": "edited: by hand\n"}})
    children.patch("RoleBinding", {"subjects": [{"kind": "ServiceAccount", "name": "default",
                                                 "namespace": jobs.namespace}]})  # fmt: skip
    # Without its job label the ServiceAccount leaves the operator's watch (label selector):
    # the watch says DELETED, and the apply puts the label back.
    children.patch("ServiceAccount", {"metadata": {"labels": {LABEL_JOB: None}}})

    until(lambda: children.read("Service").spec.selector == selector, 30, "the selector")
    until(lambda: children.read("Role").to_dict()["rules"] == rules, 30, "the Role's rules")
    until(lambda: children.read("ConfigMap").data["job.yaml"] == document, 30, "the spec")
    until(lambda: [s.name for s in children.read("RoleBinding").subjects] == subjects, 30,
          "the RoleBinding's subjects")  # fmt: skip
    until(lambda: (children.read("ServiceAccount").metadata.labels or {}).get(LABEL_JOB)
          == "edited", 30, "the ServiceAccount's job label")  # fmt: skip
    after = settled(operator, jobs, children)

    # Exactly one apply per hand edit. (A change of some other manager that our apply cannot
    # undo would show here as one apply too, never as a loop: drift.repair.)
    assert after["applies"] - before["applies"] == 5, (before, after)
    # And a reconcile of the unchanged job writes no child at all.
    versions = children.versions()
    poked = reconcile_once(operator, jobs, "edited")
    assert poked["applies"] == after["applies"]
    assert children.versions() == versions

    # A spec change reaches the children the same way: the resolved document differs.
    jobs.patch_spec("edited", {"runPolicy": {"heartbeatTimeoutSeconds": 901}})
    until(lambda: "heartbeatTimeoutSeconds: 901" in children.read("ConfigMap").data["job.yaml"],
          30, "the new spec in the ConfigMap")  # fmt: skip
    changed = settled(operator, jobs, children)
    assert changed["applies"] - poked["applies"] == 1
    assert changed.get("ConfigMap/changed", 0) - poked.get("ConfigMap/changed", 0) == 1


def test_a_finished_jobs_children_are_left_alone(
    operator: Operator, jobs: Jobs, tmp_path: Path
) -> None:
    jobs.create(standin_job("done", tmp_path, "ok", "5"))
    jobs.wait_phase("done", "Succeeded", 90)
    children = Children(jobs, "done")
    before = settled(operator, jobs, children)

    children.delete("ConfigMap")
    children.patch("Service", {"spec": {"selector": {LABEL_JOB: "someone-else"}}})
    # The deletion and the edit each wake the job; then one more reconcile for certain.
    poked = reconcile_once(operator, jobs, "done")
    poked = reconcile_once(operator, jobs, "done")

    # Nothing runs that needs them: not fought over, not re-created, no write at all.
    assert poked["applies"] == before["applies"]
    assert children.read("ConfigMap") is None
    assert children.read("Service").spec.selector[LABEL_JOB] == "someone-else"
    assert jobs.status("done")["phase"] == "Succeeded"
