"""What the schema cannot check: each case names its field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from operator_builders import spec

from kubetrain_operator.validation import parse, validate, warnings

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"

CASES = {
    "no image": (dict(image=None), "spec.image: required in a cluster"),
    "reserved env": (
        dict(template={"env": [{"name": "PET_NODE_RANK", "value": "3"}]}),
        "spec.template.env[0].name: PET_NODE_RANK is set by the operator",
    ),
    "mount without volume": (
        dict(template={"volumeMounts": [{"name": "nope", "mountPath": "/x"}]}),
        "spec.template.volumeMounts[0].name: no volume 'nope'",
    ),
    "mount over the spec": (
        dict(template={"volumes": [{"name": "v", "emptyDir": {}}],
                       "volumeMounts": [{"name": "v", "mountPath": "/etc/kubetrain/"}]}),
        "spec.template.volumeMounts[0].mountPath: /etc/kubetrain/ is the operator's",
    ),
    "our volume names": (
        dict(template={"volumes": [{"name": "dshm", "emptyDir": {}}]}),
        "spec.template.volumes: the names kubetrain-spec and dshm are the operator's",
    ),
    "more processes than GPUs": (
        dict(resources={"gpu": 2}, parallelism={"procsPerNode": 4},
             training={"maxSteps": 1, "globalBatchSize": 16}),
        "spec.parallelism.procsPerNode: 4 processes but 2 GPU(s) per node",
    ),
    "nccl without GPUs": (
        dict(parallelism={"backend": "nccl"}), "spec.parallelism.backend: nccl needs GPUs"
    ),
    "batch not divisible once auto is resolved": (
        dict(resources={"gpu": 3}, parallelism={"procsPerNode": "auto", "backend": "nccl"}),
        "spec.training.globalBatchSize: 16 is not a multiple of microBatchSize",
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(CASES))
def test_problem_is_reported_with_its_field(name: str):
    override, expected = CASES[name]
    problems = validate("demo", {}, spec(**override))
    assert any(expected in p for p in problems), problems


def test_names_must_fit_dns_labels():
    assert validate("x" * 54, {}, spec()) == []
    (problem,) = validate("x" * 55, {}, spec())
    assert problem.startswith("metadata.name: at most 54 characters with 2 nodes")
    assert validate("7up", {}, spec())[0].startswith("metadata.name: must start with a letter")


def test_an_elastic_job_name_must_fit_its_largest_size():
    elastic = spec(parallelism={"nodes": 2, "minNodes": 1, "maxNodes": 11})
    (problem,) = validate("x" * 54, {}, elastic)  # fits worker-1, not worker-10
    assert problem.startswith("metadata.name: at most 53 characters with 11 nodes")


def test_command_annotation_must_be_a_json_list():
    assert validate("demo", {"kubetrain.io/command": '["a"]'}, spec()) == []
    assert validate("demo", {"kubetrain.io/command": "a b"}, spec()) == [
        "metadata.annotations[kubetrain.io/command]: must be a JSON list of strings"
    ]


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_examples_are_runnable(path: Path):
    obj = yaml.safe_load(path.read_text())
    parsed, problems = parse(obj)
    assert problems == [] and parsed is not None
    assert validate(obj["metadata"]["name"], {}, parsed) == []


def test_unparsable_spec_lists_every_issue():
    parsed, problems = parse({"apiVersion": "kubetrain.io/v1alpha1", "kind": "TrainingJob",
                              "spec": {"dataset": {"type": "synthetic"}, "traning": {}}})
    assert parsed is None
    assert "spec.traning: unknown field (did you mean 'training'?)" in problems
    assert "spec.model: required field is missing" in problems


def test_multi_node_without_shared_checkpoints_is_warned():
    assert "share no checkpoint storage" in warnings(spec())[0]
    shared = {"volumes": [{"name": "kubetrain-run", "persistentVolumeClaim": {"claimName": "c"}}]}
    assert warnings(spec(template=shared)) == []
    assert warnings(spec(checkpoint={"path": "/mnt/ckpt"})) == []
    assert warnings(spec(checkpoint={"path": "s3://bucket/run"})) == []  # no volume needed
    assert "s3:// bucket prefix" in warnings(spec())[0]
    assert warnings(spec(parallelism={"nodes": 1})) == []
