"""The TrainingJob CustomResourceDefinition, generated from the models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic.json_schema import GenerateJsonSchema
from pydantic_core import core_schema

from kubetrain.api.job import GROUP, KIND, PLURAL, SHORT_NAMES, SINGULAR, VERSION, TrainingJob
from kubetrain.api.structural import to_structural

CRD_FILENAME = f"{GROUP}_{PLURAL}.yaml"
# Where `make crds` writes the CRD; a unit test fails when any of them drifts.
CRD_OUTPUTS = ("crds", "charts/kubetrain/crds")

PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Step", "type": "integer", "jsonPath": ".status.progress.step"},
    {"name": "Total", "type": "integer", "jsonPath": ".status.progress.totalSteps", "priority": 1},
    {
        "name": "%",
        "type": "number",
        "jsonPath": ".status.progress.percent",
        "description": "Percent of the total steps done",
    },
    {"name": "Loss", "type": "number", "jsonPath": ".status.progress.loss"},
    {"name": "Val-Loss", "type": "number", "jsonPath": ".status.progress.valLoss"},
    {
        "name": "Samples/s",
        "type": "number",
        "jsonPath": ".status.progress.samplesPerSecond",
        "description": "Steady-state global throughput",
    },
    {"name": "ETA(s)", "type": "integer", "jsonPath": ".status.progress.etaSeconds"},
    {"name": "Restarts", "type": "integer", "jsonPath": ".status.restarts"},
    {
        "name": "Disruptions",
        "type": "integer",
        "jsonPath": ".status.disruptions",
        "priority": 1,
        "description": "Restarts after preemption, eviction or a lost node (not counted by"
        " maxRestarts)",
    },
    {
        "name": "Checkpoint",
        "type": "date",
        "jsonPath": ".status.progress.lastCheckpoint.time",
        "priority": 1,
        "description": "Age of the last checkpoint: the work a preemption would lose",
    },
    {"name": "Reason", "type": "string", "jsonPath": ".status.reason", "priority": 1},
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def _tidy_descriptions(node: Any) -> None:
    """Docstrings wrap at 100 columns; kubectl explain wraps again, so join their lines."""
    if isinstance(node, dict):
        if isinstance(node.get("description"), str):
            node["description"] = " ".join(node["description"].split())
        for value in node.values():
            _tidy_descriptions(value)
    elif isinstance(node, list):
        for value in node:
            _tidy_descriptions(value)


class _FactoryDefaults(GenerateJsonSchema):
    """Also write defaults made by a default_factory (sub-objects, lists, maps), so that the API
    server fills in the same values as the local loader. A sub-object's default is the whole
    default object: the API server checks CEL rules against a default as written."""

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> Any:
        factory = schema.get("default_factory")
        if factory is not None and not schema.get("default_factory_takes_data"):
            schema = {**schema, "default": factory()}  # type: ignore[typeddict-unknown-key]
            del schema["default_factory"]
        return super().default_schema(schema)


def openapi_schema() -> dict[str, Any]:
    """The structural schema of the whole resource."""
    converted = to_structural(
        TrainingJob.model_json_schema(
            by_alias=True, mode="validation", schema_generator=_FactoryDefaults
        )
    )
    _tidy_descriptions(converted)
    spec = converted["properties"]["spec"]
    # The trainer image is optional for `kubetrain run` but required in a cluster.
    spec["required"] = sorted({*spec.get("required", []), "image"})
    return {
        "type": "object",
        "description": converted.get("description", ""),
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": converted["properties"]["status"],
        },
    }


def build_crd() -> dict[str, Any]:
    """The CRD object."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{PLURAL}.{GROUP}"},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": KIND,
                "listKind": f"{KIND}List",
                "plural": PLURAL,
                "singular": SINGULAR,
                "shortNames": SHORT_NAMES,
                "categories": ["kubetrain"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {"openAPIV3Schema": openapi_schema()},
                }
            ],
        },
    }


class _Dumper(yaml.SafeDumper):
    """Block-style YAML with multi-line strings kept readable."""


# Plain scalars that a YAML 1.1 reader (the API server's) would take for booleans.
_YAML11_BOOLS = {"y", "n", "yes", "no", "on", "off", "true", "false"}


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    if value.lower() in _YAML11_BOOLS:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="'")
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def render_crd_yaml() -> str:
    """The CRD as the YAML text checked into the repository."""
    header = "# Generated by `kubetrain crd` (make crds) from kubetrain/api. Do not edit.\n"
    return header + yaml.dump(build_crd(), Dumper=_Dumper, sort_keys=False, width=100)


def write_crds(root: Path, outputs: tuple[str, ...] = CRD_OUTPUTS) -> list[Path]:
    """Write the CRD into every output directory under `root`."""
    text = render_crd_yaml()
    written = []
    for out in outputs:
        path = root / out / CRD_FILENAME
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
