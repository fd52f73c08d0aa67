"""Setting and reading a job's conditions the Kubernetes way (pure)."""

from __future__ import annotations

from datetime import datetime

from kubetrain.api.status import Condition, ConditionStatus, TrainingJobStatus
from kubetrain_operator.observe import format_time


def set_condition(
    conditions: list[Condition],
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    now: datetime,
) -> list[Condition]:
    """Conditions with `type_` set; lastTransitionTime changes only when the status does."""
    out, found = [], False
    for c in conditions:
        if c.type != type_:
            out.append(c)
            continue
        found = True
        since = c.last_transition_time if c.status == status else format_time(now)
        out.append(Condition(type=type_, status=status, reason=reason, message=message,
                             last_transition_time=since))  # fmt: skip
    if not found:
        out.append(Condition(type=type_, status=status, reason=reason, message=message,
                             last_transition_time=format_time(now)))  # fmt: skip
    return out


def find_condition(status: TrainingJobStatus, type_: str) -> Condition | None:
    return next((c for c in status.conditions if c.type == type_), None)
