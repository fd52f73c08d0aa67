"""Readable validation errors: field path, line, message and a did-you-mean."""

from __future__ import annotations

import difflib
import types
import typing
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from kubetrain.api.yamlsource import Document
from kubetrain.errors import InvalidJob

# Names users bring from other trainers, mapped to ours (normalized: lowercase, no _ or -).
SYNONYMS = {
    "learningrate": "lr",
    "lrate": "lr",
    "batchsize": "globalBatchSize",
    "trainbatchsize": "globalBatchSize",
    "perdevicebatchsize": "microBatchSize",
    "numepochs": "epochs",
    "numtrainepochs": "epochs",
    "steps": "maxSteps",
    "numsteps": "maxSteps",
    "trainsteps": "maxSteps",
    "gradientclipping": "gradClipNorm",
    "maxgradnorm": "gradClipNorm",
    "clipgradnorm": "gradClipNorm",
    "warmup": "warmupSteps",
    "optim": "optimizer",
    "lrscheduler": "scheduler",
    "schedule": "scheduler",
    "data": "dataset",
    "nproc": "procsPerNode",
    "nprocpernode": "procsPerNode",
    "nnodes": "nodes",
    "gpus": "gpu",
    "numworkers": "numWorkers",
}


@dataclass(frozen=True)
class Issue:
    """One problem with a spec."""

    path: str
    message: str
    source: str = ""
    line: int | None = None

    def __str__(self) -> str:
        where = (
            f"{self.source}:{self.line}: "
            if self.source and self.line
            else (f"{self.source}: " if self.source else "")
        )
        return f"{where}{self.path or '<document>'}: {self.message}"


class SpecError(InvalidJob):
    """Every problem found in one or more specs (a user error: exit code 2)."""

    def __init__(self, issues: list[Issue]):
        super().__init__("\n".join(map(str, issues)))
        self.issues = issues


def _norm(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "")


def suggest(word: str, choices: list[str]) -> str | None:
    """The closest choice to `word`, counting known synonyms from other trainers."""
    by_norm = {_norm(c): c for c in choices}
    by_norm.update({k: v for k, v in SYNONYMS.items() if v in choices})
    key = _norm(word)
    match = difflib.get_close_matches(key, list(by_norm), n=1, cutoff=0.7)
    if not match and len(key) >= 3:  # an abbreviation: bf16 -> bf16-mixed
        match = [n for n in by_norm if n.startswith(key)][:1]
    return by_norm[match[0]] if match else None


def models_in(annotation: Any) -> list[type[BaseModel]]:
    """Pydantic models reachable through Optional/list/dict/tuple/Annotated."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = typing.get_origin(annotation)
    if origin is None and not isinstance(annotation, types.UnionType):
        return []
    return [m for arg in typing.get_args(annotation) for m in models_in(arg)]


def model_at(root: type[BaseModel], loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The model class whose fields live at `loc` (alias keys; list indices skipped)."""
    model: type[BaseModel] | None = root
    for key in loc:
        if model is None:
            return None
        if isinstance(key, int):
            continue
        field = next(
            (f for n, f in model.model_fields.items() if (f.alias or n) == key or n == key), None
        )
        if field is None:
            return None
        found = models_in(field.annotation)
        model = found[0] if found else None
    return model


def _aliases(model: type[BaseModel]) -> list[str]:
    return [f.alias or n for n, f in model.model_fields.items()]


def _present(data: Any, loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """`loc` without pydantic's union-member tags (keys absent from the data)."""
    out: list[str | int] = []
    node = data
    for key in loc:
        if (isinstance(node, dict) and key in node) or (
            isinstance(node, list) and isinstance(key, int) and key < len(node)
        ):
            node = node[key]
        elif isinstance(node, dict | list):
            out.append(key)  # a missing or unknown key: keep it, it names the problem
            node = None
            continue
        else:
            continue
        out.append(key)
    return tuple(out)


def format_path(loc: tuple[str | int, ...]) -> str:
    text = ""
    for key in loc:
        text += f"[{key}]" if isinstance(key, int) else (f".{key}" if text else str(key))
    return text


def _message(err: dict[str, Any], root: type[BaseModel], loc: tuple[str | int, ...]) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        model = model_at(root, loc[:-1])
        hint = suggest(str(loc[-1]), _aliases(model)) if model else None
        return "unknown field" + (f" (did you mean {hint!r}?)" if hint else "")
    if kind == "missing":
        return "required field is missing"
    message = err["msg"]
    if kind == "literal_error":
        choices = [c.strip(" '") for c in err["ctx"]["expected"].replace(" or ", ",").split(",")]
        hint = suggest(str(err.get("input")), choices)
        if hint:
            message += f" (did you mean {hint!r}?)"
    elif kind.startswith(("greater", "less", "int_", "float_", "bool_", "string_")):
        value = err.get("input")
        if not isinstance(value, dict | list):
            message += f" (got {value!r})"
    return message


def issues_from(error: ValidationError, root: type[BaseModel], doc: Document) -> list[Issue]:
    """Turn a pydantic error into issues, one per field, in file order."""
    merged: dict[tuple[str | int, ...], list[str]] = {}
    for err in error.errors():
        loc = _present(doc.data, tuple(err["loc"]))
        if err["type"] == "rule":
            for field, message in err["ctx"]["violations"]:
                sub = tuple(field.split(".")) if field else ()
                merged.setdefault((*loc, *sub), []).append(message)
            continue
        message = _message(err, root, loc)
        bucket = merged.setdefault(loc, [])
        if message not in bucket:
            bucket.append(message)
    issues = [
        Issue(
            format_path(loc),
            " or ".join(msgs) if len(msgs) > 1 else msgs[0],
            doc.source,
            doc.line_of(loc),
        )
        for loc, msgs in merged.items()
    ]
    return sorted(issues, key=lambda i: (i.line or 0, i.path))
