"""Optimizer from `spec.optimizer`, with weight decay and l1 only on the decayed group."""

from __future__ import annotations

import fnmatch

import torch
from torch import nn

from kubetrain.api.optim import Optimizer


def split_decay(model: nn.Module, no_decay: list[str]) -> tuple[list[nn.Parameter],
                                                                 list[nn.Parameter]]:
    """Trainable parameters (each once, tied ones too) → (decayed, not decayed) by name pattern."""
    decay, keep = [], []
    seen: set[int] = set()
    for name, p in model.named_parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        # DDP/FSDP/compile wrappers prefix names; match on the model's own name.
        bare = name.removeprefix("_orig_mod.").removeprefix("module.")
        (keep if any(fnmatch.fnmatchcase(bare, pat) for pat in no_decay) else decay).append(p)
    return decay, keep


def build_optimizer(model: nn.Module, spec: Optimizer) -> torch.optim.Optimizer:
    decay, keep = split_decay(model, spec.no_decay)
    groups = [{"params": decay, "weight_decay": spec.weight_decay, "l1": spec.l1},
              {"params": keep, "weight_decay": 0.0, "l1": 0.0}]
    groups = [g for g in groups if g["params"]]
    if spec.type == "sgd":
        return torch.optim.SGD(groups, lr=spec.lr, momentum=spec.momentum, nesterov=spec.nesterov)
    cls = torch.optim.AdamW if spec.type == "adamw" else torch.optim.Adam
    return cls(groups, lr=spec.lr, betas=spec.betas, eps=spec.eps)


def l1_penalty(optimizer: torch.optim.Optimizer) -> torch.Tensor | None:
    """Σ l1·|w| over the groups with l1 > 0 (added once per optimizer step)."""
    terms = [g["l1"] * sum(p.abs().sum() for p in g["params"])
             for g in optimizer.param_groups if g.get("l1")]
    return sum(terms) if terms else None  # type: ignore[return-value]
