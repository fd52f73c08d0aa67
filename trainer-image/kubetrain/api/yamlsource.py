"""YAML documents with the line of every key, and Helm-style `--set` overrides."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

Path = tuple[str | int, ...]


@dataclass
class Document:
    """One YAML document: its data and where each path starts in the file."""

    data: Any
    source: str
    lines: dict[Path, int] = field(default_factory=dict)

    def line_of(self, path: Path) -> int | None:
        """The line of `path`, or of its nearest ancestor that exists in the file."""
        for end in range(len(path), -1, -1):
            if (line := self.lines.get(path[:end])) is not None:
                return line
        return None


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that keeps mapping keys' line numbers."""


def _build(node: yaml.Node, loader: _LineLoader, path: Path, lines: dict[Path, int]) -> Any:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            lines[(*path, key)] = key_node.start_mark.line + 1
            out[key] = _build(value_node, loader, (*path, key), lines)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(n, loader, (*path, i), lines) for i, n in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def parse_documents(text: str, source: str) -> list[Document]:
    """Every non-empty document in `text`; raises yaml.YAMLError on bad YAML."""
    loader = _LineLoader(text)
    docs = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            lines: dict[Path, int] = {}
            data = _build(node, loader, (), lines)
            if data is not None:
                docs.append(Document(data, source, lines))
    finally:
        loader.dispose()
    return docs


class OverrideError(ValueError):
    """A `--set` argument that cannot be applied."""


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """Apply `a.b.c=value` (value parsed as YAML, as `helm --set` does for scalars)."""
    key, sep, raw = assignment.partition("=")
    if not sep or not key:
        raise OverrideError(
            f"--set {assignment!r}: expected path=value, e.g. spec.training.maxSteps=50"
        )
    parts = key.split(".")
    node: Any = data
    for i, part in enumerate(parts[:-1]):
        child = node.get(part) if isinstance(node, dict) else None
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            where = ".".join(parts[: i + 1])
            raise OverrideError(f"--set {assignment!r}: {where} is not a mapping")
        node = child
    try:
        value = yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError as e:
        raise OverrideError(f"--set {assignment!r}: value is not valid YAML ({e})") from e
    node[parts[-1]] = value
