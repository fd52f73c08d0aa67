"""Gradient accumulation: one global batch B equals k micro-batches, to float tolerance."""

from __future__ import annotations

import copy

import torch
from torch import nn

from kubetrain.api.optim import Optimizer
from kubetrain.metrics.losses import IGNORE, summed_loss
from kubetrain.models.gpt import GPT, GPTArgs
from kubetrain.optim.build import build_optimizer
from kubetrain.trainer.step import accumulate_gradients, optimizer_step


def _step(model: nn.Module, batches: list, loss: str, count: int) -> tuple[dict, float]:
    model = copy.deepcopy(model)
    opt = build_optimizer(model, Optimizer(type="adamw", lr=1e-2, weight_decay=0.1))
    total = accumulate_gradients(model, opt, batches, summed_loss(loss), float(count))
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    optimizer_step(model, opt, clip=1.0, want_norm=True)
    return {**grads, **{f"param:{n}": p.detach() for n, p in model.state_dict().items()}}, \
        float(total)


def _assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)


def test_mlp_accumulation_equals_the_full_batch() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
    x, y = torch.randn(24, 6), torch.randint(0, 3, (24,))
    full, loss_full = _step(model, [(x, y)], "cross_entropy", 24)
    # Uneven micro-batches: a per-micro-batch mean would weight them wrongly.
    parts = [(x[:4], y[:4]), (x[4:16], y[4:16]), (x[16:], y[16:])]
    acc, loss_acc = _step(model, parts, "cross_entropy", 24)
    _assert_same(full, acc)
    assert abs(loss_full - loss_acc) < 1e-5


def test_gpt_accumulation_is_normalised_per_token() -> None:
    torch.manual_seed(0)
    model = GPT(GPTArgs(layers=2, heads=2, width=16, context=8), 11)
    x = torch.randint(0, 11, (6, 8))
    y = torch.randint(0, 11, (6, 8))
    y[0, 3:] = IGNORE  # padding: micro-batches hold different numbers of real tokens
    y[4, 1:] = IGNORE
    tokens = int((y != IGNORE).sum())
    full, loss_full = _step(model, [(x, y)], "cross_entropy", tokens)
    acc, loss_acc = _step(model, [(x[:1], y[:1]), (x[1:4], y[1:4]), (x[4:], y[4:])],
                          "cross_entropy", tokens)
    _assert_same(full, acc)
    with torch.no_grad():
        want = torch.nn.functional.cross_entropy(model(x).reshape(-1, 11), y.reshape(-1))
    assert abs(loss_full - float(want)) < 1e-5 and abs(loss_acc - loss_full) < 1e-5


def test_activation_checkpointing_gives_the_same_gradients() -> None:
    torch.manual_seed(0)
    model = GPT(GPTArgs(layers=2, heads=2, width=16, context=8), 11)
    x, y = torch.randint(0, 11, (3, 8)), torch.randint(0, 11, (3, 8))
    plain, _ = _step(model, [(x, y)], "cross_entropy", 24)
    model.activation_checkpointing = True
    recomputed, _ = _step(model, [(x, y)], "cross_entropy", 24)
    _assert_same(plain, recomputed)


def test_bf16_autocast_on_cpu_trains_close_to_fp32() -> None:
    from kubetrain.trainer.step import autocast_for

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 3))
    x, y = torch.randn(64, 6), torch.randint(0, 3, (64,))
    opt = build_optimizer(model, Optimizer())
    fp32 = accumulate_gradients(model, opt, [(x, y)], summed_loss("cross_entropy"), 64.0)
    opt.zero_grad()
    bf16 = accumulate_gradients(model, opt, [(x, y)], summed_loss("cross_entropy"), 64.0,
                                autocast=autocast_for(torch.device("cpu"), "bf16-mixed"))
    assert abs(float(fp32) - float(bf16)) < 2e-2 and float(bf16) != float(fp32)
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in model.parameters())


def test_evaluation_beats_between_batches() -> None:
    from kubetrain.data.samples import TensorSamples
    from kubetrain.metrics.evaluation import EvalSums
    from kubetrain.trainer.loop import evaluate_split

    model = nn.Linear(4, 2)
    split = TensorSamples(torch.randn(50, 4), torch.randint(0, 2, (50,)))
    beats: list[int] = []
    loss, m = evaluate_split(model, split, summed_loss("cross_entropy"),
                             EvalSums("classification", 2), ["accuracy"], batch_size=8,
                             beat=lambda: beats.append(1))
    assert len(beats) == 7 and 0 <= m["accuracy"] <= 1  # ceil(50 / 8) batches
    with torch.no_grad():
        want = torch.nn.functional.cross_entropy(model(split.x), split.y)
    assert abs(loss - float(want)) < 1e-5
