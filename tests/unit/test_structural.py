"""Golden-file tests for the pydantic → Kubernetes structural schema converter.

Each model below exercises one rewrite; its converted schema lives in
tests/unit/golden/structural/<name>.json. After an intended change, regenerate them with

    UPDATE_GOLDEN=1 pytest tests/unit/test_structural.py

and review the diff.
"""

from __future__ import annotations

import datetime
import enum
import importlib.util
import json
import os
import pathlib
import subprocess
import sys
from collections.abc import Iterator
from typing import Annotated, Any, Literal

import pytest
from pydantic import AnyUrl, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from kubetrain.api import structural
from kubetrain.api.structural import to_structural

GOLDEN_DIR = pathlib.Path(__file__).parent / "golden" / "structural"
REGENERATE = "UPDATE_GOLDEN=1 pytest tests/unit/test_structural.py"


class Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class Resources(Camel):
    """Compute resources of one worker."""

    cpu: int | str | None = Field(None, description="CPU quantity, e.g. 2 or '500m'.")
    memory: int | str = "4Gi"


class Scheduler(Camel):
    warmup_steps: int = Field(0, ge=0)
    kind: Literal["cosine", "linear"] = "cosine"


class Nested(Camel):
    """Nested models, Optional models, lists of models and object defaults."""

    resources: Resources = Field(description="What each worker requests.")
    limits: Resources | None = Field(None, description="Optional upper bounds.")
    scheduler: Scheduler = Scheduler()
    extra_resources: Resources = Resources()
    replicas: list[Resources] = []


class Scalars(Camel):
    """Optional scalars, bounds, Literals and formats."""

    learning_rate: float = Field(1e-3, gt=0, lt=1, description="Peak learning rate.")
    dropout: float = Field(0.0, ge=0, lt=1)
    at_least_five: int = Field(5, ge=5, gt=3)
    seed: int | None = None
    max_steps: int | None = 1000
    name: Literal["adamw"] = "adamw"
    precision: Literal["fp32", "bf16", "fp16"] = "bf16"
    device: Literal["cpu"] | Literal["cuda", "mps"] = "cpu"
    deadline: datetime.datetime | None = None
    homepage: AnyUrl | None = None
    tags: set[str] = set()
    name_pattern: str = Field("run-*", min_length=1, max_length=63, pattern=r"^[a-z*-]+$")


class Quantities(BaseModel):
    """int | str as Kubernetes quantities."""

    gpu: int | str = Field(1, alias="nvidia.com/gpu")
    memory: int | str | None = Field(None, description="Memory quantity.")
    procs_per_node: int | Literal["auto"] = Field("auto", alias="procsPerNode")


class Loose(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str


class Maps(Camel):
    """Free-form and typed maps."""

    pod_template: dict[str, Any] = Field(default_factory=dict, description="Merged into pods.")
    loss_weights: dict[str, float] = {"ce": 1.0}
    named_resources: dict[str, Resources] = {}
    loose: Loose | None = None


class Tuples(Camel):
    betas: tuple[float, float] = (0.9, 0.999)
    milestones: tuple[int, ...] = ()


class Color(enum.StrEnum):
    RED = "red"
    GREEN = "green"


class Enums(Camel):
    color: Color = Color.RED
    described: Color = Field(Color.GREEN, description="The field's description wins.")


class Checked(Camel):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "self.minReplicas <= self.maxReplicas", "message": "min > max"}
            ]
        }
    )

    min_replicas: int = 1
    max_replicas: int = 1


class Validations(Camel):
    """CEL rules from json_schema_extra, on a model and on a field that uses it."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [{"rule": "has(self.scaling)", "message": "needed"}]
        }
    )

    scaling: Checked | None = Field(
        None,
        json_schema_extra={
            "x-kubernetes-validations": [{"rule": "self.maxReplicas <= 64", "message": "≤ 64"}]
        },
    )
    names: list[str] = Field(
        default_factory=list, json_schema_extra={"x-kubernetes-list-type": "set"}
    )


GOLDEN_MODELS: dict[str, type[BaseModel]] = {
    "nested": Nested,
    "scalars": Scalars,
    "quantities": Quantities,
    "maps": Maps,
    "tuples": Tuples,
    "enums": Enums,
    "validations": Validations,
}


def convert(model: type[BaseModel]) -> dict[str, Any]:
    return to_structural(model.model_json_schema(by_alias=True, mode="validation"))


@pytest.mark.parametrize("name", GOLDEN_MODELS)
def test_matches_golden(name: str) -> None:
    text = json.dumps(convert(GOLDEN_MODELS[name]), indent=2, ensure_ascii=False) + "\n"
    path = GOLDEN_DIR / f"{name}.json"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path} is missing; create it with: {REGENERATE}"
    assert text == path.read_text(encoding="utf-8"), (
        f"{path.name} differs from the converter's output; if intended, run: {REGENERATE}"
    )


def schema_nodes(node: dict[str, Any], path: str = "$") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node (not default or enum values) with its path."""
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from schema_nodes(sub, f"{path}.{name}")
    if "items" in node:
        yield from schema_nodes(node["items"], f"{path}[*]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from schema_nodes(node["additionalProperties"], f"{path}.*")


FORBIDDEN = {
    "$ref",
    "$defs",
    "anyOf",
    "oneOf",
    "allOf",
    "not",
    "title",
    "const",
    "prefixItems",
    "uniqueItems",
    "discriminator",
}


@pytest.mark.parametrize("name", GOLDEN_MODELS)
def test_output_is_structural(name: str) -> None:
    for path, node in schema_nodes(convert(GOLDEN_MODELS[name])):
        assert (
            "type" in node
            or node.get("x-kubernetes-int-or-string") is True
            or node.get("x-kubernetes-preserve-unknown-fields") is True
        ), path
        assert not FORBIDDEN & node.keys(), (path, FORBIDDEN & node.keys())
        assert node.get("additionalProperties", {}) not in (False, True), path
        assert "default" not in node or node["default"] is not None, path
        for bound in ("exclusiveMinimum", "exclusiveMaximum"):
            assert isinstance(node.get(bound, True), bool), path
        if node.get("type") == "array":
            assert "items" in node, path
        if "properties" in node:
            assert set(node.get("required", ())) <= node["properties"].keys(), path
        assert next(iter(node)) in ("type", *structural._UNTYPED_MARKERS), path


def test_optional_model_takes_outer_description_and_is_nullable() -> None:
    limits = convert(Nested)["properties"]["limits"]
    assert limits["description"] == "Optional upper bounds."
    assert limits["nullable"] is True
    assert "default" not in limits
    assert list(limits["properties"]) == ["cpu", "memory"]


def test_object_defaults_drop_nulls_but_keep_required_fields() -> None:
    nested = convert(Nested)["properties"]
    assert nested["extraResources"]["default"] == {"memory": "4Gi"}
    assert nested["scheduler"]["default"] == {"warmupSteps": 0, "kind": "cosine"}


def test_input_is_not_modified() -> None:
    schema = Validations.model_json_schema(by_alias=True, mode="validation")
    before = json.dumps(schema)
    out = to_structural(schema)
    out["properties"]["scaling"]["x-kubernetes-validations"].append({"rule": "x"})
    assert json.dumps(schema) == before


class Node(BaseModel):
    children: list[Node] = []


class Ping(BaseModel):
    pong: Pong | None = None


class Pong(BaseModel):
    ping: Ping


class Cat(BaseModel):
    kind: Literal["cat"] = "cat"


class Dog(BaseModel):
    kind: Literal["dog"] = "dog"


class SelfRecursive(BaseModel):
    tree: Node


class MutuallyRecursive(BaseModel):
    ping: Ping


class Discriminated(BaseModel):
    pet: Annotated[Cat | Dog, Field(discriminator="kind")]


class PlainUnion(BaseModel):
    pet: Cat | Dog


class Mixed(BaseModel):
    value: int | list[str]


class Untyped(BaseModel):
    anything: Any = None


class MixedTuple(BaseModel):
    pair: tuple[int, str]


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (SelfRecursive, r"\$\.tree\.children\[\*\]: recursive model \(Node -> Node\)"),
        (MutuallyRecursive, r"\$\.ping\.pong\.ping: recursive model \(Ping -> Pong -> Ping\)"),
        (
            Discriminated,
            r"\$\.pet: oneOf/discriminated union; .*'type' field \+ optional "
            r"members \+ a CEL rule",
        ),
        (PlainUnion, r"\$\.pet: cannot express anyOf .*'type' field \+ optional members"),
        (Mixed, r"\$\.value: cannot express anyOf of types \['integer', 'array'\]"),
        (Untyped, r"\$\.anything: no type"),
        (MixedTuple, r"\$\.pair: tuple items differ"),
    ],
)
def test_refuses_what_structural_schemas_cannot_express(
    model: type[BaseModel], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        convert(model)


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        # Older pydantic wraps a described $ref in a one-element allOf.
        (
            {
                "type": "object",
                "properties": {"a": {"allOf": [{"$ref": "#/$defs/A"}], "description": "outer"}},
                "$defs": {"A": {"type": "object", "title": "A", "description": "inner"}},
            },
            {"type": "object", "properties": {"a": {"type": "object", "description": "outer"}}},
        ),
        ({"type": "integer", "default": None}, {"type": "integer"}),
        (
            {"type": "number", "exclusiveMinimum": True, "minimum": 0},
            {"type": "number", "minimum": 0, "exclusiveMinimum": True},
        ),
        ({"enum": [1, 2]}, {"type": "integer", "enum": [1, 2]}),
        ({"const": True}, {"type": "boolean", "enum": [True]}),
        (
            {"type": "object", "additionalProperties": {}},
            {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        ),
        ({"type": "string", "format": "path"}, {"type": "string"}),
        ({"type": "integer", "format": "int64"}, {"type": "integer", "format": "int64"}),
    ],
)
def test_rewrites_raw_schemas(schema: dict[str, Any], expected: dict[str, Any]) -> None:
    assert to_structural(schema) == expected


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        (
            {"type": "object", "properties": {"a": {"$ref": "#/definitions/A"}}},
            r"\$\.a: cannot resolve \$ref",
        ),
        (
            {"type": "string", "contentMediaType": "text/plain"},
            r"\$: unsupported JSON schema keyword 'contentMediaType'",
        ),
        ({"type": "array"}, r"\$: array without an item schema"),
        (
            {"type": "object", "properties": {"a": {"type": "integer"}}, "default": {"b": 1}},
            r"\$ \(default\): unknown field 'b'",
        ),
        (
            {"type": "object", "properties": {"a": {"type": "integer"}}, "default": {"a": "x"}},
            r"\$ \(default\)\.a: 'x' is not of type integer",
        ),
        ({"type": "string", "enum": ["a"], "default": "b"}, r"'b' is not one of \['a'\]"),
        (
            {
                "type": "object",
                "properties": {"a": {"type": "integer"}},
                "additionalProperties": {"type": "string"},
            },
            r"typed additionalProperties",
        ),
    ],
)
def test_refuses_invalid_raw_schemas(schema: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        to_structural(schema)


def test_imports_without_pydantic_or_torch() -> None:
    # Load the file by path: kubetrain.api's package __init__ may import pydantic models.
    code = (
        "import importlib.util, sys\n"
        "sys.modules['pydantic'] = sys.modules['torch'] = None\n"
        f"spec = importlib.util.spec_from_file_location('structural', {structural.__file__!r})\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "assert module.to_structural({'type': 'string', 'title': 'T'}) == {'type': 'string'}\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert importlib.util.find_spec("kubetrain.api.structural") is not None
