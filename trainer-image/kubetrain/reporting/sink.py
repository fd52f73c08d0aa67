"""The Sink protocol: every output of progress (console, files, TensorBoard, Kubernetes status).

A sink receives the same `kubetrain.api.status.Progress` the operator puts in
`status.progress`. `publish` is called on logging, evaluation and checkpoint events and once at
the end (final=True); `beat` is called from the training loop at least every few seconds,
also between evaluation batches and checkpoint files, so a sink that mirrors
`progress.heartbeat_time` shows a stale heartbeat exactly when the loop is frozen. Sinks rate-limit
themselves (an API-server sink would publish at most every N seconds) and must not raise.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from kubetrain.api.status import Progress


@runtime_checkable
class Sink(Protocol):
    def publish(self, progress: Progress, final: bool) -> None:
        """A new state of training: new loss, eval metrics, checkpoint, or the end."""

    def beat(self, progress: Progress) -> None:
        """A sign of life: progress.step and progress.heartbeat_time are current."""

    def close(self) -> None:
        """Flush and release; called once after the final publish."""


SinkFactory = Callable[[Path, Any], Sink]
"""(run directory, TrainingJob) → a sink."""

_FACTORIES: list[SinkFactory] = []


def register_sink_factory(factory: SinkFactory) -> None:
    """Add a sink to every run in this process (e.g. the Kubernetes status sink)."""
    _FACTORIES.append(factory)


def extra_sinks(run_dir: Path, job: Any) -> list[Sink]:
    """Registered sinks plus the one named by KUBETRAIN_STATUS_SINK=pkg.module:factory."""
    factories = list(_FACTORIES)
    named = os.environ.get("KUBETRAIN_STATUS_SINK")
    if named:
        module, _, attr = named.partition(":")
        factories.append(getattr(importlib.import_module(module), attr))
    return [f(run_dir, job) for f in factories]
