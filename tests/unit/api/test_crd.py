"""The generated CRD: checked in without drift, structural, and saying what users need."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kubetrain.api.crd import CRD_FILENAME, CRD_OUTPUTS, build_crd, render_crd_yaml

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("out", CRD_OUTPUTS)
def test_checked_in_crd_matches_the_models(out) -> None:
    path = ROOT / out / CRD_FILENAME
    assert path.exists(), f"{path} is missing: run `make crds`"
    assert path.read_text() == render_crd_yaml(), (
        f"{path} differs from the models: run `make crds` and commit the result"
    )


def _walk(node, path="$"):
    yield path, node
    for key, child in (node.get("properties") or {}).items():
        yield from _walk(child, f"{path}.{key}")
    if isinstance(node.get("items"), dict):
        yield from _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _walk(node["additionalProperties"], f"{path}{{}}")


def test_schema_is_structural() -> None:
    version = build_crd()["spec"]["versions"][0]
    for path, node in _walk(version["schema"]["openAPIV3Schema"]):
        typed = (
            "type" in node
            or node.get("x-kubernetes-int-or-string")
            or node.get("x-kubernetes-preserve-unknown-fields")
        )
        assert typed, f"{path} has no type"
        for banned in ("$ref", "anyOf", "oneOf", "allOf", "title", "const"):
            assert banned not in node, f"{path} still has {banned}"


def test_crd_has_status_subresource_columns_and_short_name() -> None:
    crd = build_crd()
    version = crd["spec"]["versions"][0]
    assert crd["spec"]["names"]["shortNames"] == ["tj"]
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    for wanted in ("Phase", "Step", "%", "Loss", "Samples/s", "Restarts", "Age"):
        assert wanted in columns


def test_cluster_rules_are_in_the_schema() -> None:
    spec = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert "image" in spec["required"]
    training = spec["properties"]["training"]
    rules = [r["rule"] for r in training["x-kubernetes-validations"]]
    assert "has(self.maxSteps) != has(self.epochs)" in rules
    optimizer = spec["properties"]["optimizer"]
    assert optimizer["description"].startswith("The optimizer")
    assert "Peak learning rate" in optimizer["properties"]["lr"]["description"]
    # The whole default object, so CEL rules hold for it as the API server checks it.
    assert spec["properties"]["parallelism"]["default"]["procsPerNode"] == "auto"


def test_status_keeps_typed_progress() -> None:
    status = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    progress = status["properties"]["progress"]["properties"]
    assert progress["history"]["maxItems"] == 100
    assert progress["metrics"]["additionalProperties"]["type"] == "number"
    assert set(status["properties"]["phase"]["enum"]) >= {"Pending", "Running", "Succeeded"}


def test_api_imports_without_torch() -> None:
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import kubetrain.api, kubetrain.api.crd, kubetrain.api.loader, kubetrain.cli.validate\n"
        "print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


def test_crd_yaml_round_trips() -> None:
    assert yaml.safe_load(render_crd_yaml()) == build_crd()


def test_strings_a_yaml_1_1_reader_takes_for_booleans_are_quoted() -> None:
    # The API server reads YAML 1.1, where a bare y is true (arrays.labelsKey defaults to "y").
    assert "default: 'y'" in render_crd_yaml()


def test_spec_reference_matches_the_models() -> None:
    from kubetrain.api.reference import REFERENCE_PATH, render_reference

    path = ROOT / REFERENCE_PATH
    assert path.read_text() == render_reference(), f"{path} is stale: run `make crds`"
