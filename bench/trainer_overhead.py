"""kubetrain's loop against a minimal hand-written PyTorch loop: same model, data, batch.

    python bench/trainer_overhead.py [--steps 100] [--repeats 5] [--chunk 10] [--rounds 5]
                                     [--startup 3] [--against kubetrain|hand]

Both loops start from the same initial weights and take turns of --chunk steps (ABBA order) in
one process. Both set the lr from the same cosine schedule each step, clip gradients (gpt) and
read the loss on the host every `logging.everySteps` steps. Rates are reported from CPU time
(one thread: robust on a shared machine, where wall time also measures the neighbours) and from
wall time; the ratio is also given per round (the turns split into --rounds equal parts) as
median [min–max], the spread a loaded machine leaves. `--against hand` times the hand-written
loop against a second copy of itself: the noise floor of the ratio. Also times `kubetrain run`
to its first training step against `python -c "import torch"`.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from kubetrain.api.job import TrainingJob
from kubetrain.api.loader import load_job
from kubetrain.data.build import DataBundle, build_data
from kubetrain.models.registry import build_model
from kubetrain.optim.build import build_optimizer
from kubetrain.optim.schedule import Schedule
from kubetrain.reporting.reporter import Reporter
from kubetrain.trainer.distributed import DistContext
from kubetrain.trainer.loop import TrainLoop
from kubetrain.trainer.parts import loop_parts
from kubetrain.trainer.trainer import plan_for

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {
    "gpt": ROOT / "examples/char-gpt-shakespeare.yaml",
    "mlp": ROOT / "examples/quickstart.yaml",
    "hf": ROOT / "bench/hf-tiny-llama.yaml",  # a transformers Llama (models/hf.py)
}


class HandLoop:
    """What one writes by hand: sample a batch, forward, backward, clip, step."""

    def __init__(self, job: TrainingJob, model: torch.nn.Module, opt: torch.optim.Optimizer,
                 schedule: Schedule, data: object, lm: bool):
        t = job.spec.training
        self.model, self.opt, self.schedule, self.lm = model, opt, schedule, lm
        self.b, self.log_every, self.clip = (t.global_batch_size, t.logging.every_steps,
                                             t.grad_clip_norm)
        self.g = torch.Generator().manual_seed(0)
        if lm:
            self.tokens = torch.from_numpy(data.tokens.astype("int64"))  # type: ignore[attr-defined]
            self.seq = data.seq_len  # type: ignore[attr-defined]
        else:
            self.x, self.y = data.x, data.y  # type: ignore[attr-defined]
        self.step = 0
        model.train()

    def run(self, steps: int) -> None:
        model, opt = self.model, self.opt
        for _ in range(steps):
            for group in opt.param_groups:
                group["lr"] = self.schedule.peak * self.schedule.factor(self.step)
            if self.lm:
                ix = torch.randint(len(self.tokens) - self.seq - 1, (self.b,), generator=self.g)
                x = torch.stack([self.tokens[i:i + self.seq] for i in ix])
                y = torch.stack([self.tokens[i + 1:i + 1 + self.seq] for i in ix])
                logits = model(x)
                loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
            else:
                ix = torch.randint(len(self.x), (self.b,), generator=self.g)
                loss = F.cross_entropy(model(self.x[ix]), self.y[ix])
            loss.backward()
            if self.clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), self.clip)
            opt.step()
            opt.zero_grad(set_to_none=True)
            self.step += 1
            if self.step % self.log_every == 0:
                loss.item()


class KubetrainLoop:
    """kubetrain's TrainLoop with its real parts, driven step by step as `fit` drives it (stop
    check, step, heartbeat, timing, logging), minus evaluation and checkpoints (file I/O)."""

    def __init__(self, job: TrainingJob, model: torch.nn.Module, opt: torch.optim.Optimizer,
                 schedule: Schedule, data: DataBundle):
        total_steps = 10**9  # never reached: no end-of-run logging or evaluation in the timing
        plan = plan_for(job, len(data.train))
        ctx = DistContext()
        parts = loop_parts(job, data, model, opt, schedule, None, plan, ctx, None)
        reporter = Reporter([], total_steps=total_steps, global_batch=plan.global_batch_size,
                            train_samples=len(data.train))
        self.loop = TrainLoop(job.spec, parts, ctx, total_steps=total_steps,
                              micro_batch=plan.micro_batch_size, reporter=reporter)
        self.loop.begin()

    def run(self, steps: int) -> None:
        for _ in range(steps):
            self.loop.should_stop()
            self.loop.step()


def compare(name: str, steps: int, repeats: int, chunk: int, rounds: int = 5,
            against: str = "kubetrain") -> dict[str, Any]:
    """Both loops advance `chunk` steps in turn (ABBA order) until each did steps × repeats;
    the ratio is of the summed times, so load changes on a shared machine hit both alike.
    `against`: the loop timed against the hand-written one (`hand`: a second copy of it)."""
    job = load_job(CONFIGS[name])
    if name == "hf" and not (ROOT / "examples/models/tiny-llama/config.json").is_file():
        subprocess.run([sys.executable, str(ROOT / "examples/models/make_tiny_llama.py")],
                       check=True)
    data = build_data(job.spec, base=CONFIGS[name].parent)  # paths are relative to the file
    torch.manual_seed(0)
    model0 = build_model(job.spec.model, data.shapes, CONFIGS[name].parent)
    loops = {}
    for impl in ("hand", "other"):
        model = copy.deepcopy(model0)
        opt = build_optimizer(model, job.spec.optimizer)
        total = job.spec.training.max_steps or steps
        schedule = Schedule(job.spec.scheduler, job.spec.optimizer.lr, total)
        loops[impl] = (HandLoop(job, model, opt, schedule, data.train, data.shapes.task == "lm")
                       if impl == "hand" or against == "hand" else
                       KubetrainLoop(job, model, opt, schedule, data))
    for loop in loops.values():  # warm-up, not timed
        loop.run(chunk)
    turns = max(steps * repeats // chunk, 2 * rounds)
    turns -= turns % (2 * rounds)  # whole ABBA pairs in every round
    seconds = {"hand": 0.0, "other": 0.0}
    cpu = {"hand": [0.0] * rounds, "other": [0.0] * rounds}
    for t in range(turns):
        order = ("hand", "other") if t % 2 == 0 else ("other", "hand")
        for impl in order:
            t0, c0 = time.perf_counter(), time.process_time()
            loops[impl].run(chunk)
            seconds[impl] += time.perf_counter() - t0
            cpu[impl][t * rounds // turns] += time.process_time() - c0
    total = turns * chunk
    hand, other = total / sum(cpu["hand"]), total / sum(cpu["other"])
    wall_hand, wall_other = total / seconds["hand"], total / seconds["other"]
    per_round = [h / o for h, o in zip(cpu["hand"], cpu["other"], strict=True)]
    return {"hand_steps_per_s": hand, "kubetrain_steps_per_s": other, "ratio": other / hand,
            "round_ratios": per_round, "wall_hand_steps_per_s": wall_hand,
            "wall_kubetrain_steps_per_s": wall_other, "wall_ratio": wall_other / wall_hand}


def startup(repeats: int) -> dict[str, float]:
    """Seconds from launching `kubetrain run` to its first training step, vs importing torch."""
    torch_s, first_s = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import torch"], check=True)
        torch_s.append(time.perf_counter() - t0)
        with tempfile.TemporaryDirectory() as tmp:
            run_dir = Path(tmp) / "run"
            t0 = time.time()
            subprocess.run([sys.executable, "-m", "kubetrain", "run", str(CONFIGS["mlp"]),
                            "--run-dir", str(run_dir), "--no-progress",
                            "--set", "spec.training.maxSteps=1"], check=True, cwd=ROOT,
                           capture_output=True)
            first = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[0])
            stamp = datetime.datetime.fromisoformat(first["time"].replace("Z", "+00:00"))
            first_s.append(stamp.timestamp() - t0)
    return {"import_torch_s": statistics.median(torch_s),
            "kubetrain_first_step_s": statistics.median(first_s)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--startup", type=int, default=3, help="startup repeats (0 skips)")
    p.add_argument("--configs", nargs="*", default=list(CONFIGS))
    p.add_argument("--chunk", type=int, default=10, help="steps per turn")
    p.add_argument("--rounds", type=int, default=5, help="parts the ratio is also given for")
    p.add_argument("--against", choices=["kubetrain", "hand"], default="kubetrain",
                   help="loop timed against the hand-written one (hand: the noise floor)")
    args = p.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for name in args.configs:
        r = compare(name, args.steps, args.repeats, args.chunk, args.rounds, args.against)
        rr = r["round_ratios"]
        print(f"{name:>4}: CPU time: hand {r['hand_steps_per_s']:8.1f} steps/s  {args.against} "
              f"{r['kubetrain_steps_per_s']:8.1f} steps/s  ratio {r['ratio']:.3f} (rounds: median"
              f" {statistics.median(rr):.3f} [{min(rr):.3f}–{max(rr):.3f}])   |   wall:"
              f" {r['wall_hand_steps_per_s']:.1f} vs {r['wall_kubetrain_steps_per_s']:.1f}"
              f" steps/s  ratio {r['wall_ratio']:.3f}", flush=True)
    if args.startup:
        s = startup(args.startup)
        print(f"startup: import torch {s['import_torch_s']:.2f} s   kubetrain run → first step "
              f"{s['kubetrain_first_step_s']:.2f} s")


if __name__ == "__main__":
    main()
