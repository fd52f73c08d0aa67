"""Load TrainingJobs from YAML files, with `--set` overrides, reporting every error at once."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import yaml
from pydantic import ValidationError

from kubetrain.api.errors import Issue, SpecError, issues_from
from kubetrain.api.job import API_VERSION, KIND, TrainingJob
from kubetrain.api.yamlsource import Document, OverrideError, apply_override, parse_documents


def validate_document(doc: Document, overrides: Iterable[str] = ()) -> TrainingJob:
    """One document → a TrainingJob, or SpecError with every issue."""
    if not isinstance(doc.data, dict):
        raise SpecError([Issue("", "expected a TrainingJob mapping", doc.source, doc.line_of(()))])
    kind, version = doc.data.get("kind"), doc.data.get("apiVersion")
    if kind != KIND or version != API_VERSION:
        raise SpecError(
            [
                Issue(
                    "kind",
                    f"expected apiVersion {API_VERSION} and kind {KIND}, got {version} {kind}",
                    doc.source,
                    doc.line_of(("kind",)),
                )
            ]
        )
    for assignment in overrides:
        try:
            apply_override(doc.data, assignment)
        except OverrideError as e:
            raise SpecError([Issue("", str(e), "--set")]) from e
    try:
        return TrainingJob.model_validate(doc.data)
    except ValidationError as e:
        raise SpecError(issues_from(e, TrainingJob, doc)) from None


def load_text(
    text: str, source: str = "<string>", overrides: Iterable[str] = ()
) -> list[TrainingJob]:
    """Every TrainingJob in a (multi-document) YAML text."""
    try:
        docs = parse_documents(text, source)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark else None
        raise SpecError(
            [Issue("", f"invalid YAML: {getattr(e, 'problem', e)}", source, line)]
        ) from None
    if not docs:
        raise SpecError([Issue("", "no YAML document found", source)])
    jobs, issues = [], []
    for doc in docs:
        try:
            jobs.append(validate_document(doc, overrides))
        except SpecError as e:
            issues += e.issues
    if issues:
        raise SpecError(issues)
    return jobs


def load_file(path: str | Path, overrides: Iterable[str] = ()) -> list[TrainingJob]:
    """Every TrainingJob in a YAML file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise SpecError([Issue("", f"cannot read file: {e.strerror}", str(p))]) from None
    return load_text(text, str(p), overrides)


def load_job(path: str | Path, overrides: Iterable[str] = ()) -> TrainingJob:
    """Exactly one TrainingJob from a file (what `kubetrain run` takes)."""
    jobs = load_file(path, overrides)
    if len(jobs) != 1:
        raise SpecError([Issue("", f"expected one TrainingJob, found {len(jobs)}", str(path))])
    return jobs[0]
