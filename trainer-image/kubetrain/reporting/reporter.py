"""Builds the Progress from the loop's events and hands it to the sinks (rank 0 only)."""

from __future__ import annotations

import datetime
import sys
import time
from collections.abc import Sequence

from kubetrain.api.status import HISTORY_LIMIT, CheckpointRef, HistoryPoint, Progress
from kubetrain.reporting.sink import Sink

BEAT_SECONDS = 0.5
"""How often the loop's beat reaches the sinks (each may write less often)."""


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Reporter:
    """The loop calls beat() every step (cheap) and log/evaluated/checkpointed on events."""

    def __init__(self, sinks: Sequence[Sink], *, total_steps: int, global_batch: int,
                 train_samples: int):
        self.sinks = list(sinks)
        self.global_batch, self.train_samples = global_batch, max(train_samples, 1)
        self.progress = Progress(total_steps=total_steps)
        self._next_beat = 0.0

    def _set_step(self, step: int) -> None:
        p = self.progress
        p.step = step
        p.epoch = round(step * self.global_batch / self.train_samples, 4)
        if p.total_steps:
            p.percent = round(100.0 * step / p.total_steps, 2)

    def beat(self, step: int, force: bool = False) -> None:
        """Liveness from the loop; reaches the sinks at most every BEAT_SECONDS unless forced."""
        if not self.sinks:
            return
        t = time.monotonic()
        if not force and t < self._next_beat:
            return
        self._next_beat = t + BEAT_SECONDS
        self._set_step(step)
        self.progress.heartbeat_time = now_rfc3339()
        for s in self.sinks:
            _safely(s.beat, self.progress)

    def log(self, step: int, loss: float, metrics: dict[str, float], *,
            samples_per_second: float | None, tokens_per_second: float | None,
            step_time_ms: float | None, warmup_seconds: float | None) -> None:
        p = self.progress
        self._set_step(step)
        p.loss = loss
        p.metrics.update(metrics)
        p.samples_per_second = samples_per_second
        p.tokens_per_second = tokens_per_second
        p.step_time_ms = step_time_ms
        p.warmup_seconds = warmup_seconds
        if p.total_steps and step_time_ms:
            p.eta_seconds = int((p.total_steps - step) * step_time_ms / 1000)
        self._point(step, loss=loss)
        self._publish()

    def evaluated(self, step: int, val_loss: float, metrics: dict[str, float]) -> None:
        self._set_step(step)
        self.progress.val_loss = val_loss
        self.progress.metrics.update(metrics)
        self._point(step, val_loss=val_loss)
        self._publish()

    def checkpointed(self, ref: CheckpointRef) -> None:
        self.progress.last_checkpoint = ref
        self._publish()

    def finish(self, step: int) -> None:
        self._set_step(step)
        self.progress.eta_seconds = 0
        self._publish(final=True)
        for s in self.sinks:
            _safely(s.close)

    def _point(self, step: int, **values: float) -> None:
        h = self.progress.history
        if h and h[-1].step == step:
            for k, v in values.items():
                setattr(h[-1], k, v)
        else:
            h.append(HistoryPoint(step=step, **values))
        if len(h) > HISTORY_LIMIT:
            # Thin evenly: keep every other point, always the newest.
            self.progress.history = [*h[:-1][::2], h[-1]]

    def _publish(self, final: bool = False) -> None:
        self.progress.heartbeat_time = now_rfc3339()
        for s in self.sinks:
            _safely(s.publish, self.progress, final)


def _safely(fn: object, *args: object) -> None:
    """A failing sink must not stop training; it says so once per failure on stderr."""
    try:
        fn(*args)  # type: ignore[operator]
    except Exception as e:
        print(f"kubetrain: reporting sink failed: {e!r}", file=sys.stderr)
