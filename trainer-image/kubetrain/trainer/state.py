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
    trains, plus buffers: the adapters, not the base. With `fsdp`, these full weights (written
    by a run without FSDP) are loaded into this run's shards."""

    def __init__(self, model: nn.Module, fsdp: bool = False):
        self.model, self.fsdp = model, fsdp

    def state_dict(self) -> dict[str, Any]:
        m = unwrap(self.model)
        state = m.state_dict()
        frozen = frozen_names(m)
        return {k: v for k, v in state.items() if k not in frozen}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        m = unwrap(self.model)
        frozen = frozen_names(m)
        if self.fsdp:
            from torch.distributed.checkpoint.state_dict import (
                StateDictOptions,
                set_model_state_dict,
            )

            # Every rank holds the full tensors (read from model.pt) and keeps its own shards.
            missing, unexpected = set_model_state_dict(
                self.model, state, options=StateDictOptions(full_state_dict=True, strict=False))
        elif not frozen:
            m.load_state_dict(state)
            return
        else:
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
    """Model and optimizer of an FSDP2 run as one sharded state (each rank holds its shards).

    torch.distributed.checkpoint reshards on load, so any world size reads it back; a run
    without FSDP (DDP, or one process) loads it too, each rank reading whole tensors."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer):
        self.model, self.optimizer = model, optimizer

    def _options(self) -> Any:
        from torch.distributed.checkpoint.state_dict import StateDictOptions

        # Frozen weights rebuilt from their source are neither saved nor expected back.
        only_trainable = bool(getattr(unwrap(self.model), "frozen_from_source", False))
        return StateDictOptions(ignore_frozen_params=only_trainable, strict=not only_trainable)

    def state_dict(self) -> dict[str, Any]:
        from torch.distributed.checkpoint.state_dict import get_state_dict

        model_sd, optim_sd = get_state_dict(self.model, self.optimizer, options=self._options())
        return {"model": model_sd, "optim": optim_sd}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        from torch.distributed.checkpoint.state_dict import set_state_dict

        set_state_dict(self.model, self.optimizer, model_state_dict=state["model"],
                       optim_state_dict=state["optim"], options=self._options())


class OptimizerFromFull:
    """An optimizer state written without FSDP (`optimizer.state_dict()`, parameters by
    position), loaded into an FSDP run's shards: positions become parameter names, which
    `set_optimizer_state_dict` shards. Load only: FSDP runs save through ShardedTrainState."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer):
        self.model, self.optimizer = model, optimizer

    def state_dict(self) -> dict[str, Any]:
        raise NotImplementedError("an FSDP run saves its optimizer through ShardedTrainState")

    def load_state_dict(self, state: dict[str, Any]) -> None:
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            set_optimizer_state_dict,
        )

        # Positions count the parameters group after group, as Optimizer.state_dict numbers
        # them; the groups hold the same parameters in the same order under any wrapper
        # (optim/build.py: split_decay walks named_parameters).
        name_of = {p: _bare(n) for n, p in self.model.named_parameters()}
        names = [name_of[p] for g in self.optimizer.param_groups for p in g["params"]]
        saved_groups = state["param_groups"]
        if [len(g["params"]) for g in saved_groups] != [
                len(g["params"]) for g in self.optimizer.param_groups]:
            raise RuntimeError("the checkpoint's optimizer groups do not fit the model's")
        by_name = {
            "state": {names[i]: s for i, s in state["state"].items()},
            "param_groups": [{**g, "params": [names[i] for i in g["params"]]}
                             for g in saved_groups],
        }
        set_optimizer_state_dict(self.model, self.optimizer, by_name,
                                 options=StateDictOptions(full_state_dict=True))


def _bare(name: str) -> str:
    """A parameter's name without torch.compile's and DDP's prefixes (as DCP names it)."""
    return name.replace("_orig_mod.", "").removeprefix("module.")


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
