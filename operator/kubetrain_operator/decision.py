"""What one reconcile reads (`JobState`) and what the state machine decides (`Decision`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from kubetrain.api.spec import TrainingJobSpec
from kubetrain.api.status import TrainingJobStatus


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to record on the job."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class PodRef:
    name: str
    uid: str


@dataclass
class Decision:
    """What the reconcile should do; `status` is the whole status the job should have
    (the patch is its difference from the current one)."""

    status: TrainingJobStatus
    create: list[int] = field(default_factory=list)
    delete: list[PodRef] = field(default_factory=list)
    force_delete: list[PodRef] = field(default_factory=list)
    delete_job: bool = False
    events: list[Event] = field(default_factory=list)
    requeue_after: float | None = None
    restarted: bool = False

    def requeue(self, seconds: float) -> None:
        """Ask to be called again in `seconds` (the earliest request wins)."""
        seconds = max(seconds, 0.5)
        if self.requeue_after is None or seconds < self.requeue_after:
            self.requeue_after = seconds


@dataclass(frozen=True)
class JobState:
    """The inputs: the job's name, generation, parsed spec, current status and UID."""

    name: str
    generation: int
    spec: TrainingJobSpec | None  # None when the object does not even parse
    status: TrainingJobStatus
    # Pods owned by another UID belong to an earlier job of the same name (deleted and
    # re-created): never adopted, only waited for. "" (tests) owns every pod.
    uid: str = ""
