"""`helm lint` and `helm template` with the default and non-default values; golden files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from kubetrain_chart import CHART, NAMESPACE, VARIANTS, by_kind, helm, render, template, values_args

GOLDEN = Path(__file__).parent / "golden"


@pytest.mark.parametrize("variant", VARIANTS)
def test_helm_lint_strict(variant: str) -> None:
    out = helm(
        "lint", "--strict", str(CHART), "--namespace", NAMESPACE, *values_args(VARIANTS[variant])
    ).stdout
    assert "0 chart(s) failed" in out


@pytest.mark.parametrize("variant", VARIANTS)
def test_rendered_manifests_match_golden(variant: str) -> None:
    """UPDATE_GOLDEN=1 rewrites the files; review the diff before committing it."""
    rendered = template(VARIANTS[variant])
    path = GOLDEN / f"{variant}.yaml"
    if os.environ.get("UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(rendered)
    assert path.exists(), f"{path} missing: run UPDATE_GOLDEN=1 pytest {__file__}"
    assert rendered == path.read_text(), (
        f"helm template differs from {path.name}: review, then UPDATE_GOLDEN=1 to accept"
    )


def test_defaults_render_what_a_cluster_wide_install_needs() -> None:
    kinds = sorted({d["kind"] for d in render()})
    assert kinds == [
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "Service",
        "ServiceAccount",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ]


def test_switches_add_and_remove_objects() -> None:
    assert not by_kind(render(VARIANTS["metrics-off"]), "Service")
    assert not by_kind(render(VARIANTS["metrics-off"]), "ValidatingAdmissionPolicy")
    monitoring = render(VARIANTS["monitoring"])
    (monitor,) = by_kind(monitoring, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    (dashboard,) = by_kind(monitoring, "ConfigMap")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert "kubetrain.json" in dashboard["data"]


def test_service_monitor_needs_metrics() -> None:
    docs = render({"metrics": {"enabled": False, "serviceMonitor": {"enabled": True}}})
    assert not by_kind(docs, "ServiceMonitor")


def test_crds_are_installed_from_the_crds_directory() -> None:
    """Helm installs crds/ before templates and never upgrades or deletes them."""
    with_crds = template({}, NAMESPACE, "--include-crds")
    assert "kind: CustomResourceDefinition" in with_crds
    assert "kind: CustomResourceDefinition" not in template({})
