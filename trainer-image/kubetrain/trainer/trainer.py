"""One training process: the Trainer builds every part from the job, resumes, fits and saves.

Read top to bottom, `Trainer.__init__` is the whole set-up of a run in order: plan, process
group, checkpoint to resume from, data (with that checkpoint's preprocessing), model,
optimizer and schedule, reporting, the loop. Every stateful part is named once in `_parts`;
the checkpointer saves and loads whatever is there.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch

from kubetrain.api.job import TrainingJob
from kubetrain.api.plan import resolve_plan
from kubetrain.api.status import CheckpointRef, Plan
from kubetrain.data.build import build_data
from kubetrain.data.text import write_tokenizer_file
from kubetrain.errors import InvalidJob
from kubetrain.exitcodes import ExitCode
from kubetrain.models.registry import (
    build_model,
    load_initial_weights,
    report_parameters,
    set_activation_checkpointing,
)
from kubetrain.optim.build import build_optimizer
from kubetrain.optim.schedule import Schedule
from kubetrain.preprocessing.state import PreprocessingState, state_from_dict
from kubetrain.reporting.console import ConsoleSink
from kubetrain.reporting.files import RunDirSink, TensorBoardSink
from kubetrain.reporting.kube_status import sink_for_pod
from kubetrain.reporting.reporter import Reporter, now_rfc3339
from kubetrain.reporting.sink import Sink
from kubetrain.trainer.checkpoint import (
    Checkpointer,
    CheckpointError,
    Location,
    Stateful,
    read_manifest,
    read_part,
)
from kubetrain.trainer.distributed import any_rank, barrier, init_distributed, wrap_model
from kubetrain.trainer.loop import Diverged, Outcome, SaveKind, TrainLoop
from kubetrain.trainer.parts import loop_parts
from kubetrain.trainer.resume_guard import guard_changes, mismatch_message, resume_guard
from kubetrain.trainer.run_dir import save_final_model, write_resolved
from kubetrain.trainer.signals import StopFlag
from kubetrain.trainer.state import (
    ModelWeights,
    OptimizerFromFull,
    RNGState,
    ShardedTrainState,
    all_finite,
    full_model_state,
)


def gpus_here() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def plan_for(job: TrainingJob, train_samples: int | None = None) -> Plan:
    return resolve_plan(job.spec, gpus_per_node=gpus_here(), train_samples=train_samples)


def train(job: TrainingJob, run_dir: Path, *, base: Path | None = None,
          stop: StopFlag | None = None, console: bool = True) -> ExitCode:
    """Train in this process (one rank of the group when started by torchrun)."""
    trainer = Trainer(job, run_dir, base=base, stop=stop, console=console)
    trainer.resume()
    return trainer.finish(trainer.loop.fit())


class Trainer:
    """Owns a run's parts and their state: build → resume → fit (through `loop`) → finish."""

    def __init__(self, job: TrainingJob, run_dir: Path, *, base: Path | None = None,
                 stop: StopFlag | None = None, console: bool = True):
        spec, t = job.spec, job.spec.training
        self.job, self.run_dir, self.base = job, run_dir, base
        if t.precision == "fp16-mixed" and not torch.cuda.is_available():
            raise InvalidJob("training.precision fp16-mixed needs a GPU (use bf16-mixed on CPU)")
        plan = plan_for(job)
        self.ctx = ctx = init_distributed(plan, spec.parallelism.timeout_seconds)
        if plan.world_size != ctx.world:
            raise InvalidJob(f"the plan needs {plan.world_size} processes but {ctx.world} were"
                             " started (parallelism.nodes × procsPerNode)")
        if t.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)

        self.checkpointer = Checkpointer(spec.checkpoint.path or run_dir / "checkpoints",
                                         spec.checkpoint.keep_last, ctx, beat=self._beat)
        self.resume_from = self.checkpointer.resume_point(spec.checkpoint.resume)
        saved_prep = (state_from_dict(read_part(self.resume_from, "preprocessing.json"))
                      if self.resume_from else None)

        self.data = data = build_data(spec, cache_dir=run_dir / "cache", base=base,
                                      state=saved_prep)
        self.plan = plan = plan_for(job, len(data.train))
        if plan.total_steps is None:  # resolve_plan knows it once the split size is known
            raise InvalidJob("spec.training: set maxSteps or epochs")
        self.total_steps: int = plan.total_steps
        if len(data.train) < plan.global_batch_size:
            raise InvalidJob(f"training.globalBatchSize {plan.global_batch_size} is larger than"
                             f" the training split ({len(data.train)} samples)")
        if ctx.is_main:
            write_resolved(run_dir, job, plan)
            write_tokenizer_file(run_dir, getattr(data.state, "tokenizer", None))

        torch.manual_seed(t.seed)  # identical init on every rank (FSDP shards need it)
        model = build_model(spec.model, data.shapes, base)
        load_initial_weights(model, spec.model, base)
        if ctx.is_main:
            report_parameters(model)
        set_activation_checkpointing(model, spec.model.activation_checkpointing)
        self.guard = resume_guard(spec, {k: list(v.shape) for k, v in model.state_dict().items()})
        model.to(ctx.device)
        flops = getattr(model, "flops_per_token", lambda: None)()
        self.fsdp = plan.strategy == "fsdp"
        model = wrap_model(model, plan.strategy, ctx, t.precision)
        if spec.model.compile:
            model = torch.compile(model)
        self.model = model
        torch.manual_seed(t.seed * 1000 + 1 + ctx.rank)  # dropout differs per rank, reproducibly
        self.optimizer = build_optimizer(model, spec.optimizer)
        self.schedule = Schedule(spec.scheduler, spec.optimizer.lr, self.total_steps)
        self.scaler = torch.amp.GradScaler("cuda") if t.precision == "fp16-mixed" else None

        self.reporter = Reporter(self._sinks(console) if ctx.is_main else [],
                                 total_steps=self.total_steps,
                                 global_batch=plan.global_batch_size,
                                 train_samples=len(data.train))
        self.loop = TrainLoop(spec, loop_parts(job, data, model, self.optimizer, self.schedule,
                                               self.scaler, plan, ctx, flops),
                              ctx, total_steps=self.total_steps,
                              micro_batch=plan.micro_batch_size, reporter=self.reporter,
                              save_checkpoint=self.save_checkpoint,
                              stop_requested=stop or StopFlag())

    # -- state ----------------------------------------------------------------------------
    def _parts(self, sharded: bool | None = None) -> dict[str, Stateful]:
        """Rank 0's share of a checkpoint, by file name (FSDP shards go through `_sharded`).

        `sharded`: how the checkpoint being loaded holds model and optimizer (default: as this
        run saves them). Either way loads into either kind of run: a checkpoint is not tied to
        the world size or strategy that wrote it (an elastic job resizes, a one-process run
        goes on sharded)."""
        sharded = self.fsdp if sharded is None else sharded
        parts: dict[str, Stateful] = {
            "loop.pt": self.loop.state,
            "schedule.pt": self.schedule,
            "preprocessing.json": _Preprocessing(self.data.state),
        }
        if not sharded:
            parts["model.pt"] = ModelWeights(self.model, fsdp=self.fsdp)
            parts["optim.pt"] = (OptimizerFromFull(self.model, self.optimizer) if self.fsdp
                                 else self.optimizer)
        if self.scaler is not None:
            parts["scaler.pt"] = self.scaler
        return parts

    def _sharded(self, sharded: bool | None = None) -> Stateful | None:
        sharded = self.fsdp if sharded is None else sharded
        return ShardedTrainState(self.model, self.optimizer) if sharded else None

    def resume(self) -> None:
        """Load the newest usable checkpoint, if any (refusing one written for another job);
        then the reporting continues from that step (records past it are dropped)."""
        if self.resume_from is not None:
            self._load(self.resume_from)
        self.reporter.start(self.loop.state.step)

    def _load(self, path: Location) -> None:
        manifest = read_manifest(path)
        changes = guard_changes(manifest.guard, self.guard)
        if changes:  # written for another job: refused before any part is read
            raise InvalidJob(mismatch_message(str(path), changes))
        self.checkpointer.load(path, main=self._parts(manifest.sharded),
                               per_rank={"rng": RNGState()},
                               sharded=self._sharded(manifest.sharded), manifest=manifest)
        if manifest.world != self.ctx.world:  # another world size: a fresh stream per rank
            seed = hash((self.job.spec.training.seed, manifest.step, self.ctx.rank))
            torch.manual_seed(seed & 0xFFFF_FFFF)
        if self.ctx.is_main:
            print(f"kubetrain: resuming from {path} at step {self.loop.state.step}",
                  file=sys.stderr)

    def save_checkpoint(self, kind: SaveKind) -> None:
        """Save every part, unless a weight is NaN or infinite: such a checkpoint would only
        make every later attempt resume into the same divergence."""
        step = self.loop.state.step
        self.reporter.beat(step, force=True)
        if any_rank(not all_finite(self.model), self.ctx):
            saved = self.checkpointer.complete()
            kept = f"the last checkpoint is {saved[-1]}" if saved else "no checkpoint was kept"
            raise Diverged(f"the weights became NaN or infinite by step {step} and were not"
                           f" saved ({kept}); lower optimizer.lr or set training.gradClipNorm")
        path = self.checkpointer.save(step, main=self._parts(), per_rank={"rng": RNGState()},
                                      sharded=self._sharded(), guard=self.guard,
                                      name="best" if kind == "best" else None)
        if kind != "best":
            self.reporter.checkpointed(CheckpointRef(step=step, path=str(path),
                                                     time=now_rfc3339()))

    def finish(self, outcome: Outcome) -> ExitCode:
        """Save the trained model (unless interrupted) and close the reporting."""
        if outcome.reason != "interrupted":
            weights = full_model_state(self.model, self.fsdp)  # collective under FSDP
            if self.ctx.is_main:
                p = self.reporter.progress
                summary = {"steps": outcome.step, "reason": outcome.reason,
                           "base": str(self.base or ""), "valLoss": p.val_loss,
                           "metrics": p.metrics}
                out = save_final_model(self.run_dir, self.job, weights,
                                       self.data.state.to_dict(), self.data.shapes, summary)
                write_tokenizer_file(out, getattr(self.data.state, "tokenizer", None))
        barrier(self.ctx)
        self.reporter.finish(self.loop.state.step)
        return ExitCode.INTERRUPTED if outcome.reason == "interrupted" else ExitCode.SUCCEEDED

    # -- reporting ------------------------------------------------------------------------
    def _sinks(self, console: bool) -> list[Sink]:
        sinks: list[Sink] = [RunDirSink(self.run_dir)]
        if console:
            sinks.insert(0, ConsoleSink(self.job.metadata.name, self.total_steps))
        if self.job.spec.training.logging.tensorboard:
            sinks.append(TensorBoardSink(self.run_dir))
        kube = sink_for_pod(self.job)
        if kube is not None:
            sinks.append(kube)
        return sinks

    def _beat(self) -> None:
        self.reporter.beat(self.loop.state.step, force=True)


class _Preprocessing:
    """The fitted preprocessing as a checkpoint part. It is read before the data is built
    (`Trainer.__init__`), so loading it again only checks that it is the same state."""

    def __init__(self, state: PreprocessingState):
        self.state = state

    def state_dict(self) -> dict[str, object]:
        return self.state.to_dict()

    def load_state_dict(self, state: dict[str, object]) -> None:
        if state_from_dict(state) != self.state:  # type: ignore[arg-type]
            raise CheckpointError("the checkpoint's preprocessing differs from the one in use")
