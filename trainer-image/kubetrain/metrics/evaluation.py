"""Evaluation metrics as sums, so ranks add theirs with one all-reduce before dividing."""

from __future__ import annotations

import math

import torch

from kubetrain.metrics.losses import IGNORE


class EvalSums:
    """Accumulates loss and metric sums over batches; `compute` turns them into metrics."""

    def __init__(self, task: str, num_classes: int, scale: float = 1.0,
                 device: torch.device | None = None):
        self.task, self.k, self.scale = task, num_classes, scale
        # [loss, count, correct, abs_err, sq_err, sum_y, sum_y2] then tp, fp, fn per class
        self.sums = torch.zeros(7 + (3 * num_classes if task == "classification" else 0),
                                dtype=torch.float64, device=device)

    @torch.no_grad()
    def update(self, loss_sum: torch.Tensor, out: torch.Tensor, y: torch.Tensor) -> None:
        s = self.sums
        s[0] += loss_sum.double()
        if self.task == "regression":
            pred, y = out.reshape(-1).double() * self.scale, y.double() * self.scale
            s[1] += len(y)
            s[3] += (pred - y).abs().sum()
            s[4] += ((pred - y) ** 2).sum()
            s[5] += y.sum()
            s[6] += (y ** 2).sum()
            return
        if self.task == "lm":
            s[1] += (y != IGNORE).sum()
            return
        pred = (out.reshape(-1) > 0).long() if out.shape[-1] == 1 else out.argmax(-1)
        s[1] += len(y)
        hit = pred == y
        s[2] += hit.sum()
        k = self.k
        s[7:7 + k] += torch.bincount(y[hit], minlength=k)[:k].double()          # tp
        s[7 + k:7 + 2 * k] += torch.bincount(pred[~hit], minlength=k)[:k].double()  # fp
        s[7 + 2 * k:] += torch.bincount(y[~hit], minlength=k)[:k].double()      # fn

    def compute(self, names: list[str]) -> tuple[float, dict[str, float]]:
        """(mean loss, requested metrics) from the (already reduced) sums."""
        s = self.sums.tolist()
        n = max(s[1], 1.0)
        loss = s[0] / n
        out: dict[str, float] = {}
        for name in names:
            if name == "perplexity":
                out[name] = math.exp(min(loss, 700.0))
            elif name == "accuracy" and self.task == "classification":
                out[name] = s[2] / n
            elif name == "f1" and self.task == "classification":
                k = self.k
                tp, fp, fn = s[7:7 + k], s[7 + k:7 + 2 * k], s[7 + 2 * k:]
                f1 = [2 * t / (2 * t + p + f) for t, p, f in zip(tp, fp, fn, strict=True)
                      if t + p + f > 0]
                out[name] = sum(f1) / len(f1) if f1 else 0.0  # macro average
            elif name == "mae" and self.task == "regression":
                out[name] = s[3] / n
            elif name == "rmse" and self.task == "regression":
                out[name] = math.sqrt(s[4] / n)
            elif name == "r2" and self.task == "regression":
                total = s[6] - s[5] ** 2 / n
                out[name] = 1.0 - s[4] / total if total > 0 else 0.0
        return loss, out
