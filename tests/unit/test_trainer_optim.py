"""Optimization: no-decay groups, l1, schedules."""

from __future__ import annotations

import math

import pytest
import torch

from kubetrain.api.optim import Optimizer, Scheduler
from kubetrain.models.gpt import GPT, GPTArgs
from kubetrain.optim.build import build_optimizer, l1_penalty, split_decay
from kubetrain.optim.schedule import Schedule


def test_biases_norms_and_embeddings_are_not_decayed() -> None:
    model = GPT(GPTArgs(layers=1, heads=2, width=16, context=8, bias=True), 10)
    names = {id(p): n for n, p in model.named_parameters()}
    decay, keep = split_decay(model, Optimizer().no_decay)
    assert all(names[id(p)].endswith("weight") and "ln_" not in names[id(p)] for p in decay)
    kept = {names[id(p)] for p in keep}
    assert "transformer.wte.weight" in kept and "transformer.h.0.ln_1.weight" in kept
    assert "transformer.h.0.attn.c_attn.bias" in kept
    # Tied weights appear once in total.
    assert len(decay) + len(keep) == len({id(p) for p in model.parameters()})
    opt = build_optimizer(model, Optimizer(weight_decay=0.1))
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0]


def test_l1_applies_to_the_decayed_group_only() -> None:
    lin = torch.nn.Linear(3, 1)
    with torch.no_grad():
        lin.weight.fill_(-2.0)
        lin.bias.fill_(5.0)
    opt = build_optimizer(lin, Optimizer(l1=0.5))
    assert float(l1_penalty(opt).detach()) == pytest.approx(0.5 * 6.0)


def test_warmup_then_cosine_to_the_floor() -> None:
    s = Schedule(Scheduler(type="cosine", warmup_steps=10, min_lr_ratio=0.1), 1.0, 110)
    assert s.factor(0) == pytest.approx(1 / 11)
    assert s.factor(9) == pytest.approx(10 / 11)
    assert s.factor(10) == pytest.approx(1.0)
    assert s.factor(60) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert s.factor(110) == pytest.approx(0.1)


def test_warmup_ratio_linear_step_and_exponential() -> None:
    assert Schedule(Scheduler(type="linear", warmup_ratio=0.1), 1.0, 100).warmup == 10
    lin = Schedule(Scheduler(type="linear"), 2.0, 100)
    assert lin.factor(50) == pytest.approx(0.5)
    step = Schedule(Scheduler(type="step", step_size=10, gamma=0.5), 1.0, 100)
    assert step.factor(25) == pytest.approx(0.25)
    exp = Schedule(Scheduler(type="exponential", gamma=0.9, min_lr_ratio=0.5), 1.0, 100)
    assert exp.factor(2) == pytest.approx(0.81) and exp.factor(50) == pytest.approx(0.5)


def test_plateau_reduces_after_patience_and_round_trips() -> None:
    s = Schedule(Scheduler(type="plateau", patience=1, gamma=0.5), 1.0, 100)
    for v in (1.0, 1.1, 1.2):
        s.on_eval(v)
    assert s.factor(50) == pytest.approx(0.5)
    t = Schedule(Scheduler(type="plateau", patience=1, gamma=0.5), 1.0, 100)
    t.load_state_dict(s.state_dict())
    assert t.factor(50) == pytest.approx(0.5)
