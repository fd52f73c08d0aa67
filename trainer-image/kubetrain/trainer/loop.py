"""The training loop: steps, logging without per-step host syncs, eval, early stopping.

The loop does no file I/O: it reports through the Reporter and asks its owner (the Trainer)
to save through the `save_checkpoint` callback it was built with.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from kubetrain.api.spec import TrainingJobSpec
from kubetrain.data.order import BatchOrder
from kubetrain.data.samples import Samples
from kubetrain.metrics.evaluation import EvalSums
from kubetrain.metrics.losses import LossFn
from kubetrain.metrics.throughput import Throughput
from kubetrain.optim.schedule import Schedule
from kubetrain.preprocessing.image import augment_batch
from kubetrain.reporting.reporter import Reporter
from kubetrain.trainer.distributed import DistContext, all_reduce, any_rank
from kubetrain.trainer.step import accumulate_gradients, autocast_for, optimizer_step

WARMUP_STEPS = 3
"""Steps (first batches, torch.compile) timed apart from the steady state."""


class Diverged(RuntimeError):
    """The loss became NaN or infinite (exit code 3)."""


@dataclass
class LoopState:
    """What the loop itself carries across a resume. The step is also the data position: the
    batch order is a pure function of (seed, step), so nothing else about the data is saved."""

    step: int = 0
    best: float | None = None
    """Best early-stopping metric so far."""
    bad_evals: int = 0
    best_saved: float | None = None
    """Metric of the checkpoint saved as `best`."""

    def state_dict(self) -> dict[str, Any]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step, self.best = state["step"], state["best"]
        self.bad_evals, self.best_saved = state["bad_evals"], state["best_saved"]


SaveKind = Literal["periodic", "best", "interrupt", "final"]


@dataclass(frozen=True)
class Outcome:
    reason: Literal["finished", "interrupted", "early_stopped"]
    step: int


@dataclass
class Parts:
    """Everything the loop trains with (built by `trainer.parts.loop_parts`)."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    loss_fn: LossFn
    train: Samples
    val: Samples
    order: BatchOrder
    task: str
    num_classes: int
    target_scale: float
    scaler: torch.amp.GradScaler | None = None
    augment: Any = None
    flops_per_token: float | None = None
    peak_flops: float | None = None


class TrainLoop:
    """Steps from `state.step` to the end; everything it needs comes in through the constructor."""

    def __init__(self, spec: TrainingJobSpec, parts: Parts, ctx: DistContext, *,
                 total_steps: int, micro_batch: int, reporter: Reporter,
                 save_checkpoint: Callable[[SaveKind], None] = lambda kind: None,
                 stop_requested: Callable[[], bool] = lambda: False):
        self.spec, self.p, self.ctx = spec, parts, ctx
        self.total, self.micro = total_steps, micro_batch
        self.reporter, self.save_checkpoint, self.stop_requested = (
            reporter, save_checkpoint, stop_requested)
        self.state = LoopState()
        self.autocast = autocast_for(ctx.device, spec.training.precision)
        tokens = parts.train.seq_len if hasattr(parts.train, "seq_len") else None
        self.tokens_per_sample: int | None = tokens
        self.eval_metrics = list(spec.training.eval.metrics)
        self.pin = spec.dataset.loader.pin_memory and ctx.device.type == "cuda"

    # -- one step -------------------------------------------------------------------------
    def _micro_batches(self, step: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        order, ctx = self.p.order, self.ctx
        epoch = order.epoch_of(step)
        out = []
        for k, idx in enumerate(order.rank_micro_batches(step, ctx.rank, ctx.world, self.micro)):
            x, y = self.p.train.batch(idx, epoch)
            if x.device != ctx.device:
                if self.pin:  # page-locked host memory lets the copy overlap compute
                    x, y = x.pin_memory(), y.pin_memory()
                x, y = x.to(ctx.device, non_blocking=True), y.to(ctx.device, non_blocking=True)
            if self.p.augment is not None:
                # Seeded by position, not by a running RNG: resume and world size keep it.
                g = torch.Generator().manual_seed(
                    hash((self.spec.training.seed, step, ctx.rank, k)) & 0x7FFF_FFFF)
                x = augment_batch(x, self.p.augment, g)
            out.append((x, y))
        return out

    def train_step(self, step: int, want_norm: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        p = self.p
        p.schedule.apply(p.optimizer, step)
        t0 = time.perf_counter()
        batches = self._micro_batches(step)
        self.meter.data_seconds += time.perf_counter() - t0
        count = self.p.order.global_batch * (self.tokens_per_sample or 1)
        if hasattr(p.train, "target_count"):  # padded or masked targets (data/instruct.py)
            count = p.train.target_count(p.order.global_indices(step))
        loss = accumulate_gradients(p.model, p.optimizer, batches, p.loss_fn,
                                    count / self.ctx.world, autocast=self.autocast,
                                    scaler=p.scaler)
        norm = optimizer_step(p.model, p.optimizer, clip=self.spec.training.grad_clip_norm,
                              want_norm=want_norm, scaler=p.scaler)
        return loss, norm

    # -- the loop ---------------------------------------------------------------------------
    def fit(self) -> Outcome:
        """Train from self.state.step to the end, an interruption or early stopping."""
        t = self.spec.training
        eval_every, ckpt_every = t.eval.every_steps, self.spec.checkpoint.every_steps
        self.begin()
        outcome = Outcome("finished", self.state.step)
        while self.state.step < self.total:
            if self.should_stop():
                self.save_checkpoint("interrupt")
                return Outcome("interrupted", self.state.step)
            step = self.step()
            if (eval_every and (step % eval_every == 0 or step == self.total)) or (
                    step == self.total and len(self.p.val)):
                with self.meter.paused():
                    outcome = self._evaluate(step)
                if outcome.reason == "early_stopped":
                    break
            if ckpt_every and step % ckpt_every == 0 and step < self.total:
                with self.meter.paused():
                    self.save_checkpoint("periodic")
        self.save_checkpoint("final")
        return outcome

    def begin(self) -> None:
        """Start timing from the current step (fit calls it; so does a caller driving step())."""
        self.meter = Throughput(start_step=self.state.step,
                                warmup_steps=min(WARMUP_STEPS,
                                                 max(self.total - self.state.step - 1, 0)),
                                global_batch=self.p.order.global_batch,
                                tokens_per_sample=self.tokens_per_sample, device=self.ctx.device)
        self._losses: list[torch.Tensor] = []  # device tensors: summed only when logging

    def step(self) -> int:
        """One optimizer step, with the heartbeat, timing and (on logging steps) the log."""
        step = self.state.step
        log_now = (step + 1) % self.spec.training.logging.every_steps == 0 or step + 1 == self.total
        loss, norm = self.train_step(step, want_norm=log_now)
        self._losses.append(loss)  # no host sync between logging steps
        step += 1
        self.state.step = step
        self.reporter.beat(step)
        self.meter.step_done(step)
        if log_now:
            self._log(step, torch.stack(self._losses).mean(), norm)
            self._losses.clear()
        return step

    def should_stop(self) -> bool:
        # Every rank must stop at the same step boundary, so they agree through a collective
        # (over host memory: no device sync per step).
        return any_rank(self.stop_requested(), self.ctx)

    def _log(self, step: int, loss: torch.Tensor, norm: torch.Tensor | None) -> None:
        mean = all_reduce(loss.detach().clone(), self.ctx, "avg").item()
        if not math.isfinite(mean):
            raise Diverged(f"the training loss became {mean} at step {step}"
                           " (lower optimizer.lr or set training.gradClipNorm)")
        rates = self.meter.read(step)
        metrics = {"lr": self.p.optimizer.param_groups[0]["lr"]}
        if norm is not None:
            metrics["gradNorm"] = float(norm)
        if rates["data_wait"] is not None:
            metrics["dataWaitFraction"] = round(rates["data_wait"], 4)
        if self.ctx.device.type == "cuda":
            metrics["peakMemoryGiB"] = torch.cuda.max_memory_allocated(self.ctx.device) / 2**30
            tps = rates["tokens_per_second"]
            if tps and self.p.flops_per_token and self.p.peak_flops:
                metrics["mfu"] = tps * self.p.flops_per_token / (self.p.peak_flops * self.ctx.world)
        self.reporter.log(step, mean, metrics,
                          samples_per_second=rates["samples_per_second"],
                          tokens_per_second=rates["tokens_per_second"],
                          step_time_ms=rates["step_time_ms"],
                          warmup_seconds=rates["warmup_seconds"])

    # -- evaluation -----------------------------------------------------------------------
    def _evaluate(self, step: int) -> Outcome:
        val_loss, metrics = self.evaluate(self.p.val, self.spec.training.eval.max_batches)
        if not math.isfinite(val_loss):
            raise Diverged(f"the validation loss became {val_loss} at step {step}")
        self.reporter.evaluated(step, val_loss, metrics)
        self.p.schedule.on_eval(val_loss)
        values = {"valLoss": val_loss, **metrics}
        best = self.spec.checkpoint.save_best
        if best is not None and best.metric in values:
            v = values[best.metric]
            prev = self.state.best_saved
            if prev is None or (v < prev if best.mode == "min" else v > prev):
                self.state.best_saved = v
                self.save_checkpoint("best")
        es = self.spec.training.early_stopping
        if es is not None and es.metric in values:
            v = values[es.metric]
            b = self.state.best
            better = b is None or (v < b - es.min_delta if es.mode == "min"
                                   else v > b + es.min_delta)
            if better:
                self.state.best, self.state.bad_evals = v, 0
            else:
                self.state.bad_evals += 1
                if self.state.bad_evals >= es.patience:
                    return Outcome("early_stopped", step)
        return Outcome("finished", step)

    def evaluate(self, split: Samples, max_batches: int | None = None
                 ) -> tuple[float, dict[str, float]]:
        """Mean loss and metrics over a split, sharded over ranks and reduced."""
        p = self.p
        return evaluate_split(p.model, split, p.loss_fn, EvalSums(
            p.task, p.num_classes, p.target_scale, self.ctx.device), self.eval_metrics,
            batch_size=self.micro, max_batches=max_batches, ctx=self.ctx,
            autocast=self.autocast, beat=lambda: self.reporter.beat(self.state.step))


@torch.no_grad()
def evaluate_split(model: nn.Module, split: Samples, loss_fn: LossFn, sums: EvalSums,
                   metrics: list[str], *, batch_size: int, max_batches: int | None = None,
                   ctx: DistContext | None = None,
                   autocast: Callable[[], contextlib.AbstractContextManager[None]] =
                   contextlib.nullcontext,
                   beat: Callable[[], None] = lambda: None) -> tuple[float, dict[str, float]]:
    """Loss and metrics of `model` on a split; ranks take every world-th batch, then reduce."""
    ctx = ctx or DistContext()
    n = len(split)
    if n == 0:
        return float("nan"), {}
    batches = -(-n // batch_size)
    if max_batches:
        batches = min(batches, max_batches)
    per_rank = -(-batches // ctx.world)  # equal counts: FSDP forwards are collective
    was_training = model.training
    model.eval()
    for j in range(per_rank):
        b = j * ctx.world + ctx.rank
        real = b < batches
        idx = (np.arange(b * batch_size, min((b + 1) * batch_size, n)) if real
               else np.arange(min(batch_size, n)))
        x, y = split.batch(idx)
        x, y = x.to(ctx.device), y.to(ctx.device)
        with autocast():
            out = model(x)
        if real:
            sums.update(loss_fn(out, y), out.float(), y)
        beat()
    model.train(was_training)
    all_reduce(sums.sums, ctx, "sum")
    return sums.compute(metrics)
