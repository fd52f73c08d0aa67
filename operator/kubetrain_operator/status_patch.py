"""The status patch: the difference of two dumped `TrainingJobStatus` models (pure).

It is sent as a JSON merge patch (RFC 7386): a key with a value replaces, a key with null
removes, a nested object merges. So a field the desired status no longer has is sent as
null, and an object is sent whole with null for its keys that went away. Lists (conditions)
are always sent whole, as merge patches replace them.
"""

from __future__ import annotations

from typing import Any

from kubetrain.api.status import TrainingJobStatus

Obj = dict[str, Any]
# status.progress is the trainer's: the operator never writes it (its admission policy lets
# the trainer write nothing else).
TRAINER_OWNED = frozenset({"progress"})


def dump(status: TrainingJobStatus) -> Obj:
    """The operator-owned part of a status as the API server stores it (no nulls)."""
    return status.model_dump(mode="json", by_alias=True, exclude_none=True, exclude=TRAINER_OWNED)


def status_patch(current: TrainingJobStatus, desired: TrainingJobStatus) -> Obj:
    """The merge patch that turns `current` into `desired`; {} when nothing changed."""
    return merge_patch(dump(current), dump(desired))


def merge_patch(current: Obj, desired: Obj) -> Obj:
    """Top-level keys whose value differs, each replaced whole; vanished keys as null."""
    patch: Obj = {k: _whole(current.get(k), v) for k, v in desired.items() if current.get(k) != v}
    patch.update((k, None) for k in current if k not in desired)
    return patch


def _whole(old: Any, new: Any) -> Any:
    """`new`, with null for every key of `old` it lacks, so that merging it yields `new`."""
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return new
    out: Obj = {k: _whole(old.get(k), v) for k, v in new.items()}
    out.update((k, None) for k in old if k not in new)
    return out
