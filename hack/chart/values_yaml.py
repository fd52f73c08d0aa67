"""values.yaml from the pydantic model: the defaults, each key preceded by its docstring."""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel


def _comment(text: str | None, indent: str) -> list[str]:
    if not text:
        return []
    return [f"{indent}# {line.strip()}".rstrip() for line in text.strip().splitlines()]


def _leaf(key: str, value: Any, indent: str) -> list[str]:
    dumped = yaml.safe_dump({key: value}, sort_keys=False, default_flow_style=False)
    return [indent + line for line in dumped.rstrip("\n").splitlines()]


def render_values_yaml(model: type[BaseModel], header: str) -> str:
    """The model's defaults as commented YAML (round-trips to `model().model_dump(by_alias)`)."""
    lines = _comment(header, "")
    lines += _fields(model, model(), "")
    return "\n".join(lines) + "\n"


def _fields(model: type[BaseModel], instance: BaseModel, indent: str) -> list[str]:
    lines: list[str] = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        value = getattr(instance, name)
        if lines and indent == "":
            lines.append("")  # a blank line between top-level sections reads better
        lines += _comment(field.description, indent)
        if isinstance(value, BaseModel):
            lines.append(f"{indent}{key}:")
            lines += _fields(type(value), value, indent + "  ")
        else:
            lines += _leaf(key, value, indent)
    return lines
