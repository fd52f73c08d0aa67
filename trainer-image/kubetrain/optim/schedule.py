"""Learning rate by step: linear warmup, then constant/linear/cosine/step/exponential/plateau."""

from __future__ import annotations

import math
from typing import Any

import torch

from kubetrain.api.optim import Scheduler


class Schedule:
    """lr(step) as a factor of the peak lr; plateau reductions are its only state."""

    def __init__(self, spec: Scheduler, peak_lr: float, total_steps: int):
        self.spec, self.peak, self.total = spec, peak_lr, max(total_steps, 1)
        ratio = spec.warmup_ratio or 0.0
        self.warmup = (spec.warmup_steps if spec.warmup_steps is not None
                       else int(ratio * self.total))
        self.plateau_factor = 1.0
        self.best: float | None = None
        self.bad_evals = 0

    def factor(self, step: int) -> float:
        """Multiplier of the peak lr for optimizer step `step` (0-based)."""
        s = self.spec
        if step < self.warmup:
            return (step + 1) / (self.warmup + 1)
        floor = s.min_lr_ratio
        done = min((step - self.warmup) / max(self.total - self.warmup, 1), 1.0)
        if s.type == "cosine":
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * done))
        if s.type == "linear":
            return floor + (1 - floor) * (1 - done)
        if s.type == "step":
            return s.gamma ** ((step - self.warmup) // (s.step_size or 1))
        if s.type == "exponential":
            return max(s.gamma ** (step - self.warmup), floor)
        if s.type == "plateau":
            return max(self.plateau_factor, floor)
        return 1.0

    def apply(self, optimizer: torch.optim.Optimizer, step: int) -> float:
        lr = self.peak * self.factor(step)
        for g in optimizer.param_groups:
            g["lr"] = lr
        return lr

    def on_eval(self, val_loss: float) -> None:
        """Plateau: reduce by gamma after `patience` evaluations without improvement."""
        if self.spec.type != "plateau":
            return
        if self.best is None or val_loss < self.best:
            self.best, self.bad_evals = val_loss, 0
            return
        self.bad_evals += 1
        if self.bad_evals > self.spec.patience:
            self.plateau_factor *= self.spec.gamma
            self.bad_evals = 0

    def state_dict(self) -> dict[str, Any]:
        return {"plateau_factor": self.plateau_factor, "best": self.best,
                "bad_evals": self.bad_evals}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.plateau_factor = state["plateau_factor"]
        self.best, self.bad_evals = state["best"], state["bad_evals"]
