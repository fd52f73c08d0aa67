"""`TrainingJob.status`: phase, conditions and typed training progress."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, field_serializer

from kubetrain.api.base import KubeModel
from kubetrain.api.conditions import ConditionType, Phase

HISTORY_LIMIT = 100
SIGNIFICANT_DIGITS = 5
ConditionStatus = Literal["True", "False", "Unknown"]


def readable(value: float | None) -> float | None:
    """A measurement rounded to 5 significant digits: `kubectl get` shows 0.053790, not
    0.05378969758749008, and float noise carries no information."""
    if value is None or value == 0 or not math.isfinite(value):
        return value
    return float(f"{value:.{SIGNIFICANT_DIGITS}g}")


class Condition(KubeModel):
    """A Kubernetes condition: one aspect of the job, True or False since a time."""

    # A string, not the enum: condition types are open by Kubernetes convention.
    type: str = Field(
        max_length=64, description=f"One of {', '.join(ConditionType)} (what the operator sets)."
    )
    status: ConditionStatus
    reason: str = Field("", max_length=128)
    message: str = Field("", max_length=4096)
    last_transition_time: str | None = None
    """RFC 3339 time of the last change of status."""


class HistoryPoint(KubeModel):
    """One point of the loss curve."""

    step: int
    loss: float | None = None
    val_loss: float | None = None

    @field_serializer("loss", "val_loss")
    def _readable(self, value: float | None) -> float | None:
        return readable(value)


class CheckpointRef(KubeModel):
    """The newest complete checkpoint: what a preemption costs is the work since `time`."""

    step: int
    path: str
    time: str | None = None
    """RFC 3339 time the checkpoint was saved (`kubectl get tj -o wide` shows its age)."""


class Progress(KubeModel):
    """What the trainer (rank 0) reports while it trains."""

    step: int = 0
    total_steps: int | None = None
    epoch: float | None = None
    """Fractional epoch (step × global batch / training samples)."""
    percent: float | None = None
    eta_seconds: int | None = None
    loss: float | None = None
    val_loss: float | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    """Latest evaluation metrics by name (accuracy, perplexity, r2...)."""
    samples_per_second: float | None = None
    """Steady-state global throughput (warm-up excluded)."""
    tokens_per_second: float | None = None
    step_time_ms: float | None = None
    warmup_seconds: float | None = None
    """Time of the first steps (and compilation), reported apart from steady state."""
    last_checkpoint: CheckpointRef | None = None
    heartbeat_time: str | None = None
    """RFC 3339 time of the trainer's last sign of life."""
    history: list[HistoryPoint] = Field(default_factory=list, max_length=HISTORY_LIMIT)
    """Loss curve, thinned to at most 100 points."""

    @field_serializer(
        "epoch",
        "percent",
        "loss",
        "val_loss",
        "samples_per_second",
        "tokens_per_second",
        "step_time_ms",
        "warmup_seconds",
    )
    def _readable(self, value: float | None) -> float | None:
        return readable(value)

    @field_serializer("metrics")
    def _readable_metrics(self, value: dict[str, float]) -> dict[str, float | None]:
        return {k: readable(v) for k, v in value.items()}


class Replicas(KubeModel):
    """Worker pods by state."""

    active: int = 0
    succeeded: int = 0
    failed: int = 0


class Plan(KubeModel):
    """The resolved plan: what the spec means once defaults and derivations are applied."""

    world_size: int
    micro_batch_size: int
    grad_accum_steps: int
    global_batch_size: int
    total_steps: int | None = None
    """Unknown until the training split's size is, when the length is given in epochs."""
    strategy: str
    backend: str


class TrainingJobStatus(KubeModel):
    """Observed state, written by the operator (phase, conditions) and the trainer (progress)."""

    phase: Phase | None = None
    """Where the job is in its life."""
    reason: str | None = Field(None, max_length=128)
    """Why the job is in its phase, in one word (Stalled, DeadlineExceeded, InvalidSpec...)."""
    message: str | None = Field(None, max_length=4096)
    conditions: list[Condition] = Field(default_factory=list, max_length=32)
    observed_generation: int | None = None
    start_time: str | None = None
    completion_time: str | None = None
    replicas: Replicas = Field(default_factory=Replicas)
    restarts: int = 0
    """Group restarts so far (the restart generation of the pods), of both kinds."""
    disruptions: int = 0
    """Those of `restarts` that followed a disruption (a worker stopped by SIGTERM with exit 75,
    evicted, preempted, its node lost, its pod deleted) or a resize of an elastic job; they do
    not count toward maxRestarts, the others (failures) do."""
    plan: Plan | None = None
    progress: Progress | None = None
