"""The CRD on a real API server: it is accepted (structural, CEL compiles), every example passes
a server-side dry-run, and the invalid corpus is rejected with the same field paths as locally."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException
from spec_cases import ROOT, example_files, invalid_cases

from kubetrain.api.crd import CRD_FILENAME, build_crd
from kubetrain_testenv import ControlPlane

GROUP, VERSION, PLURAL = "kubetrain.io", "v1alpha1", "trainingjobs"
SERVER_CASES = [c for c in invalid_cases() if c.server_rejects]


def _rule_messages(node: object) -> set[str]:
    if isinstance(node, dict):
        found = {r["message"] for r in node.get("x-kubernetes-validations", [])}
        return found.union(*(_rule_messages(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_rule_messages(v) for v in node))
    return set()


RULE_MESSAGES = _rule_messages(build_crd())


@pytest.fixture(scope="module")
def crd_installed(control_plane: ControlPlane) -> ControlPlane:
    applied = control_plane.kubectl(
        "apply", "--server-side", "-f", str(ROOT / "crds" / CRD_FILENAME)
    )
    assert applied.returncode == 0, f"the API server rejects crds/:\n{applied.stderr}"
    control_plane.wait_crd_established(f"{PLURAL}.{GROUP}")
    return control_plane


@pytest.fixture
def jobs(crd_installed: ControlPlane, api_client: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client)


def dry_run(api: client.CustomObjectsApi, namespace: str, doc: dict) -> None:
    api.create_namespaced_custom_object(
        GROUP, VERSION, namespace, PLURAL, doc, dry_run="All", field_validation="Strict"
    )


@pytest.mark.parametrize("path", example_files(), ids=lambda p: p.name)
def test_every_example_passes_a_server_side_dry_run(jobs, namespace, path) -> None:
    dry_run(jobs, namespace, yaml.safe_load(path.read_text()))


@pytest.mark.parametrize("case", SERVER_CASES, ids=[c.name for c in SERVER_CASES])
def test_invalid_spec_is_rejected_by_the_api_server(jobs, namespace, case) -> None:
    with pytest.raises(ApiException) as info:
        dry_run(jobs, namespace, case.document)
    assert info.value.status in (400, 422)
    body = json.loads(info.value.body)
    causes = body.get("details", {}).get("causes", [])
    named = {c.get("field") for c in causes} | {
        c["message"].split('"')[1] for c in causes if "unknown field" in c.get("message", "")
    }
    if "strict decoding error" in body["message"]:
        # Unknown fields stop decoding: the server names those before checking anything else.
        expected = {p for p, m in case.expect if "unknown field" in m or "did you mean" in m}
        expected = expected or {p for p, _ in case.expect}
        assert any(p in body["message"] for p in expected), body["message"]
        return
    for path, fragment in case.expect:
        # The server may name a list where pydantic names its missing element.
        path = path if path in named else path.split("[")[0]
        assert path in named, f"server did not name {path}: {causes}"
        messages = [c["message"] for c in causes if c.get("field") == path]
        if any(fragment in rule for rule in RULE_MESSAGES):
            # A CEL rule: the server says exactly what the local validator says.
            assert any(fragment in m for m in messages), messages


def test_model_dataset_training_and_parallelism_are_immutable(jobs, namespace) -> None:
    doc = yaml.safe_load((ROOT / "examples" / "quickstart.yaml").read_text())
    jobs.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, doc)
    name = doc["metadata"]["name"]

    def patch(body: dict) -> None:
        jobs.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, body)

    with pytest.raises(ApiException) as info:
        patch({"spec": {"model": {"dropout": 0.2}}})
    assert "are immutable: create a new TrainingJob" in info.value.body
    patch({"spec": {"runPolicy": {"suspend": True}}})  # run policy may change
    got = jobs.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    assert got["spec"]["runPolicy"]["suspend"] is True


def test_server_fills_in_defaults_the_way_the_local_loader_does(jobs, namespace) -> None:
    doc = yaml.safe_load((ROOT / "examples" / "cpu-cluster.yaml").read_text())
    created = jobs.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, doc)
    from kubetrain.api.loader import load_file

    (local,) = load_file(ROOT / "examples" / "cpu-cluster.yaml")
    expected = local.to_yaml_dict()["spec"]
    for section, value in expected.items():
        assert created["spec"].get(section) == value, section


@pytest.fixture(autouse=True)
def _no_leftovers(namespace: str) -> Iterator[None]:
    yield  # the namespace fixture deletes whatever a test created
