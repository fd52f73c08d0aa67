"""The chart ships the operator's ValidatingAdmissionPolicy (operator/manifests/) unchanged."""

from __future__ import annotations

import yaml
from kubetrain_chart import ROOT, VARIANTS, by_kind, render

KINDS = ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")


def _manifests() -> list[dict]:
    path = ROOT / "operator" / "manifests" / "trainer-progress-policy.yaml"
    return [d for d in yaml.safe_load_all(path.read_text()) if d and d["kind"] in KINDS]


def _without_labels(doc: dict) -> dict:
    return {**doc, "metadata": {k: v for k, v in doc["metadata"].items() if k != "labels"}}


def test_release_kubetrain_renders_the_manifests_exactly() -> None:
    rendered = [d for d in render() if d["kind"] in KINDS]
    assert [_without_labels(d) for d in rendered] == [_without_labels(d) for d in _manifests()]


def test_other_releases_get_their_own_names() -> None:
    from kubetrain_chart import CHART, helm

    out = helm("template", "ml", str(CHART)).stdout
    docs = [d for d in yaml.safe_load_all(out) if d and d["kind"] in KINDS]
    policy, binding = docs
    assert policy["metadata"]["name"] == "ml-kubetrain-trainer-progress-only"
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]


def test_policy_can_be_switched_off() -> None:
    assert not by_kind(render(VARIANTS["metrics-off"]), "ValidatingAdmissionPolicy")


def test_the_operators_account_is_not_judged_as_a_trainer() -> None:
    (deployment,) = by_kind(render(), "Deployment")
    assert not deployment["spec"]["template"]["spec"]["serviceAccountName"].endswith("-trainer")
