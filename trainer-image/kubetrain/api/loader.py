"""Load TrainingJobs from YAML files, with `--set` overrides, reporting every error at once.

The verdict matches the API server's (schema, CEL rules and strict field validation): values are
read as JSON carries them to it (see yamlsource.py) and checked strictly (no "5" for 5, no true
for 1). Unlike the API server, no error hides another: a wrong kind, a type error or a broken
rule in one section does not stop the checks of the rest.
"""

from __future__ import annotations

import copy
import json
import re
import typing
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticCustomError

from kubetrain.api.base import rules_deferred
from kubetrain.api.errors import Issue, SpecError, format_path, issues_from, models_in, suggest
from kubetrain.api.job import API_VERSION, KIND, TrainingJob
from kubetrain.api.objectmeta import metadata_problems
from kubetrain.api.status import TrainingJobStatus
from kubetrain.api.yamlsource import (
    MAX_BYTES,
    Document,
    OverrideError,
    YAMLProblems,
    apply_override,
    decode_text,
    parse_documents,
    size_message,
)

Loc = tuple[str | int, ...]


def _validate(data: Any) -> TrainingJob:
    """Strict validation of JSON data, as the API server sees it."""
    return TrainingJob.model_validate_json(json.dumps(data, allow_nan=False), strict=True)


def _nullable(annotation: Any) -> bool:
    return annotation is None or type(None) in typing.get_args(annotation)


def _prune_nulls(data: Any, model: type[BaseModel]) -> None:
    """Drop null values of fields that are not nullable, in place, as the API server does for
    a CRD (it then fills in their defaults): `scheduler:` with nothing after it means the
    default scheduler there, so it does here."""
    if not isinstance(data, dict):
        return
    fields = {info.alias or name: info for name, info in model.model_fields.items()}
    for key in list(data):
        info = fields.get(key)
        if info is None:
            continue
        value = data[key]
        if value is None and not _nullable(info.annotation):
            del data[key]
            continue
        inner = models_in(info.annotation)
        if not inner:
            continue
        items = value if isinstance(value, list) else [value]
        for item in items:
            _prune_nulls(item, inner[0])


def _status_issues(doc: Document) -> list[Issue]:
    """A status in a file is dropped by the API server on create (the status subresource owns
    it), after strict decoding has refused unknown fields in it: so only those count here."""
    status = doc.data.get("status")
    if status is None:
        return []
    try:
        TrainingJobStatus.model_validate_json(json.dumps(status), strict=True)
    except ValidationError as e:
        unknown = [err for err in e.errors() if err["type"] == "extra_forbidden"]
        return [
            Issue(format_path(("status", *err["loc"])), "unknown field", doc.source,
                  doc.line_of(("status", *err["loc"])))
            for err in unknown
        ]
    return []


def _kind_issues(doc: Document) -> list[Issue]:
    data = doc.data
    found = []
    for key, expected in (("apiVersion", API_VERSION), ("kind", KIND)):
        got = data.get(key)
        if got == expected:
            continue
        if got is None:
            message = f"required field is missing (expected {expected})"
        else:
            message = f"expected {expected}, got {got!r}"
            hint = suggest(str(got), [expected])
            if hint:
                message += f" (did you mean {hint!r}?)"
        found.append(Issue(key, message, doc.source, doc.line_of((key,))))
    return found


def _root_key(loc: Loc) -> Loc:
    """A location up to its first list index: the field that holds a bad element."""
    for i, key in enumerate(loc):
        if isinstance(key, int):
            return loc[:i]
    return loc


def _without(data: Any, locs: list[Loc]) -> Any:
    """A copy of `data` without the values at `locs`."""
    pruned = copy.deepcopy(data)
    for loc in sorted(locs, key=len, reverse=True):
        node = pruned
        for key in loc[:-1]:
            try:
                node = node[key]
            except (KeyError, IndexError, TypeError):
                node = None
                break
        if isinstance(node, dict):
            node.pop(loc[-1], None) if loc else None
        elif isinstance(node, list) and isinstance(loc[-1], int) and loc[-1] < len(node):
            del node[loc[-1]]
    return pruned


_CEL_PATH = re.compile(r"self((?:\.[A-Za-z_][A-Za-z0-9_]*)+)")


def _cel_fields(cel: str) -> list[Loc]:
    """The fields a CEL rule reads, relative to its object (`__import__` is `import`)."""
    return [
        tuple(re.sub(r"^__(\w+)__$", r"\1", part) for part in match.split(".")[1:])
        for match in _CEL_PATH.findall(cel)
    ]


def _unknown(rule_at: Loc, cel: str, tainted: list[Loc]) -> bool:
    """Whether the rule reads a field whose value was bad (its verdict is then unknown)."""
    for field in _cel_fields(cel):
        full = (*rule_at, *field)
        for bad in tainted:
            n = min(len(full), len(bad))
            if full[:n] == bad[:n]:
                return True
    return False


def _models(obj: Any, loc: Loc = ()) -> Iterator[tuple[Loc, BaseModel]]:
    """Every model in a validated tree, with its location in the document."""
    if isinstance(obj, BaseModel):
        yield loc, obj
        for name, info in type(obj).model_fields.items():
            yield from _models(getattr(obj, name), (*loc, info.alias or name))
    elif isinstance(obj, list | tuple):
        for i, item in enumerate(obj):
            yield from _models(item, (*loc, i))
    elif isinstance(obj, dict):
        for key, item in obj.items():
            yield from _models(item, (*loc, key))


def _broken_rules(job: TrainingJob) -> Iterator[tuple[Loc, Loc, str, str]]:
    """(model location, field location, message, CEL) of every broken cross-field rule in a tree
    built with rules deferred."""
    for loc, model in _models(job):
        for decorator in type(model).__pydantic_decorators__.model_validators.values():
            if decorator.info.mode != "after":
                continue
            try:
                decorator.func(model)
            except PydanticCustomError as e:
                if e.type != "rule":
                    continue
                context = e.context or {}
                for (field, message), cel in zip(
                    context["violations"], context["cel"], strict=True
                ):
                    yield loc, (*loc, *(field.split(".") if field else ())), message, cel
            except (ValueError, TypeError):  # other validators: reported by the first pass
                continue


def _rule_issues(doc: Document, bad: list[dict[str, Any]]) -> list[Issue]:
    """Cross-field rules the first pass could not reach, because a model below them or in them
    had an error: checked again with the bad values left out, unless a rule reads one of them."""
    tainted = [
        _root_key(tuple(err["loc"]))
        for err in bad
        if err["type"] not in ("rule", "missing") and err["loc"]
    ]
    pruned = _without(doc.data, tainted)
    found: list[Issue] = []
    try:
        with rules_deferred():
            job = _validate(pruned)
    except ValidationError:
        job = None
    if job is not None:
        for model_at, loc, message, cel in _broken_rules(job):
            if _unknown(model_at, cel, tainted):
                continue
            found.append(Issue(format_path(loc), message, doc.source, doc.line_of(loc)))
        return found
    try:
        _validate(pruned)
    except ValidationError as e:
        pruned_doc = Document(pruned, doc.source, doc.lines)
        rule_errors = [err for err in e.errors() if err["type"] == "rule"]
        for err in rule_errors:
            at = tuple(err["loc"])
            for (field, message), cel in zip(
                err["ctx"]["violations"], err["ctx"]["cel"], strict=True
            ):
                if _unknown(at, cel, tainted):
                    continue
                loc = (*at, *(field.split(".") if field else ()))
                found.append(Issue(format_path(loc), message, doc.source, pruned_doc.line_of(loc)))
    return found


def _check(doc: Document) -> tuple[TrainingJob | None, list[Issue]]:
    try:
        return _validate(doc.data), []
    except ValidationError as e:
        errors = e.errors()
        first = issues_from(e, TrainingJob, doc)
    return None, first + _rule_issues(doc, errors)


def validate_document(doc: Document, overrides: Iterable[str] = ()) -> TrainingJob:
    """One document → a TrainingJob, or SpecError with every issue."""
    issues = [Issue(format_path(p.path), p.message, doc.source, p.line) for p in doc.problems]
    if not isinstance(doc.data, dict):
        issues.append(Issue("", "expected a TrainingJob mapping", doc.source, doc.line_of(())))
        raise SpecError(issues)
    for assignment in overrides:
        try:
            apply_override(doc.data, assignment)
        except OverrideError as e:
            issues.append(Issue("", str(e), "--set"))
    issues += _kind_issues(doc)
    issues += [
        Issue(format_path(path), message, doc.source, doc.line_of(path))
        for path, message in metadata_problems(doc.data.get("metadata"))
    ]
    issues += _status_issues(doc)
    # Check the rest as a TrainingJob even when kind or apiVersion is wrong.
    data = {k: v for k, v in doc.data.items() if k != "status"}
    data.update(apiVersion=API_VERSION, kind=KIND)
    _prune_nulls(data, TrainingJob)
    checked = Document(data, doc.source, doc.lines)
    job, found = _check(checked)
    issues += _merge(found, {i.path for i in issues})
    if issues:
        raise SpecError(_ordered(_from_overrides(issues, doc, overrides)))
    assert job is not None
    return job


def _from_overrides(issues: list[Issue], doc: Document, overrides: Iterable[str]) -> list[Issue]:
    """Issues about a value a `--set` gave, or a mapping it made: named as from --set."""
    set_paths = [a.partition("=")[0] for a in overrides]
    if not set_paths:
        return issues
    in_file = {format_path(p) for p in doc.lines}

    def made_by_set(path: str) -> bool:
        return any(path == p or path.startswith((p + ".", p + "[")) for p in set_paths) or (
            path not in in_file and any(p.startswith(path + ".") for p in set_paths)
        )

    return [Issue(i.path, i.message, "--set") if made_by_set(i.path) else i for i in issues]


def _merge(found: list[Issue], reported_paths: set[str]) -> list[Issue]:
    """Issues not already reported (a YAML problem at a path says it all for that path)."""
    seen: set[tuple[str, str]] = set()
    out = []
    for issue in found:
        if issue.path in reported_paths or (issue.path, issue.message) in seen:
            continue
        seen.add((issue.path, issue.message))
        out.append(issue)
    return out


def _ordered(issues: list[Issue]) -> list[Issue]:
    return sorted(issues, key=lambda i: (i.source != "--set", i.line or 0, i.path))


def _yaml_issues(e: YAMLProblems, source: str) -> SpecError:
    return SpecError([Issue(format_path(p.path), p.message, source, p.line) for p in e.problems])


def load_text(
    text: str, source: str = "<string>", overrides: Iterable[str] = ()
) -> list[TrainingJob]:
    """Every TrainingJob in a (multi-document) YAML text."""
    try:
        docs = parse_documents(text, source)
    except YAMLProblems as e:
        raise _yaml_issues(e, source) from None
    if not docs:
        raise SpecError([Issue("", "no YAML document found", source)])
    jobs, issues = [], []
    overrides = list(overrides)
    for doc in docs:
        try:
            jobs.append(validate_document(doc, overrides))
        except SpecError as e:
            issues += e.issues
    if issues:
        raise SpecError(issues)
    return jobs


def read_spec_text(path: str | Path) -> str:
    """The text of a spec file, within the size limit, as UTF-8; SpecError otherwise."""
    p = Path(path)
    try:
        with p.open("rb") as f:
            raw = f.read(MAX_BYTES + 1)  # never more: a 50 MB file costs one read of 1 MiB
            if len(raw) > MAX_BYTES:
                size = f.seek(0, 2) if f.seekable() else 0
                message = size_message(size if size > MAX_BYTES else None)  # None: a device
                raise SpecError([Issue("", message, str(p))])
    except IsADirectoryError:
        raise SpecError([Issue("", "is a directory, not a YAML file", str(p))]) from None
    except OSError as e:
        raise SpecError([Issue("", f"cannot read file: {e.strerror}", str(p))]) from None
    try:
        return decode_text(raw)
    except YAMLProblems as e:
        raise _yaml_issues(e, str(p)) from None


def load_file(path: str | Path, overrides: Iterable[str] = ()) -> list[TrainingJob]:
    """Every TrainingJob in a YAML file."""
    return load_text(read_spec_text(path), str(path), overrides)


def load_job(path: str | Path, overrides: Iterable[str] = ()) -> TrainingJob:
    """Exactly one TrainingJob from a file (what `kubetrain run` takes)."""
    jobs = load_file(path, overrides)
    if len(jobs) != 1:
        raise SpecError([Issue("", f"expected one TrainingJob, found {len(jobs)}", str(path))])
    return jobs[0]
