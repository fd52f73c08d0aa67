"""The Sink protocol: every output of progress (console, files, TensorBoard, Kubernetes status).

A sink receives the same `kubetrain.api.status.Progress` the operator puts in
`status.progress`. `publish` is called on logging, evaluation and checkpoint events and once at
the end (final=True); `beat` is called from the training loop at least every few seconds,
also between evaluation batches and checkpoint files, so a sink that mirrors
`progress.heartbeat_time` shows a stale heartbeat exactly when the loop is frozen. Sinks rate-limit
themselves (an API-server sink would publish at most every N seconds) and must not raise.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from kubetrain.api.status import Progress


@runtime_checkable
class Sink(Protocol):
    def publish(self, progress: Progress, final: bool) -> None:
        """A new state of training: new loss, eval metrics, checkpoint, or the end."""

    def beat(self, progress: Progress) -> None:
        """A sign of life: progress.step and progress.heartbeat_time are current."""

    def close(self) -> None:
        """Flush and release; called once after the final publish."""
