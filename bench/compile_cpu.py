"""torch.compile variants of the char-GPT training step on CPU: CPU time per step, interleaved.

    OMP_NUM_THREADS=1 python bench/compile_cpu.py eager,default
    OMP_NUM_THREADS=1 python bench/compile_cpu.py eager,cppwrap-atengelu

Each variant trains its own copy of examples/char-gpt-shakespeare.yaml's model (same initial
weights, same batches as kubetrain's data order) with the loop's step: forward, mean loss,
backward, clip, AdamW. Warm-up (the compile) is timed apart; then the variants take turns of
CHUNK steps for ROUNDS rounds (environment, defaults 10 and 6), in alternating order; CPU and
wall time per step are printed. A variant is `eager` or `default` or a dash-joined set of:
`cppwrap` (inductor's cpp_wrapper), `maxat` (mode max-autotune-no-cudagraphs), `copt` (the
optimizer step compiled too), `coptclip` (clipping and the optimizer step compiled as one
function), `fused` (AdamW fused=True), `ca` (compiled autograd: the backward traced and compiled
as one graph, gradient accumulation included), `step` (the whole step, forward + loss + backward
+ clip + AdamW, one compiled function under compiled autograd), `atengelu` (inductor calls
ATen's GELU forward and backward kernels instead of generating its own from the erf
decomposition). Every compiled variant uses dynamic=False. The first variant is the baseline of
the speedups. At most one compiled variant per process: dynamo keys its cache on the forward's
code, so a second compiled copy of the same model class would reuse the first one's graph (with
the first one's options) instead of compiling its own.
"""

from __future__ import annotations

import copy
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch._dynamo.config as dynamo_config
import torch._inductor.config as inductor_config
from torch._dynamo import compiled_autograd

from kubetrain.api.loader import load_job
from kubetrain.data.build import build_data
from kubetrain.data.order import BatchOrder
from kubetrain.metrics.losses import loss_for
from kubetrain.models.registry import build_model
from kubetrain.optim.build import build_optimizer

CONFIG = Path(__file__).resolve().parents[1] / "examples/char-gpt-shakespeare.yaml"


def use_aten_gelu() -> None:
    """Make inductor call ATen's GELU kernels (forward and backward) instead of decomposing them:
    on AVX2 its generated GELU is ~1.6x slower than ATen's (bench notes in docs/benchmarks.md)."""
    from torch._inductor import decomposition, lowering

    # The compile caches' keys do not cover the decomposition table: a cached graph compiled
    # with inductor's own GELU would be reused.
    torch._functorch.config.enable_autograd_cache = False
    inductor_config.fx_graph_cache = False
    for op in (torch.ops.aten.gelu, torch.ops.aten.gelu_backward):
        for name in op.overloads():
            decomposition.decompositions.pop(getattr(op, name), None)
        lowering.make_fallback(op, override_decomp=True)


def variant_step(variant: str, model0: torch.nn.Module, job: Any, batch: Callable[[int], Any],
                 loss_fn: Any) -> tuple[Callable[[int], torch.Tensor], dict[str, Any]]:
    """One training step of this variant, and the inductor options to compile it under."""
    flags = set(variant.split("-"))
    if "atengelu" in flags:
        use_aten_gelu()
    model = copy.deepcopy(model0)
    opt = build_optimizer(model, job.spec.optimizer)
    if "fused" in flags:
        o = job.spec.optimizer
        opt = torch.optim.AdamW(opt.param_groups, lr=o.lr, betas=o.betas, eps=o.eps, fused=True)
    options = {"cpp_wrapper": True} if "cppwrap" in flags else {}
    mode = "max-autotune-no-cudagraphs" if "maxat" in flags else None
    fwd = model if variant == "eager" else torch.compile(model, mode=mode, dynamic=False)
    params = list(model.parameters())
    clip = job.spec.training.grad_clip_norm

    def clip_and_step() -> None:
        torch.nn.utils.clip_grad_norm_(params, clip)
        opt.step()

    opt_step = torch.compile(opt.step, dynamic=False) if "copt" in flags else opt.step
    update = (torch.compile(clip_and_step, dynamic=False) if "coptclip" in flags else
              lambda: (torch.nn.utils.clip_grad_norm_(params, clip), opt_step()))

    def backward(loss: torch.Tensor) -> None:
        if "ca" in flags:
            with compiled_autograd._enable(torch.compile(dynamic=False)):
                loss.backward()
        else:
            loss.backward()

    def whole(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        loss = loss_fn(model(x), y, "mean")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.detach()

    if "step" in flags:
        compiled_whole = torch.compile(whole, dynamic=False)

        def step(i: int) -> torch.Tensor:
            with dynamo_config.patch(compiled_autograd=True):
                return compiled_whole(*batch(i))

        return step, options

    def step(i: int) -> torch.Tensor:
        x, y = batch(i)
        loss = loss_fn(fwd(x), y, "mean")
        backward(loss)
        update()
        opt.zero_grad(set_to_none=True)
        return loss.detach()

    return step, options


def main() -> None:
    variants = sys.argv[1].split(",") if len(sys.argv) > 1 else ["eager", "default"]
    if sum(v != "eager" for v in variants) > 1:
        sys.exit("one compiled variant per process (see the docstring): e.g. eager,default")
    chunk, rounds = int(os.environ.get("CHUNK", 10)), int(os.environ.get("ROUNDS", 6))
    job = load_job(CONFIG)
    data = build_data(job.spec, base=CONFIG.parent)
    torch.manual_seed(0)
    model0 = build_model(job.spec.model, data.shapes)
    loss_fn = loss_for("lm", "auto", data.shapes.num_outputs)
    order = BatchOrder(len(data.train), job.spec.training.global_batch_size, 0)

    def batch(step: int) -> Any:
        return data.train.batch(order.global_indices(step), order.epoch_of(step))

    steps = {}
    for v in variants:
        step, options = variant_step(v, model0, job, batch, loss_fn)
        c0, w0 = time.process_time(), time.perf_counter()
        with inductor_config.patch(options):
            for i in range(3):
                step(i)
        print(f"{v}: warm-up (compile) {time.process_time() - c0:.1f} s CPU,"
              f" {time.perf_counter() - w0:.1f} s wall", flush=True)
        steps[v] = step
    cpu, wall = dict.fromkeys(variants, 0.0), dict.fromkeys(variants, 0.0)
    i = 3
    for r in range(rounds):
        for v in variants if r % 2 == 0 else variants[::-1]:
            c0, w0 = time.process_time(), time.perf_counter()
            for k in range(chunk):
                steps[v](i + k)
            cpu[v] += time.process_time() - c0
            wall[v] += time.perf_counter() - w0
        i += chunk
    base, wbase, n = cpu[variants[0]], wall[variants[0]], rounds * chunk
    print(f"threads {torch.get_num_threads()}, load {os.getloadavg()[0]:.1f}")
    for v in variants:
        print(f"{v:>20}: {1000 * cpu[v] / n:7.1f} ms/step CPU (speedup {base / cpu[v]:.3f}),"
              f" {1000 * wall[v] / n:7.1f} ms wall ({wbase / wall[v]:.3f})")


if __name__ == "__main__":
    main()
