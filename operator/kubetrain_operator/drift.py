"""Drift of a job's children (pure): what differs between a rendered child and the one observed.

The operator owns only the fields it renders: a key the API server defaults (a Service's
`sessionAffinity`) or another manager adds (an extra label) is not drift. A rendered list must
match element by element and in length: Role rules and RoleBinding subjects are atomic lists
that one apply replaces whole.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]
MISSING = "<missing>"


def differences(desired: Any, observed: Any, path: str = "") -> list[str]:
    """Dotted paths where `observed` differs from `desired` on the fields `desired` sets."""
    if isinstance(desired, dict):
        if not isinstance(observed, dict):
            return [path or "."]
        out: list[str] = []
        for key, value in desired.items():
            sub = f"{path}.{key}" if path else key
            if key not in observed:
                out.append(sub)
            else:
                out += differences(value, observed[key], sub)
        return out
    if isinstance(desired, list):
        if not isinstance(observed, list) or len(observed) != len(desired):
            return [path]
        return [
            p
            for i, item in enumerate(desired)
            for p in differences(item, observed[i], f"{path}[{i}]")
        ]
    return [] if desired == observed else [path]


def fingerprint(desired: Obj) -> str:
    """Identifies one rendering of a child (a spec change gives another)."""
    return hashlib.sha256(json.dumps(desired, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Written:
    """What the operator last applied to a child, and the resourceVersion the server answered."""

    resource_version: str
    fingerprint: str


def repair(desired: Obj, observed: Obj | None, written: Written | None) -> list[str]:
    """The reasons to apply `desired` again; empty when nothing needs writing.

    A child whose differences survived our own apply of this very rendering (its
    resourceVersion is still the one our apply returned) is left alone: what differs there
    belongs to another field manager (an element it added to a merged list), and applying
    again would write nothing but still cost a request on every reconcile.
    """
    if observed is None:
        return [MISSING]
    paths = differences(desired, observed)
    if not paths:
        return []
    version = (observed.get("metadata") or {}).get("resourceVersion")
    if written is not None and written == Written(str(version), fingerprint(desired)):
        return []
    return paths
