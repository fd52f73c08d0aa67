"""Drift of a job's children (drift.py) and the cache a reconcile reads them from (children.py)."""

from __future__ import annotations

import copy
from typing import Any

from operator_builders import meta, spec

from kubetrain_operator.children import Children, job_of, ref_of
from kubetrain_operator.drift import MISSING, Written, differences, fingerprint, repair
from kubetrain_operator.render import render_children, render_role, render_service

Obj = dict[str, Any]


def served(desired: Obj, version: str = "7") -> Obj:
    """`desired` as the API server answers it: defaults, server fields, managedFields."""
    obj = copy.deepcopy(desired)
    obj["metadata"].update(
        uid="child-uid", resourceVersion=version, creationTimestamp="2026-11-24T00:00:00Z",
        managedFields=[{"manager": "kubetrain-operator", "operation": "Apply"}],
    )  # fmt: skip
    if obj["kind"] == "Service":
        obj["spec"].update(
            clusterIPs=["None"], sessionAffinity="None", type="ClusterIP",
            ipFamilies=["IPv4"], ipFamilyPolicy="SingleStack", internalTrafficPolicy="Cluster",
        )  # fmt: skip
    return obj


def test_every_rendered_child_matches_itself_as_served() -> None:
    for child in render_children(meta(), spec()):
        assert differences(child, served(child)) == [], child["kind"]


def test_defaults_and_labels_added_by_others_are_not_drift() -> None:
    service = render_service(meta(), spec())
    observed = served(service)
    observed["metadata"]["labels"]["team"] = "vision"
    observed["metadata"]["annotations"] = {"note": "added by hand"}
    assert differences(service, observed) == []


def test_a_changed_selector_is_drift_at_its_path() -> None:
    service = render_service(meta(), spec())
    observed = served(service)
    observed["spec"]["selector"]["kubetrain.io/job-name"] = "someone-else"
    observed["spec"]["publishNotReadyAddresses"] = False
    assert differences(service, observed) == [
        "spec.publishNotReadyAddresses",
        "spec.selector.kubetrain.io/job-name",
    ]


def test_a_removed_key_is_drift() -> None:
    service = render_service(meta(), spec())
    observed = served(service)
    del observed["spec"]["selector"]["app.kubernetes.io/component"]
    del observed["metadata"]["ownerReferences"]
    assert differences(service, observed) == [
        "metadata.ownerReferences",
        "spec.selector.app.kubernetes.io/component",
    ]


def test_lists_match_in_length_and_element_by_element() -> None:
    role = render_role(meta())
    widened = served(role)
    widened["rules"].append({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]})
    assert differences(role, widened) == ["rules"]
    edited = served(role)
    edited["rules"][0]["verbs"] = ["get", "patch", "update"]
    assert differences(role, edited) == ["rules[0].verbs"]
    renamed = served(role)
    renamed["rules"][0]["resourceNames"] = ["other-job"]
    assert differences(role, renamed) == ["rules[0].resourceNames[0]"]


def test_a_type_change_is_drift() -> None:
    assert differences({"data": {"a": "1"}}, {"data": "a=1"}) == ["data"]
    assert differences({"rules": [1]}, {"rules": {"0": 1}}) == ["rules"]


def test_repair_a_missing_child() -> None:
    config_map = render_children(meta(), spec())[3]
    assert repair(config_map, None, None) == [MISSING]
    # Even one we wrote: deleted since.
    assert repair(config_map, None, Written("7", fingerprint(config_map))) == [MISSING]


def test_repair_nothing_in_sync() -> None:
    config_map = render_children(meta(), spec())[3]
    assert repair(config_map, served(config_map), None) == []


def test_repair_an_edit_made_after_our_apply() -> None:
    config_map = render_children(meta(), spec())[3]
    edited = served(config_map, version="8")
    edited["data"]["job.yaml"] = "edited by hand"
    assert repair(config_map, edited, Written("7", fingerprint(config_map))) == ["data.job.yaml"]


def test_no_second_write_of_what_our_own_apply_could_not_change() -> None:
    """An element another manager added to a merged list survives our apply: the child still
    differs at the version our apply returned, and applying again would change nothing."""
    service = render_service(meta(), spec())
    observed = served(service, version="9")
    observed["spec"]["ports"].append({"name": "debug", "port": 5678, "protocol": "TCP"})
    ours = Written("9", fingerprint(service))
    assert repair(service, observed, ours) == []
    # A new rendering (the spec changed) is applied even so.
    moved = render_service(meta(), spec(parallelism={"masterPort": 29501}))
    assert repair(moved, observed, ours) != []
    # So is a later edit by someone else (another resourceVersion).
    observed["metadata"]["resourceVersion"] = "10"
    assert repair(service, observed, ours) == ["spec.ports"]


def test_fingerprint_follows_the_rendering() -> None:
    a, b = render_service(meta(), spec()), render_service(meta(), spec())
    assert fingerprint(a) == fingerprint(b)
    b["spec"]["selector"]["x"] = "y"
    assert fingerprint(a) != fingerprint(b)


def test_a_child_belongs_to_its_controller_job_else_to_its_label() -> None:
    service = served(render_service(meta(), spec()))
    assert job_of(service) == ("ns", "demo")
    unlabelled = copy.deepcopy(service)
    del unlabelled["metadata"]["labels"]
    assert job_of(unlabelled) == job_of(service)
    orphan = copy.deepcopy(service)
    del orphan["metadata"]["ownerReferences"]
    assert job_of(orphan) == job_of(service)
    del orphan["metadata"]["labels"]
    assert job_of(orphan) is None


def test_the_cache_follows_events_and_our_writes() -> None:
    children = Children()
    m = meta()
    key = (m.namespace, m.name)
    service = served(render_service(m, spec()))
    ref = ref_of(service)
    assert children.event(None, service) == key  # kopf's initial listing: type None
    assert children.get(ref) is not None
    assert "managedFields" not in children.get(ref)["metadata"]  # type: ignore[index]
    assert children.event("DELETED", service) == key
    assert children.get(ref) is None
    children.wrote(key, served(render_service(m, spec()), version="12"), "fp")
    assert children.written(ref) == Written("12", "fp")
    assert children.get(ref)["metadata"]["resourceVersion"] == "12"  # type: ignore[index]
    children.forget(key)
    assert children.get(ref) is None and children.written(ref) is None and len(children) == 0


def test_a_deleted_child_forgets_what_we_wrote_there() -> None:
    children = Children()
    m = meta()
    key = (m.namespace, m.name)
    answer = served(render_service(m, spec()), version="12")
    children.wrote(key, answer, "fp")
    children.event("DELETED", answer)
    assert children.written(ref_of(answer)) is None
    children.forget(key)
    assert len(children) == 0


def test_the_echo_of_our_own_apply_wakes_no_one() -> None:
    children = Children()
    m = meta()
    key = (m.namespace, m.name)
    answer = served(render_service(m, spec()), version="12")
    children.wrote(key, answer, "fp")
    assert children.event("MODIFIED", answer) is None  # our write, seen again
    edited = served(render_service(m, spec()), version="13")
    assert children.event("MODIFIED", edited) == key  # someone else's
    assert children.event("DELETED", edited) == key
