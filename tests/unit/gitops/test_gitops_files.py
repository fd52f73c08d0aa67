"""The GitOps examples in deploy/ and docs/gitops.md: valid, consistent with the chart."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from kubetrain_chart import ROOT, render

from kubetrain_operator.chart_values import ChartValues
from kubetrain_testenv.assets import ensure_assets

DOC = (ROOT / "docs" / "gitops.md").read_text()
EXAMPLES = sorted((ROOT / "deploy" / "argocd").glob("*.yaml")) + sorted(
    (ROOT / "deploy" / "flux").glob("*.yaml")
)


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_are_shown_verbatim_in_the_doc(path: Path) -> None:
    assert path.read_text() in DOC, f"docs/gitops.md must show {path.relative_to(ROOT)} as is"


def test_operator_syncs_before_the_jobs() -> None:
    argocd = ROOT / "deploy" / "argocd"
    wave = {
        d["metadata"]["name"]: int(d["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"])
        for p in argocd.glob("application-*.yaml")
        for d in _docs(p)
    }
    assert wave["kubetrain"] < wave["training-jobs"]
    (jobs,) = _docs(argocd / "application-jobs.yaml")
    assert "SkipDryRunOnMissingResource=true" in jobs["spec"]["syncPolicy"]["syncOptions"]
    (chart,) = _docs(argocd / "application-kubetrain.yaml")
    assert chart["spec"]["source"]["path"] == "charts/kubetrain"
    ChartValues.model_validate(chart["spec"]["source"]["helm"]["valuesObject"])


def test_flux_release_installs_and_upgrades_crds_with_valid_values() -> None:
    source, release = _docs(ROOT / "deploy" / "flux" / "helmrelease.yaml")
    assert release["spec"]["chart"]["spec"]["sourceRef"]["name"] == source["metadata"]["name"]
    assert release["spec"]["install"]["crds"] == "CreateReplace"
    assert release["spec"]["upgrade"]["crds"] == "CreateReplace"
    ChartValues.model_validate(release["spec"]["values"])


def test_versions_follow_the_chart() -> None:
    version = yaml.safe_load((ROOT / "charts" / "kubetrain" / "Chart.yaml").read_text())["version"]
    (chart,) = _docs(ROOT / "deploy" / "argocd" / "application-kubetrain.yaml")
    assert chart["spec"]["source"]["targetRevision"] == f"v{version}"
    source, _ = _docs(ROOT / "deploy" / "flux" / "helmrelease.yaml")
    assert source["spec"]["ref"]["tag"] == f"v{version}"


def test_kustomize_base_builds_to_what_helm_renders() -> None:
    """`kubectl kustomize` of the base = `helm template` of the defaults, minus Helm's labels."""
    kubectl = ensure_assets() / "kubectl"
    out = subprocess.run(
        [str(kubectl), "kustomize", str(ROOT / "deploy" / "kustomize" / "base")],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    built = {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(out) if d}
    for doc in render():
        key = (doc["kind"], doc["metadata"]["name"])
        assert key in built, f"{key} missing from the kustomize base"
        ours = built[key]
        assert ours["metadata"].get("namespace") == doc["metadata"].get("namespace")
        assert {k: v for k, v in ours.items() if k != "metadata"} == {
            k: v for k, v in doc.items() if k != "metadata"
        }, f"{key} differs from the chart"
    kinds = {k for k, _ in built}
    assert {"Namespace", "CustomResourceDefinition"} <= kinds
