"""YAML documents read the way the Kubernetes API server reads them, with the line of every key.

The reader works on PyYAML's event stream (no recursion, no composed node graph), so hostile
input fails fast with one problem instead of a hang, a memory blow-up or a RecursionError:

- at most MAX_BYTES of text (a real TrainingJob is a few KB; the API server takes 3 MiB per
  request and etcd 1.5 MiB per object);
- at most MAX_DEPTH levels of nesting;
- at most MAX_NODES nodes once aliases are expanded (a few hundred bytes of nested aliases,
  the "billion laughs", would otherwise expand to 10^9 nodes), plus go-yaml's own rule against
  documents made mostly of alias expansions, which the API server applies;
- an alias inside its own anchor, or to an anchor not defined yet, is an error.

Scalars resolve as go-yaml v2 does (see goyaml.py) and every value is what JSON carries to the
API server. Duplicate keys, which the API server's strict decoding rejects, are problems named by
path and line; they and other per-value problems do not stop the reading of the document.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

from kubetrain.api.goyaml import NotJSON, key_string, resolve_plain, resolve_tagged, to_json_value

Path = tuple[str | int, ...]

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 100
MAX_NODES = 20_000

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser when installed
_MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True)
class Problem:
    """Something wrong at the YAML level: where (path and line) and what."""

    path: Path
    message: str
    line: int | None = None


class YAMLProblems(ValueError):
    """Text that cannot be read as YAML at all (syntax, limits): no document is usable."""

    def __init__(self, problems: list[Problem]):
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems


@dataclass
class Document:
    """One YAML document: its data, where each path starts in the file, and its problems."""

    data: Any
    source: str
    lines: dict[Path, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def line_of(self, path: Path) -> int | None:
        """The line of `path`, or of its nearest ancestor that exists in the file."""
        for end in range(len(path), -1, -1):
            if (line := self.lines.get(path[:end])) is not None:
                return line
        return None


def decode_text(raw: bytes) -> str:
    """UTF-8 (with or without a byte-order mark) text; YAMLProblems naming the first bad byte."""
    if len(raw) > MAX_BYTES:
        raise YAMLProblems([Problem((), size_message(len(raw)))])
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        bad = raw[e.start : e.start + 1].hex()
        raise YAMLProblems(
            [Problem((), f"not UTF-8 text: byte 0x{bad} at offset {e.start}", line)]
        ) from None


def size_message(size: int | None) -> str:
    """The file-size problem; `size` is None where it cannot be known (a device)."""
    got = f"{size:,} bytes, " if size is not None else ""
    return f"file too large: {got}the limit is {MAX_BYTES:,} bytes (a TrainingJob is a few KB)"


@dataclass
class _Anchor:
    value: Any  # as JSON carries it (_DROPPED for a value it cannot)
    raw: Any  # a scalar as resolved, for use as a mapping key
    lines: dict[Path, int]  # relative to the anchored node; () is the node itself
    nodes: int
    ops: int  # go-yaml decode operations, for its aliasing rule
    is_mapping: bool


@dataclass
class _Frame:
    """An open mapping or sequence."""

    value: dict[str, Any] | list[Any]
    path: Path  # where its children go (a merge value's children go to the mapping's path)
    line: int
    anchor: str | None
    collect: bool  # keep relative lines (under an anchor, for later aliases of it)
    lines: dict[Path, int] = field(default_factory=dict)
    nodes: int = 1
    ops: int = 1
    key: Any = None  # a mapping's pending key; _NO_KEY when none
    key_line: int = 0
    merge: bool = False  # the pending key is `<<`
    merge_into: _Frame | None = None  # a merge value: the mapping it merges into
    merge_items: list[dict[str, Any]] | None = None  # a merge sequence's mappings
    keys: set[tuple[str, str]] = field(default_factory=set)  # (type, key) set so far
    key_type: str = "str"  # the pending key's type before it became a string


_NO_KEY = object()
_DROPPED = object()  # a value JSON cannot carry: reported, then left out of the data
_MERGE_VALUE = "map merge requires a mapping or a list of mappings as the value"


def _allowed_alias_ratio(decodes: int) -> float:
    """go-yaml v2's allowedAliasRatio: aliases may be 99% of a small document, 10% of a huge one."""
    low, high = 400_000, 4_000_000
    if decodes <= low:
        return 0.99
    if decodes >= high:
        return 0.10
    return 0.99 - 0.89 * (decodes - low) / (high - low)


class _Stop(Exception):
    def __init__(self, message: str, line: int | None, path: Path = ()):
        super().__init__(message)
        self.problem = Problem(path, message, line)


class _Builder:
    """Builds JSON-like data from parser events, one document at a time, without recursion."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.docs: list[Document] = []
        self._start_document()

    def _start_document(self) -> None:
        self.stack: list[_Frame] = []
        self.anchors: dict[str, _Anchor] = {}
        self.open_anchors: set[str] = set()
        self.lines: dict[Path, int] = {}
        self.problems: list[Problem] = []
        self.root: Any = None
        self.nodes = 0
        self.decodes = 1  # go-yaml counts the document node
        self.alias_decodes = 0

    def feed(self, event: yaml.Event) -> None:
        line = event.start_mark.line + 1 if event.start_mark else 0
        if isinstance(event, yaml.DocumentStartEvent):
            self._start_document()
        elif isinstance(event, yaml.DocumentEndEvent):
            if self.root is not None:
                self.docs.append(Document(self.root, self.source, self.lines, self.problems))
        elif isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
            self._open(isinstance(event, yaml.MappingStartEvent), event.anchor, line)
        elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
            self._close()
        elif isinstance(event, yaml.ScalarEvent):
            self._scalar(event, line)
        elif isinstance(event, yaml.AliasEvent):
            self._alias(event.anchor, line)

    # -- where values go ---------------------------------------------------------------------

    def _top(self) -> _Frame | None:
        return self.stack[-1] if self.stack else None

    def _wants_key(self) -> bool:
        top = self._top()
        return top is not None and isinstance(top.value, dict) and top.key is _NO_KEY

    def _in_merge(self) -> bool:
        top = self._top()
        return top is not None and (top.merge or top.merge_items is not None)

    def _child_path(self) -> Path:
        """Where the next value goes, relative to the document."""
        top = self._top()
        if top is None:
            return ()
        if isinstance(top.value, list):
            return top.path if top.merge_items is not None else (*top.path, len(top.value))
        return top.path if top.merge else (*top.path, top.key)

    def _count(self, nodes: int, line: int) -> None:
        self.nodes += nodes
        if self.nodes > MAX_NODES:
            raise _Stop(
                f"the document expands to more than {MAX_NODES:,} YAML nodes (aliases"
                " included); a TrainingJob has a few hundred",
                line,
                self._child_path()[:4] if not self._wants_key() else self.stack[-1].path[:4],
            )

    # -- events ------------------------------------------------------------------------------

    def _open(self, is_map: bool, anchor: str | None, line: int) -> None:
        top = self._top()
        if self._wants_key():
            raise _Stop("a mapping key must be a scalar", line, top.path if top else ())
        path = self._child_path()
        if len(self.stack) >= MAX_DEPTH:
            raise _Stop(f"nested deeper than {MAX_DEPTH} levels", line, path[:3])
        self._count(1, line)
        self.decodes += 1
        collect = anchor is not None or (top is not None and top.collect)
        frame = _Frame({} if is_map else [], path, line, anchor, collect)
        frame.key = _NO_KEY
        if top is not None and top.merge:
            frame.merge_into = top
            if not is_map:
                frame.merge_items = []
        elif top is not None and top.merge_items is not None and not is_map:
            raise _Stop(_MERGE_VALUE, line, path)
        if anchor:
            self.open_anchors.add(anchor)
        self.stack.append(frame)

    def _close(self) -> None:
        frame = self.stack.pop()
        frame.lines[()] = frame.line
        if frame.merge_into is not None:
            maps = (
                list(reversed(frame.merge_items))  # earlier maps take precedence, as in go-yaml
                if frame.merge_items is not None
                else [frame.value]
            )
            self._merge(frame.merge_into, maps, frame.line)  # type: ignore[arg-type]
            value: Any = _MERGED
        else:
            value = frame.value
        if frame.anchor:
            self.open_anchors.discard(frame.anchor)
            self.anchors[frame.anchor] = _Anchor(
                copy.deepcopy(frame.value) if frame.merge_into is None else _MERGED,
                None,
                dict(frame.lines),
                frame.nodes,
                frame.ops,
                isinstance(frame.value, dict) and frame.merge_into is None,
            )
        self._attach(value, frame.lines, frame.nodes, frame.ops)

    def _scalar(self, event: yaml.ScalarEvent, line: int) -> None:
        self._count(1, line)
        self.decodes += 1
        top = self._top()
        wants_key = self._wants_key()
        if wants_key and event.value == "<<" and (event.implicit[0] or event.tag == _MERGE_TAG):
            assert top is not None
            top.key, top.key_line, top.merge = "<<", line, True
            self.decodes -= 1  # go-yaml does not decode the merge key itself
            return
        try:
            if event.tag is None and event.implicit[0]:
                raw = resolve_plain(event.value)
            elif event.tag is None or event.tag == "!":
                raw = event.value
            elif event.tag.startswith("tag:yaml.org,2002:"):
                raw = resolve_tagged(event.tag, event.value)
            else:  # an application tag (!foo): go-yaml keeps the text
                raw = event.value
        except ValueError as e:
            raise _Stop(str(e), line, self._path_here(wants_key)) from None
        if wants_key:
            if event.anchor:
                self.anchors[event.anchor] = _Anchor(None, raw, {(): line}, 1, 1, False)
            self._set_pending_key(raw, line)
            return
        try:
            value = to_json_value(raw)
        except NotJSON:
            self.problems.append(
                Problem(
                    self._path_here(False),
                    f"{event.value} is not a number JSON can carry (the API server rejects it)",
                    line,
                )
            )
            value = _DROPPED
        if event.anchor:
            self.anchors[event.anchor] = _Anchor(value, raw, {(): line}, 1, 1, False)
        if self._in_merge():
            raise _Stop(_MERGE_VALUE, line, self._path_here(False))
        self._attach(value, {(): line}, 1, 1)

    def _path_here(self, wants_key: bool) -> Path:
        top = self._top()
        return top.path if wants_key and top is not None else self._child_path()

    def _alias(self, name: str, line: int) -> None:
        top = self._top()
        path = top.path if self._wants_key() and top is not None else self._child_path()
        if name in self.open_anchors:
            raise _Stop(f"alias *{name} is inside its own anchor &{name} (a cycle)", line, path)
        anchor = self.anchors.get(name)
        if anchor is None:
            raise _Stop(f"alias *{name} names no anchor defined before it", line, path)
        self._count(anchor.nodes, line)
        self.decodes += 1 + anchor.ops
        self.alias_decodes += anchor.ops
        if (
            self.alias_decodes > 100
            and self.decodes > 1000
            and self.alias_decodes / self.decodes > _allowed_alias_ratio(self.decodes)
        ):
            raise _Stop(
                "excessive aliasing: the document is mostly alias expansions (the API server's"
                " YAML reader refuses it too)",
                line,
                path,
            )
        if self._wants_key():
            if anchor.raw is None and anchor.nodes > 1:
                raise _Stop("a mapping key must be a scalar", line, path)
            self._set_pending_key(anchor.raw, line)
            return
        if self._in_merge() and not anchor.is_mapping:
            raise _Stop(_MERGE_VALUE, line, path)
        for rel, rel_line in anchor.lines.items():
            self.lines.setdefault((*path, *rel), rel_line)
        value = copy.deepcopy(anchor.value)
        if top is not None and top.merge:
            self._merge(top, [value], line)
            value = _MERGED
        self._attach(value, anchor.lines, anchor.nodes, 1 + anchor.ops)

    # -- helpers -----------------------------------------------------------------------------

    def _set_pending_key(self, raw: Any, line: int) -> None:
        top = self._top()
        assert top is not None
        try:
            top.key = key_string(raw)
        except ValueError as e:
            raise _Stop(str(e), line, top.path) from None
        top.key_line = line
        # go-yaml compares keys before they become strings: 1 and "1" are two keys to it
        # (sigs.k8s.io/yaml then keeps one of them, silently).
        top.key_type = type(raw).__name__

    def _merge(self, target: _Frame, maps: list[dict[str, Any]], line: int) -> None:
        for merged in maps:
            for key, value in merged.items():
                self._set_key(target, key, value, line)

    def _set_key(
        self, frame: _Frame, key: str, value: Any, line: int, key_type: str = "str"
    ) -> None:
        mapping = frame.value
        assert isinstance(mapping, dict)
        path = (*frame.path, key)
        if (key_type, key) in frame.keys:
            first = self.lines.get(path)
            where = f" (first at line {first})" if first and first != line else ""
            self.problems.append(
                Problem(path, f"duplicate key{where}; the API server rejects duplicate keys", line)
            )
        frame.keys.add((key_type, key))  # also keys whose value was dropped
        self.lines.setdefault(path, line)
        if value is not _DROPPED:
            mapping[key] = value

    def _attach(self, value: Any, rel_lines: dict[Path, int], nodes: int, ops: int) -> None:
        """Attach a completed value to the open collection (or make it the document's root)."""
        top = self._top()
        if top is None:
            self.root = None if value is _DROPPED else value
            self.lines.setdefault((), rel_lines.get((), 0))
            return
        top.nodes += nodes
        top.ops += ops
        if isinstance(top.value, list):
            step: Path = () if top.merge_items is not None else (len(top.value),)
            if top.collect:
                for rel, rel_line in rel_lines.items():
                    top.lines.setdefault((*step, *rel), rel_line)
            if top.merge_items is not None:
                if value is not _MERGED:
                    top.merge_items.append(value)
                return
            self.lines.setdefault((*top.path, len(top.value)), rel_lines.get((), 0))
            top.value.append(None if value is _DROPPED else value)
            return
        if top.merge:
            if top.collect:
                for rel, rel_line in rel_lines.items():
                    if rel:
                        top.lines.setdefault(rel, rel_line)
            top.key, top.merge = _NO_KEY, False
            return
        key, top.key = top.key, _NO_KEY
        if top.collect:
            top.lines.setdefault((key,), top.key_line)
            for rel, rel_line in rel_lines.items():
                if rel:
                    top.lines.setdefault((key, *rel), rel_line)
        self._set_key(top, key, value, top.key_line, top.key_type)


_MERGED = object()  # a merge value: already merged into its mapping, nothing to attach


def _events(text: str) -> Iterator[yaml.Event]:
    return yaml.parse(text, Loader=_Loader)


def _syntax_problem(error: yaml.YAMLError, text: str) -> Problem:
    mark = getattr(error, "problem_mark", None)
    if mark is not None:
        line: int | None = mark.line + 1
    elif (position := getattr(error, "position", None)) is not None:
        line = text[:position].count("\n") + 1
    else:
        line = None
    problem = getattr(error, "problem", None) or getattr(error, "reason", None) or str(error)
    context = getattr(error, "context", None)
    message = f"invalid YAML: {problem}" + (f" ({context})" if context else "")
    return Problem((), " ".join(message.split()), line)


def parse_documents(text: str, source: str) -> list[Document]:
    """Every non-empty document in `text`; YAMLProblems when the text cannot be read."""
    if len(text) > MAX_BYTES:  # characters: a cheap bound before encoding
        raise YAMLProblems([Problem((), size_message(len(text.encode("utf-8"))))])
    builder = _Builder(source)
    try:
        for event in _events(text):
            builder.feed(event)
    except _Stop as stop:
        raise YAMLProblems([stop.problem]) from None
    except yaml.YAMLError as e:
        raise YAMLProblems([_syntax_problem(e, text)]) from None
    except RecursionError:  # not reachable with MAX_DEPTH; kept so no input ends in a traceback
        raise YAMLProblems([Problem((), f"nested deeper than {MAX_DEPTH} levels")]) from None
    return builder.docs


def parse_value(text: str) -> Any:
    """One scalar or flow value (a `--set` value), resolved as in a file."""
    docs = parse_documents(f"v: {text}", "--set")
    if not docs or not isinstance(docs[0].data, dict):
        return None
    if docs[0].problems:
        raise YAMLProblems(docs[0].problems)
    return docs[0].data.get("v")


class _Dumper(yaml.SafeDumper):
    """Writes strings that go-yaml would read as something else (`y`, `0755`, `1e3`) quoted."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    resolved = resolve_plain(value)
    if not (isinstance(resolved, str) and resolved == value):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="'")
    return dumper.represent_str(value)


_Dumper.add_representer(str, _represent_str)


def dump_yaml(docs: list[Any]) -> str:
    """Documents as YAML text that the API server and this reader read back unchanged."""
    return yaml.dump_all(docs, Dumper=_Dumper, sort_keys=False, allow_unicode=True)


class OverrideError(ValueError):
    """A `--set` argument that cannot be applied."""


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """Apply `a.b.c=value` (value read as YAML, as `helm --set` does for scalars)."""
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
        value = parse_value(raw) if raw else ""
    except YAMLProblems as e:
        raise OverrideError(f"--set {assignment!r}: value is not valid YAML ({e})") from e
    node[parts[-1]] = value
