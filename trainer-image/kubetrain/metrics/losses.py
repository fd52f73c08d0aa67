"""Summed losses: the loop divides by the global batch's sample (or token) count itself."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

IGNORE = -100
"""Target id that contributes neither loss nor count (padding)."""

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def loss_kind(task: str, configured: str) -> str:
    if configured != "auto":
        return configured
    return "mse" if task == "regression" else "cross_entropy"


def summed_loss(kind: str, class_weights: torch.Tensor | None = None) -> LossFn:
    """(output, target) → the loss summed over samples (tokens for lm), not averaged."""
    if kind == "cross_entropy":
        def ce(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(out.reshape(-1, out.shape[-1]).float(), y.reshape(-1),
                                   weight=class_weights, ignore_index=IGNORE, reduction="sum")
        return ce
    if kind == "bce":
        def bce(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return F.binary_cross_entropy_with_logits(out.reshape(-1).float(), y.float(),
                                                      reduction="sum")
        return bce
    if kind == "huber":
        return lambda out, y: F.huber_loss(out.reshape(-1).float(), y, reduction="sum")
    return lambda out, y: F.mse_loss(out.reshape(-1).float(), y, reduction="sum")


def target_count(y: torch.Tensor, task: str) -> int:
    """What the loss is normalised by: samples, or non-ignored tokens for lm."""
    return int((y != IGNORE).sum()) if task == "lm" else len(y)
