"""Shared base for every spec model: camelCase keys, unknown keys rejected, CEL rules alongside."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError


class KubeModel(BaseModel):
    """A spec object: YAML keys are camelCase and unknown keys are an error."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_attribute_docstrings=True,
    )

    def to_yaml_dict(self) -> dict[str, Any]:
        """The object as it is written in YAML (camelCase, no nulls)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


@dataclass(frozen=True)
class Rule:
    """A cross-field rule, written once for both sides.

    `cel` is what the API server checks (an `x-kubernetes-validations` entry);
    the model's validator checks the same condition in Python for the local path.
    `field` is the camelCase path, relative to the model, that the error names.
    """

    cel: str
    message: str
    field: str = ""

    def schema(self) -> dict[str, str]:
        entry = {"rule": self.cel, "message": self.message}
        if self.field:
            entry["fieldPath"] = "." + self.field
        return entry


def cel_rules(*rules: Rule) -> dict[str, Any]:
    """`json_schema_extra` carrying the rules into the CRD."""
    return {"x-kubernetes-validations": [r.schema() for r in rules]}


_rules_deferred: ContextVar[bool] = ContextVar("kubetrain_rules_deferred", default=False)


@contextmanager
def rules_deferred() -> Iterator[None]:
    """Build models without checking cross-field rules (the loader checks them afterwards on the
    built tree, so that a rule broken in one section does not hide the rules of its parents)."""
    token = _rules_deferred.set(True)
    try:
        yield
    finally:
        _rules_deferred.reset(token)


def enforce(checks: Iterable[tuple[Rule, bool]]) -> None:
    """Raise one error listing every rule whose check is False."""
    broken = [rule for rule, ok in checks if not ok]
    if broken and not _rules_deferred.get():
        raise PydanticCustomError(
            "rule",
            "{summary}",
            {
                "summary": "; ".join(r.message for r in broken),
                "violations": [(r.field, r.message) for r in broken],
                "cel": [r.cel for r in broken],
            },
        )


@dataclass(frozen=True)
class TaggedUnion:
    """A Kubernetes-style union: `tag` names the one member block that may be set.

    Members in `required` must be present when selected; the others have defaults.
    """

    tag: str
    members: tuple[str, ...]
    required: tuple[str, ...] = ()

    # has() guards the tag: it may be optional (model.type beside model.import), and CEL reports
    # reading an absent field as an evaluation error instead of a verdict.
    def _only_when_selected(self, m: str) -> Rule:
        return Rule(
            f"!has(self.{m}) || (has(self.{self.tag}) && self.{self.tag} == '{m}')",
            f"{m} is set but {self.tag} is not {m}",
            m,
        )

    def _present_when_selected(self, m: str) -> Rule:
        return Rule(
            f"!has(self.{self.tag}) || self.{self.tag} != '{m}' || has(self.{m})",
            f"{self.tag} {m} needs a {m} block",
            m,
        )

    @property
    def rules(self) -> list[Rule]:
        return [self._only_when_selected(m) for m in self.members] + [
            self._present_when_selected(m) for m in self.required
        ]

    def checks(self, model: BaseModel) -> list[tuple[Rule, bool]]:
        """The same conditions as the CEL rules, evaluated in Python."""
        selected = getattr(model, self.tag)
        present = {m: getattr(model, m) is not None for m in self.members}
        return [
            (self._only_when_selected(m), not present[m] or selected == m) for m in self.members
        ] + [(self._present_when_selected(m), selected != m or present[m]) for m in self.required]
