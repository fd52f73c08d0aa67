"""The CRD on a real API server: it is accepted (structural, CEL compiles), every example passes
a server-side dry-run, updates keep the immutable parts, and defaults match the local loader.
(The invalid and valid corpora run against the server in test_parity.py.)"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException
from spec_cases import ROOT, example_files

from kubetrain.api.crd import CRD_FILENAME
from kubetrain_testenv import ControlPlane

GROUP, VERSION, PLURAL = "kubetrain.io", "v1alpha1", "trainingjobs"


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


def test_model_dataset_training_and_parallelism_are_immutable(jobs, namespace) -> None:
    doc = yaml.safe_load((ROOT / "examples" / "quickstart.yaml").read_text())
    jobs.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, doc)
    name = doc["metadata"]["name"]

    def patch(body: dict) -> None:
        jobs.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name, body)

    with pytest.raises(ApiException) as info:
        patch({"spec": {"model": {"dropout": 0.2}}})
    assert "model, dataset, training and parallelism are immutable" in info.value.body
    assert "create a new TrainingJob" in info.value.body
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
