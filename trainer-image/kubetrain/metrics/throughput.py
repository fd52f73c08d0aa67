"""Step timing without per-step syncs: warm-up apart, steady-state rates at logging steps."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import torch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Throughput:
    """Timings are read only at logging steps, where the loss read-out has synced the device."""

    def __init__(self, *, start_step: int, warmup_steps: int, global_batch: int,
                 tokens_per_sample: int | None, device: torch.device):
        self.device, self.global_batch, self.tokens = device, global_batch, tokens_per_sample
        self.t0 = time.perf_counter()
        self.warm_step = start_step + warmup_steps
        self.warm_end: float | None = None
        self.warm_seconds: float | None = None
        self.last_t, self.last_step = self.t0, start_step
        self.data_seconds = 0.0

    def step_done(self, step: int) -> None:
        if step == self.warm_step and self.warm_end is None:
            sync(self.device)  # once per run: the warm-up boundary must be exact
            self.warm_end = time.perf_counter()
            self.warm_seconds = self.warm_end - self.t0
            self.last_t, self.last_step, self.data_seconds = self.warm_end, step, 0.0

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Evaluation and checkpoints are not training: their time (with a compiled model's
        eval-mode recompile) is left out of the rates and of the warm-up."""
        start = time.perf_counter()
        try:
            yield
        finally:
            gap = time.perf_counter() - start
            self.last_t += gap
            if self.warm_end is None:
                self.t0 += gap

    def read(self, step: int) -> dict[str, float | None]:
        """Rates over the interval since the last read (after warm-up only)."""
        now = time.perf_counter()
        out: dict[str, float | None] = {"warmup_seconds": self.warm_seconds,
                                        "samples_per_second": None, "tokens_per_second": None,
                                        "step_time_ms": None, "data_wait": None}
        steps = step - self.last_step
        if self.warm_end is not None and steps > 0 and now > self.last_t:
            dt = now - self.last_t
            sps = steps * self.global_batch / dt
            out.update(samples_per_second=sps, step_time_ms=1000 * dt / steps,
                       data_wait=min(self.data_seconds / dt, 1.0),
                       tokens_per_second=sps * self.tokens if self.tokens else None)
        if self.warm_end is not None:
            self.last_t, self.last_step, self.data_seconds = now, step, 0.0
        return out
