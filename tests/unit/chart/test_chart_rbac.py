"""RBAC audit of the rendered chart: exact verbs per resource, no wildcards, no Secrets."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from chart_rbac import CLUSTER, CLUSTER_NAMESPACED_MODE, NAMESPACED
from kubetrain_chart import CHART, ROOT, VARIANTS, by_kind, helm, render, template, values_args

ROLE_KINDS = ("Role", "ClusterRole")
# Verbs that let a holder grant itself more than it has.
ESCALATING = {"escalate", "bind", "impersonate"}


def _table(role: dict[str, Any]) -> dict[tuple[str, str], frozenset[str]]:
    table: dict[tuple[str, str], frozenset[str]] = {}
    for rule in role["rules"]:
        assert "resourceNames" not in rule and "nonResourceURLs" not in rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                key = (group, resource)
                assert key not in table, f"{role['metadata']['name']}: {key} granted twice"
                table[key] = frozenset(rule["verbs"])
    return table


@pytest.mark.parametrize("variant", VARIANTS)
def test_no_wildcards_no_secrets_no_escalation(variant: str) -> None:
    for role in [d for d in render(VARIANTS[variant]) if d["kind"] in ROLE_KINDS]:
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[field], f"wildcard in {field}: {rule}"
            assert not {"secrets"} & set(rule["resources"]), f"Secrets access: {rule}"
            assert not ESCALATING & set(rule["verbs"]), f"escalating verb: {rule}"


def test_cluster_wide_grants_exactly_the_table() -> None:
    docs = render()
    assert not by_kind(docs, "Role")
    roles = {r["metadata"]["name"]: _table(r) for r in by_kind(docs, "ClusterRole")}
    assert roles == {"kubetrain-operator": NAMESPACED, "kubetrain-operator-kopf": CLUSTER}


def test_namespaced_grants_the_table_in_each_namespace_only() -> None:
    docs = render(VARIANTS["namespaced"])
    roles = by_kind(docs, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    for role in roles:
        assert _table(role) == NAMESPACED
    assert {r["metadata"]["name"]: _table(r) for r in by_kind(docs, "ClusterRole")} == {
        "kubetrain-operator-kopf": CLUSTER_NAMESPACED_MODE
    }


@pytest.mark.parametrize("variant", ["default", "namespaced"])
def test_every_binding_names_the_charts_service_account_only(variant: str) -> None:
    docs = render(VARIANTS[variant])
    roles = {(r["kind"], r["metadata"]["name"]) for r in docs if r["kind"] in ROLE_KINDS}
    bindings = [d for d in docs if d["kind"] in ("RoleBinding", "ClusterRoleBinding")]
    assert len(bindings) == len([d for d in docs if d["kind"] in ROLE_KINDS])
    for binding in bindings:
        assert binding["subjects"] == [
            {
                "kind": "ServiceAccount",
                "name": "kubetrain-operator",
                "namespace": "kubetrain-system",
            }
        ]
        assert (binding["roleRef"]["kind"], binding["roleRef"]["name"]) in roles


@pytest.mark.parametrize("variant", ["default", "namespaced"])
def test_every_rule_is_justified_by_a_comment(variant: str) -> None:
    text = template(VARIANTS[variant])
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^- apiGroups:", line):
            assert lines[i - 1].lstrip().startswith("#"), f"rule without a comment: {line}"


def test_the_operators_own_manifest_states_the_same_table() -> None:
    """operator/manifests/operator-rbac.yaml is the operator engineer's statement of need."""
    path = ROOT / "operator" / "manifests" / "operator-rbac.yaml"
    roles = {d["metadata"]["name"]: _table(d) for d in yaml.safe_load_all(path.read_text()) if d}
    assert roles["kubetrain-operator"] == NAMESPACED
    assert roles["kubetrain-operator-framework"] == CLUSTER_NAMESPACED_MODE


def test_a_service_account_named_like_a_trainer_is_refused() -> None:
    done = helm(
        "template",
        "x",
        str(CHART),
        *values_args({"serviceAccount": {"name": "ops-trainer"}}),
        check=False,
    )
    assert done.returncode != 0
    assert "must not end in -trainer" in done.stderr
