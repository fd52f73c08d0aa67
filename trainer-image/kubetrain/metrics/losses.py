"""Summed losses: the loop divides by the global batch's sample (or token) count itself."""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F

from kubetrain.errors import InvalidJob

IGNORE = -100
"""Target id that contributes neither loss nor count (padding)."""


class LossFn(Protocol):
    """(output, target) → loss summed over samples (tokens for lm), or their mean."""

    mean_is_sum_over_count: bool
    """True when reduction "mean" equals the sum divided by the number of targets (no class
    weights), so one micro-batch holding the whole normaliser can skip a multiply."""

    def __call__(self, out: torch.Tensor, y: torch.Tensor, reduction: str = "sum"
                 ) -> torch.Tensor: ...


def loss_for(task: str, configured: str, num_outputs: int,
             class_weights: torch.Tensor | None = None) -> LossFn:
    """The loss a job trains and evaluates with: `training.loss`, or by task when auto."""
    kind = configured if configured != "auto" else (
        "mse" if task == "regression" else "cross_entropy")
    if kind == "bce" and num_outputs != 2:
        raise InvalidJob(f"training.loss bce needs 2 classes, the labels have {num_outputs}")
    return summed_loss(kind, class_weights)


def summed_loss(kind: str, class_weights: torch.Tensor | None = None) -> LossFn:
    """The loss; summed by default (the loop divides by the global batch's count itself)."""

    def ce(out: torch.Tensor, y: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
        if out.dim() > 2:  # (B, T, V) → (B·T, V)
            out, y = out.reshape(-1, out.shape[-1]), y.reshape(-1)
        return F.cross_entropy(out.float(), y, weight=class_weights, ignore_index=IGNORE,
                               reduction=reduction)

    def bce(out: torch.Tensor, y: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(out.reshape(-1).float(), y.float(),
                                                  reduction=reduction)

    def huber(out: torch.Tensor, y: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
        return F.huber_loss(out.reshape(-1).float(), y, reduction=reduction)

    def mse(out: torch.Tensor, y: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
        return F.mse_loss(out.reshape(-1).float(), y, reduction=reduction)

    fn = {"cross_entropy": ce, "bce": bce, "huber": huber}.get(kind, mse)
    fn.mean_is_sum_over_count = class_weights is None  # type: ignore[attr-defined]
    return fn  # type: ignore[return-value]
