"""Builds the Progress from the loop's events and hands it to the sinks (rank 0 only)."""

from __future__ import annotations

import datetime
import sys
import time
from collections.abc import Sequence
from typing import Any

from kubetrain.api.status import HISTORY_LIMIT, CheckpointRef, HistoryPoint, Progress
from kubetrain.reporting.sink import Sink
from kubetrain.trainer.run_dir_faults import RunDirFault

BEAT_SECONDS = 0.5
"""How often the loop's beat reaches the sinks (each may write less often)."""


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Reporter:
    """The loop calls beat() every step (cheap) and log/evaluated/checkpointed on events.

    Besides the Progress, sinks that have them get `record(dict)`, one per log or eval event (the
    lines of metrics.jsonl), and `start(step)`, the step this run continues from.
    """

    def __init__(self, sinks: Sequence[Sink], *, total_steps: int, global_batch: int,
                 train_samples: int):
        self.sinks = list(sinks)
        self.global_batch, self.train_samples = global_batch, max(train_samples, 1)
        self.progress = Progress(total_steps=total_steps)
        self._next_beat = 0.0
        self.steady = SteadyRate(global_batch)

    def start(self, step: int) -> None:
        """The run continues from `step` (after a resume; 0 for a fresh start)."""
        self._set_step(step)
        for s in self.sinks:
            if hasattr(s, "start"):
                _safely(s.start, step)

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
        if samples_per_second is not None:
            self.steady.add(step, samples_per_second, tokens_per_second, step_time_ms)
        self._point(step, loss=loss)
        rates = {"samplesPerSecond": samples_per_second, "tokensPerSecond": tokens_per_second,
                 "stepTimeMs": step_time_ms}
        self._record(step, {"loss": loss, **metrics,
                            **{k: v for k, v in rates.items() if v is not None}})
        self._publish()

    def evaluated(self, step: int, val_loss: float, metrics: dict[str, float]) -> None:
        self._set_step(step)
        self.progress.val_loss = val_loss
        self.progress.metrics.update(metrics)
        self._point(step, val_loss=val_loss)
        self._record(step, {"valLoss": val_loss, **metrics})  # no throughput: not a train event
        self._publish()

    def checkpointed(self, ref: CheckpointRef) -> None:
        self.progress.last_checkpoint = ref
        self._publish()

    def finish(self, step: int) -> None:
        """The final publish carries the steady-state means of the run (see SteadyRate)."""
        self._set_step(step)
        p = self.progress
        p.eta_seconds = 0
        mean = self.steady.mean()
        if mean is not None:
            p.samples_per_second, p.tokens_per_second, p.step_time_ms = mean
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

    def _record(self, step: int, values: dict[str, Any]) -> None:
        rec = {"step": step, "time": now_rfc3339(), "epoch": self.progress.epoch, **values}
        for s in self.sinks:
            if hasattr(s, "record"):
                _safely(s.record, rec)

    def _publish(self, final: bool = False) -> None:
        self.progress.heartbeat_time = now_rfc3339()
        for s in self.sinks:
            _safely(s.publish, self.progress, final)


class SteadyRate:
    """Throughput over the steady state: every logging interval after warm-up, by its time.

    Each log brings the rates of its own interval (the meter's timer, which is what the log
    records show). From the second log on the interval is exactly the steps since the previous
    log, so the mean is their samples over their summed time; the first interval (which starts
    at the end of warm-up, a step the reporter is not told) counts only when it is the only one.
    """

    def __init__(self, global_batch: int):
        self.global_batch = global_batch
        self.first: tuple[int, float, float | None, float | None] | None = None
        self.last_step: int | None = None
        self.steps, self.seconds = 0, 0.0
        self.tokens_per_sample: float | None = None

    def add(self, step: int, sps: float, tps: float | None, step_ms: float | None) -> None:
        if tps and sps:
            self.tokens_per_sample = tps / sps
        if self.first is None:
            self.first = (step, sps, tps, step_ms)
        elif self.last_step is not None and step > self.last_step and step_ms:
            self.steps += step - self.last_step
            self.seconds += (step - self.last_step) * step_ms / 1000
        self.last_step = step

    def mean(self) -> tuple[float, float | None, float | None] | None:
        """(samples/s, tokens/s, step time ms) over the steady state, or None before any log."""
        if self.first is None:
            return None
        if not self.steps or self.seconds <= 0:
            return self.first[1], self.first[2], self.first[3]
        sps = self.steps * self.global_batch / self.seconds
        tps = sps * self.tokens_per_sample if self.tokens_per_sample else None
        return sps, tps, 1000 * self.seconds / self.steps

    @property
    def window(self) -> tuple[int, int] | None:
        """(first, last) logging step: the mean covers the steps after the first up to the last."""
        if self.first is None:
            return None
        return self.first[0], self.last_step if self.last_step is not None else self.first[0]


def _safely(fn: object, *args: object) -> None:
    """A failing sink must not stop training; it says so once per failure on stderr.

    A run-directory fault is the exception: a run whose records and checkpoints cannot be
    written stops, with one line naming the path (exit code 1)."""
    try:
        fn(*args)  # type: ignore[operator]
    except RunDirFault:
        raise
    except Exception as e:
        print(f"kubetrain: reporting sink failed: {e!r}", file=sys.stderr)
