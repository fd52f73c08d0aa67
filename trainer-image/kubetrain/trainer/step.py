"""One optimizer step over micro-batches, with the loss normalised over the global batch."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import torch
from torch import nn

from kubetrain.metrics.losses import LossFn
from kubetrain.optim.build import l1_penalty

Batch = tuple[torch.Tensor, torch.Tensor]


AutocastFactory = Callable[[], contextlib.AbstractContextManager[None]]


def autocast_for(device: torch.device, precision: str) -> AutocastFactory:
    """A factory of the autocast context for this precision (a null context for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext
    dtype = torch.bfloat16 if precision == "bf16-mixed" else torch.float16
    return lambda: torch.autocast(device.type, dtype=dtype)


def accumulate_gradients(model: nn.Module, optimizer: torch.optim.Optimizer,
                         micro_batches: Sequence[Batch], loss_fn: LossFn, normaliser: float, *,
                         autocast: Callable[[], contextlib.AbstractContextManager[None]] =
                         contextlib.nullcontext,
                         scaler: torch.amp.GradScaler | None = None) -> torch.Tensor:
    """Backward over every micro-batch; returns the step's loss as a device tensor (no sync).

    Each micro-batch's summed loss is divided by `normaliser` (the global batch's sample or token
    count divided by the world size, since DDP averages gradients over ranks), so the gradient is
    that of the mean over the whole global batch, however it is split.
    """
    # Class lookups: a missing attribute on a Module instance costs an exception per step.
    no_sync = model.no_sync if hasattr(type(model), "no_sync") else None
    plain = no_sync is None and autocast is contextlib.nullcontext and scaler is None
    total: torch.Tensor | None = None
    last = len(micro_batches) - 1
    scale = 1.0 / normaliser
    # One micro-batch holding exactly the normaliser's targets: the plain mean is the same
    # number, one multiply (forward and backward) cheaper. (Like the loop's normaliser, this
    # assumes no IGNORE targets in the batch; the data pipeline produces none.)
    whole = (last == 0 and loss_fn.mean_is_sum_over_count
             and micro_batches[0][1].numel() == normaliser)
    for k, (x, y) in enumerate(micro_batches):
        if plain:  # the common single-process fp32 case, without context managers
            loss = _micro_loss(model, optimizer, loss_fn, x, y, whole, scale, k == last)
            loss.backward()
        else:
            # DDP: all-reduce gradients only after the last micro-batch.
            sync = no_sync() if (no_sync is not None and k < last) else contextlib.nullcontext()
            with sync:
                with autocast():
                    loss = _micro_loss(model, optimizer, loss_fn, x, y, whole, scale, k == last)
                (scaler.scale(loss) if scaler is not None else loss).backward()
        total = loss.detach() if total is None else total + loss.detach()
    assert total is not None, "a step needs at least one micro-batch"
    return total


def _micro_loss(model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: LossFn,
                x: torch.Tensor, y: torch.Tensor, whole: bool, scale: float,
                last: bool) -> torch.Tensor:
    out = model(x)
    loss = loss_fn(out, y, "mean") if whole else loss_fn(out, y) * scale
    if last:
        penalty = l1_penalty(optimizer)
        if penalty is not None:
            loss = loss + penalty
    return loss


def optimizer_step(model: nn.Module, optimizer: torch.optim.Optimizer, *,
                   clip: float | None, want_norm: bool,
                   scaler: torch.amp.GradScaler | None = None) -> torch.Tensor | None:
    """Clip, step, zero. Returns the gradient norm (a device tensor) when clipping or asked."""
    norm = None
    if scaler is not None:
        scaler.unscale_(optimizer)
    if clip is not None or want_norm:
        params = [p for p in model.parameters() if p.grad is not None]
        norm = torch.nn.utils.clip_grad_norm_(params, clip if clip is not None else float("inf"))
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return norm
