"""The spec reference (docs/spec-reference.md), generated from the models."""

from __future__ import annotations

import types
import typing
from enum import Enum
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from kubetrain.api.errors import models_in
from kubetrain.api.spec import TrainingJobSpec
from kubetrain.api.status import TrainingJobStatus

REFERENCE_PATH = "docs/spec-reference.md"


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "object"
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return " \\| ".join(f"`{member.value}`" for member in annotation)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin in (types.UnionType, typing.Union):
        return " \\| ".join(_type_name(a) for a in args if a is not type(None))
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin in (list, tuple):
        inner = _type_name(args[0]) if args else "any"
        return (
            f"list of {inner}" if origin is list else f"[{', '.join(_type_name(a) for a in args)}]"
        )
    if origin is dict:
        return f"map of {_type_name(args[1])}"
    return {int: "integer", float: "number", str: "string", bool: "boolean"}.get(annotation, "any")


def _default(field: Any) -> str:
    if field.default_factory is not None:
        value = field.default_factory()
        if isinstance(value, BaseModel):
            return ""
    elif field.default is PydanticUndefined:
        return "**required**"
    else:
        value = field.default
    if value is None or value == [] or value == {}:
        return ""
    return f"`{value}`"


def _section(model: type[BaseModel], path: str, out: list[str], seen: set[str]) -> None:
    if path in seen:
        return
    seen.add(path)
    doc = " ".join((model.__doc__ or "").split())
    out += [
        f"### `{path}`",
        "",
        doc,
        "",
        "| field | type | default | description |",
        "|---|---|---|---|",
    ]
    nested: list[tuple[str, type[BaseModel]]] = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        subs = models_in(field.annotation)
        description = " ".join(
            (field.description or (subs[0].__doc__ if subs else "") or "").split()
        )
        out.append(
            f"| `{key}` | {_type_name(field.annotation)} | {_default(field)} | {description} |"
        )
        nested += [(f"{path}.{key}", m) for m in subs]
    out.append("")
    for sub_path, sub in nested:
        _section(sub, sub_path, out, seen)


def render_reference() -> str:
    out = [
        "# TrainingJob reference (kubetrain.io/v1alpha1)",
        "",
        "Generated from `kubetrain/api` by `make crds`; do not edit. The same models check",
        "`kubetrain validate`/`kubetrain run` locally and `kubectl apply` in a cluster",
        "(`kubectl explain trainingjob.spec.optimizer` shows the same descriptions).",
        "",
        "## spec",
        "",
    ]
    _section(TrainingJobSpec, "spec", out, set())
    out += ["## status", ""]
    _section(TrainingJobStatus, "status", out, set())
    return "\n".join(out).rstrip() + "\n"
