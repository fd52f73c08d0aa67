"""Stateful adapters for what torch does not already expose as state_dict/load_state_dict."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from torch import nn

from kubetrain.trainer.distributed import unwrap


class RNGState:
    """This process's random streams (python, numpy, torch, cuda), as tensors and plain data
    so checkpoints load with `weights_only=True`."""

    def state_dict(self) -> dict[str, Any]:
        algo, key, pos, has_gauss, gauss = np.random.get_state()
        state: dict[str, Any] = {
            "python": random.getstate(),
            "numpy": {"algo": algo, "key": torch.from_numpy(key.astype(np.int64)),
                      "pos": int(pos), "has_gauss": int(has_gauss), "gauss": float(gauss)},
            "torch": torch.get_rng_state(),
        }
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        version, internal, gauss_next = state["python"]
        random.setstate((version, tuple(internal), gauss_next))
        n = state["numpy"]
        np.random.set_state((n["algo"], n["key"].numpy().astype(np.uint32), n["pos"],
                             n["has_gauss"], n["gauss"]))
        torch.set_rng_state(state["torch"])
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])


class ModelWeights:
    """The user's module's weights, under whatever DDP or torch.compile wrapper it runs in.

    A model whose frozen weights are rebuilt from their source on every start (an hf model
    from its directory, with LoRA or frozen patterns: `frozen_from_source`) saves only what
    trains, plus buffers: the adapters, not the base."""

    def __init__(self, model: nn.Module):
        self.model = model

    def state_dict(self) -> dict[str, Any]:
        m = unwrap(self.model)
        state = m.state_dict()
        frozen = frozen_names(m)
        return {k: v for k, v in state.items() if k not in frozen}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        m = unwrap(self.model)
        frozen = frozen_names(m)
        if not frozen:
            m.load_state_dict(state)
            return
        missing, unexpected = m.load_state_dict(state, strict=False)
        lost = sorted(set(missing) - frozen)
        if lost or unexpected:
            raise RuntimeError(f"the checkpoint's weights do not fit the model (missing"
                               f" {lost[:3]}, unexpected {list(unexpected)[:3]})")


def frozen_names(model: nn.Module) -> set[str]:
    """State-dict keys of frozen parameters not saved in checkpoints (see ModelWeights)."""
    if not getattr(model, "frozen_from_source", False):
        return set()
    return {n for n, p in model.named_parameters(remove_duplicate=False) if not p.requires_grad}


class ShardedTrainState:
    """Model and optimizer of an FSDP2 run as one sharded state (each rank holds its shards)."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer):
        self.model, self.optimizer = model, optimizer

    def _options(self) -> Any:
        from torch.distributed.checkpoint.state_dict import StateDictOptions

        # Frozen weights rebuilt from their source are neither saved nor expected back.
        only_trainable = bool(getattr(self.model, "frozen_from_source", False))
        return StateDictOptions(ignore_frozen_params=only_trainable, strict=not only_trainable)

    def state_dict(self) -> dict[str, Any]:
        from torch.distributed.checkpoint.state_dict import get_state_dict

        model_sd, optim_sd = get_state_dict(self.model, self.optimizer, options=self._options())
        return {"model": model_sd, "optim": optim_sd}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        from torch.distributed.checkpoint.state_dict import set_state_dict

        set_state_dict(self.model, self.optimizer, model_state_dict=state["model"],
                       optim_state_dict=state["optim"], options=self._options())


def full_model_state(model: nn.Module, fsdp: bool) -> dict[str, torch.Tensor]:
    """Every weight, gathered on the CPU (collective under FSDP: every rank calls it)."""
    if fsdp:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True,
                                                                    cpu_offload=True))
    return {k: v.detach().cpu() for k, v in unwrap(model).state_dict().items()}


def all_finite(model: nn.Module) -> bool:
    """False when any of this rank's weights is NaN or infinite (FSDP: its own shards; the
    caller agrees across ranks). One device sync: called at checkpoints only."""
    flags = [torch.isfinite(_local(p.detach())).all() for p in model.parameters()]
    return bool(torch.stack(flags).all()) if flags else True


def _local(t: torch.Tensor) -> torch.Tensor:
    """A DTensor's local shard, or the tensor itself."""
    return t.to_local() if hasattr(t, "to_local") else t
