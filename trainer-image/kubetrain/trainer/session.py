"""One training process from a TrainingJob: build the parts, resume, train, save the model."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import torch

from kubetrain.api.job import TrainingJob
from kubetrain.api.plan import PlanError, resolve_plan
from kubetrain.api.status import CheckpointRef, Plan
from kubetrain.data.build import DataBundle, build_data
from kubetrain.data.errors import DataError
from kubetrain.data.order import BatchOrder
from kubetrain.exitcodes import ExitCode
from kubetrain.metrics.losses import loss_kind, summed_loss
from kubetrain.models.registry import (
    build_model,
    load_initial_weights,
    set_activation_checkpointing,
)
from kubetrain.optim.build import build_optimizer
from kubetrain.optim.schedule import Schedule
from kubetrain.preprocessing.image import augmenting
from kubetrain.reporting.console import ConsoleSink
from kubetrain.reporting.files import RunDirSink, TensorBoardSink
from kubetrain.reporting.reporter import Reporter, now_rfc3339
from kubetrain.reporting.sink import Sink, extra_sinks
from kubetrain.trainer import checkpoint as ckpt
from kubetrain.trainer.distributed import DistContext, barrier, init_distributed, unwrap, wrap_model
from kubetrain.trainer.loop import LoopState, Parts, Trainer
from kubetrain.trainer.run_dir import job_yaml, save_final_model, write_resolved
from kubetrain.trainer.signals import StopFlag

# Dense bf16 peak FLOP/s by device name, for MFU (None elsewhere: MFU is not reported).
PEAK_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12, "A10": 125e12}


def gpus_here() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def plan_for(job: TrainingJob, train_samples: int | None = None) -> Plan:
    try:
        return resolve_plan(job.spec, gpus_per_node=gpus_here(), train_samples=train_samples)
    except PlanError as e:
        raise DataError(str(e)) from None


def train(job: TrainingJob, run_dir: Path, *, base: Path | None = None,
          stop: StopFlag | None = None, console: bool = True) -> ExitCode:
    """Train in this process (one rank of the group when started by torchrun)."""
    spec, t = job.spec, job.spec.training
    if t.precision == "fp16-mixed" and not torch.cuda.is_available():
        raise DataError("training.precision fp16-mixed needs a GPU (use bf16-mixed on CPU)")
    plan = plan_for(job)
    ctx = init_distributed(plan, spec.parallelism.timeout_seconds)
    if plan.world_size != ctx.world:
        raise DataError(f"the plan needs {plan.world_size} processes but {ctx.world} were"
                        " started (parallelism.nodes × procsPerNode)")
    if t.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    stop = stop or StopFlag()
    checkpointer = ckpt.Checkpointer(Path(spec.checkpoint.path or run_dir / "checkpoints"),
                                     spec.checkpoint.keep_last, ctx)
    candidates = _resume_candidates(spec.checkpoint.resume, checkpointer)
    resume_from = candidates[0] if candidates else None
    prep_state = (json.loads((resume_from / "preprocessing.json").read_text())
                  if resume_from else None)
    data = build_data(spec, cache_dir=run_dir / "cache", base=base, state=prep_state)
    plan = plan_for(job, len(data.train))
    total = plan.total_steps or 0
    if len(data.train) < plan.global_batch_size:  # type: ignore[operator]
        raise DataError(f"training.globalBatchSize {plan.global_batch_size} is larger than the"
                        f" training split ({len(data.train)} samples)")
    if ctx.is_main:
        write_resolved(run_dir, job, plan)

    torch.manual_seed(t.seed)  # identical init on every rank (FSDP shards need it)
    model = build_model(spec.model, data.shapes)
    load_initial_weights(model, spec.model, base)
    set_activation_checkpointing(model, spec.model.activation_checkpointing)
    model.to(ctx.device)
    flops = getattr(model, "flops_per_token", lambda: None)()
    model = wrap_model(model, plan.strategy, ctx, t.precision)
    if spec.model.compile:
        model = torch.compile(model)
    torch.manual_seed(t.seed * 1000 + 1 + ctx.rank)  # dropout differs per rank, reproducibly
    optimizer = build_optimizer(model, spec.optimizer)
    schedule = Schedule(spec.scheduler, spec.optimizer.lr, total)
    scaler = torch.amp.GradScaler("cuda") if t.precision == "fp16-mixed" else None
    parts = build_parts(job, data, model, optimizer, schedule, scaler, plan, ctx, flops)

    reporter = Reporter(_sinks(job, run_dir, total, console) if ctx.is_main else [],
                        total_steps=total, global_batch=plan.global_batch_size or 0,
                        train_samples=len(data.train))
    checkpointer.beat = lambda: reporter.beat(trainer.state.step, force=True)
    fsdp = plan.strategy == "fsdp"
    trainer = Trainer(spec, parts, ctx, total_steps=total, micro_batch=plan.micro_batch_size or 1,
                      reporter=reporter, stop_requested=stop)

    def save(state: LoopState, kind: str) -> None:
        reporter.beat(state.step, force=True)
        path = checkpointer.save(state.step, *_checkpoint_payload(job, trainer, data, fsdp),
                                 name="best" if kind == "best" else None)
        if kind != "best":
            reporter.checkpointed(CheckpointRef(step=state.step, path=str(path),
                                                time=now_rfc3339()))

    trainer.save_checkpoint = save
    for path in candidates:
        try:
            _restore(path, trainer, ctx, fsdp)
        except ckpt.CheckpointError as e:
            if spec.checkpoint.resume != "auto" or path == candidates[-1]:
                raise
            print(f"kubetrain: warning: skipping checkpoint {path}: {e}", file=sys.stderr)
            continue
        if ctx.is_main:
            print(f"kubetrain: resuming from {path} at step {trainer.state.step}",
                  file=sys.stderr)
        break
    outcome = trainer.fit()

    if outcome.reason != "interrupted":
        state = _full_model_state(trainer.p.model, fsdp)
        if ctx.is_main:
            summary = {"steps": outcome.step, "reason": outcome.reason, "base": str(base or ""),
                       "valLoss": reporter.progress.val_loss, "metrics": reporter.progress.metrics}
            save_final_model(run_dir, job, state, data.state, data.shapes, summary)
    barrier(ctx)
    reporter.finish(trainer.state.step)
    return ExitCode.INTERRUPTED if outcome.reason == "interrupted" else ExitCode.SUCCEEDED


def build_parts(job: TrainingJob, data: DataBundle, model: torch.nn.Module,
                optimizer: torch.optim.Optimizer, schedule: Schedule,
                scaler: torch.amp.GradScaler | None, plan: Plan, ctx: DistContext,
                flops: float | None) -> Parts:
    """What the loop trains with: loss (class weights), data order (oversampling), augment."""
    spec = job.spec
    task = data.shapes.task
    imbalance = spec.preprocessing.imbalance.strategy
    weights = None
    order_weights = None
    if task == "classification" and data.class_counts and imbalance != "none":
        counts = torch.tensor(data.class_counts, dtype=torch.float32).clamp(min=1)
        if imbalance == "classWeights":
            weights = (counts.sum() / (len(counts) * counts)).to(ctx.device)
        else:
            per_sample = (1.0 / counts)[data.train.y]  # type: ignore[union-attr]
            order_weights = tuple(per_sample.tolist())
    kind = loss_kind(task, spec.training.loss)
    if kind == "bce" and data.shapes.num_outputs != 2:
        raise DataError(f"training.loss bce needs 2 classes, the labels have "
                        f"{data.shapes.num_outputs}")
    loader = spec.dataset.loader
    order = BatchOrder(len(data.train), plan.global_batch_size or 1, spec.training.seed,
                       loader.shuffle, loader.drop_last, order_weights)
    target = data.target
    aug = spec.preprocessing.image.augment
    peak = None
    if ctx.device.type == "cuda":
        name = torch.cuda.get_device_name(ctx.device)
        peak = next((v for k, v in PEAK_FLOPS.items() if k in name), None)
    return Parts(model, optimizer, schedule, summed_loss(kind, weights), data.train, data.val,
                 order, task, data.shapes.num_outputs,
                 target.scale if target and task == "regression" else 1.0, scaler,
                 aug if augmenting(aug) and len(data.shapes.input_shape) == 3 else None,
                 flops, peak)


def _sinks(job: TrainingJob, run_dir: Path, total: int, console: bool) -> list[Sink]:
    sinks: list[Sink] = [RunDirSink(run_dir)]
    if console:
        sinks.insert(0, ConsoleSink(job.metadata.name, total))
    if job.spec.training.logging.tensorboard:
        sinks.append(TensorBoardSink(run_dir))
    return sinks + extra_sinks(run_dir, job)


def _resume_candidates(resume: str, checkpointer: ckpt.Checkpointer) -> list[Path]:
    """Checkpoints to try, best first: resume auto falls back to older ones if one is corrupt."""
    if resume == "never":
        return []
    if resume == "auto":
        newest = checkpointer.newest_valid()
        if newest is None:
            return []
        older = [p for p in reversed(checkpointer.complete()) if p < newest
                 and ckpt.verify(p) is None]
        return [newest, *older]
    path = Path(resume)
    problem = ckpt.verify(path)
    if problem:
        raise DataError(f"checkpoint.resume {resume}: {problem}")
    return [path]


def _checkpoint_payload(job: TrainingJob, trainer: Trainer, data: DataBundle, fsdp: bool
                        ) -> tuple[dict[str, Any], dict[str, str], dict[str, Any] | None]:
    p = trainer.p
    state = trainer.state
    loop = {"step": state.step, "epoch": p.order.epoch_of(state.step), "best": state.best,
            "bad_evals": state.bad_evals, "best_saved": state.best_saved,
            "schedule": p.schedule.state_dict(),
            "scaler": p.scaler.state_dict() if p.scaler else None,
            "world": trainer.ctx.world}
    files = {"preprocessing.json": json.dumps(data.state), "job.yaml": job_yaml(job)}
    if fsdp:
        from torch.distributed.checkpoint.state_dict import get_state_dict

        model_sd, optim_sd = get_state_dict(p.model, p.optimizer)
        return {"trainer": loop}, files, {"model": model_sd, "optim": optim_sd}
    full = {"model": unwrap(p.model).state_dict(), "optim": p.optimizer.state_dict(),
            "trainer": loop} if trainer.ctx.is_main else {"trainer": loop}
    return full, files, None


def _restore(path: Path, trainer: Trainer, ctx: DistContext, fsdp: bool) -> None:
    p = trainer.p
    loop = ckpt.load_part(path, "trainer")
    if fsdp:
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

        model_sd, optim_sd = get_state_dict(p.model, p.optimizer)
        state = {"model": model_sd, "optim": optim_sd}
        dcp.load(state, checkpoint_id=str(path / "dcp"))
        set_state_dict(p.model, p.optimizer, model_state_dict=state["model"],
                       optim_state_dict=state["optim"])
    else:
        unwrap(p.model).load_state_dict(ckpt.load_part(path, "model"))
        p.optimizer.load_state_dict(ckpt.load_part(path, "optim"))
    p.schedule.load_state_dict(loop["schedule"])
    if p.scaler and loop["scaler"]:
        p.scaler.load_state_dict(loop["scaler"])
    trainer.state = LoopState(step=loop["step"], best=loop["best"], bad_evals=loop["bad_evals"],
                              best_saved=loop["best_saved"])
    rng = ckpt.load_rng(path, ctx.rank)
    if rng is not None and loop.get("world") == ctx.world:
        ckpt.set_rng_state(rng)
    else:  # another world size: a fresh, reproducible stream per rank
        torch.manual_seed(hash((trainer.spec.training.seed, loop["step"], ctx.rank)) & 0xFFFF_FFFF)


def _full_model_state(model: torch.nn.Module, fsdp: bool) -> dict[str, Any]:
    if fsdp:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True,
                                                                    cpu_offload=True))
    return {k: v.detach().cpu() for k, v in unwrap(model).state_dict().items()}
