"""The invalid-spec corpus (tests/cases/invalid_specs.yaml), built into concrete documents.

Shared by the pydantic tests and the API-server tests, so both sides see the same cases.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
CORPUS = ROOT / "tests" / "cases" / "invalid_specs.yaml"


@dataclass(frozen=True)
class InvalidCase:
    name: str
    document: dict[str, Any]
    expect: list[tuple[str, str]]
    server_rejects: bool
    server_note: str


def _walk(doc: dict[str, Any], dotted: str) -> tuple[dict[str, Any], str]:
    *parents, leaf = dotted.split(".")
    node = doc
    for key in parents:
        node = node.setdefault(key, {})
    return node, leaf


def build_document(case: dict[str, Any]) -> dict[str, Any]:
    """The base example with the case's edits applied."""
    doc = copy.deepcopy(yaml.safe_load((EXAMPLES / case["base"]).read_text()))
    for old, new in case.get("rename", {}).items():
        node, leaf = _walk(doc, old)
        value = node.pop(leaf)
        node, leaf = _walk(doc, new)
        node[leaf] = value
    for dotted in case.get("unset", []):
        node, leaf = _walk(doc, dotted)
        node.pop(leaf, None)
    for dotted, value in case.get("set", {}).items():
        node, leaf = _walk(doc, dotted)
        node[leaf] = value
    return doc


def invalid_cases() -> list[InvalidCase]:
    raw = yaml.safe_load(CORPUS.read_text())
    return [
        InvalidCase(
            name=c["name"],
            document=build_document(c),
            expect=[(path, msg) for path, msg in c["expect"]],
            server_rejects=c["server"] == "reject",
            server_note=c["server"],
        )
        for c in raw
    ]


def example_files() -> list[Path]:
    return sorted(EXAMPLES.glob("*.yaml"))
