"""Process group from torchrun's environment; DDP and FSDP2 wrapping; small collectives."""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from kubetrain.api.status import Plan


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: rank, world size, device."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    control: Any = None
    """A gloo group for host-side agreement (stop flags) without a device sync; None: default."""

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def torchrun_env() -> tuple[int, int, int] | None:
    """(rank, world, local rank) when started by torchrun, else None."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return None
    return (int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]),
            int(os.environ.get("LOCAL_RANK", "0")))


def init_distributed(plan: Plan, timeout_seconds: int) -> DistContext:
    """Join the process group torchrun prepared (or stay single-process)."""
    env = torchrun_env()
    cuda = plan.backend == "nccl" and torch.cuda.is_available()
    if env is None or env[1] == 1:
        return DistContext(device=torch.device("cuda", 0) if torch.cuda.is_available() else
                           torch.device("cpu"))
    rank, world, local = env
    device = torch.device("cuda", local) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(plan.backend or "gloo",
                                timeout=datetime.timedelta(seconds=timeout_seconds),
                                device_id=device if cuda else None)
    # NCCL collectives need device tensors (a sync to read); control flags go over gloo.
    control = dist.new_group(backend="gloo") if cuda else None
    return DistContext(rank, world, local, device, control)


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def wrap_model(model: nn.Module, strategy: str | None, ctx: DistContext,
               precision: str) -> nn.Module:
    """DDP, or FSDP2 (`fully_shard` per transformer block/decoder layer/stage, then the root)."""
    if not ctx.distributed or strategy in (None, "none"):
        return model
    if strategy == "fsdp":
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        mp = (MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
              if precision == "bf16-mixed" else MixedPrecisionPolicy())
        # The model's own list of units (hf: its decoder layers), else the gpt's blocks or the
        # cnn's stages.
        blocks = (model.fsdp_blocks() if hasattr(model, "fsdp_blocks") else
                  getattr(getattr(model, "transformer", None), "h", None) or getattr(
                      model, "stages", None) or [])
        for block in blocks:
            fully_shard(block, mp_policy=mp)
        fully_shard(model, mp_policy=mp)
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DDP(model, device_ids=ids)


def all_reduce(t: torch.Tensor, ctx: DistContext, op: str = "sum") -> torch.Tensor:
    """In-place all-reduce (sum/max/avg); a no-op in a single process."""
    if ctx.distributed:
        reduce_op = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX,
                     "avg": dist.ReduceOp.SUM}[op]
        dist.all_reduce(t, op=reduce_op)
        if op == "avg":
            t /= ctx.world
    return t


def any_rank(flag: bool, ctx: DistContext) -> bool:
    """True on every rank when it is True on any rank (host tensors: no device sync)."""
    if not ctx.distributed:
        return flag
    t = torch.tensor([1 if flag else 0], dtype=torch.int32)
    dist.all_reduce(t, op=dist.ReduceOp.MAX, group=ctx.control)
    return bool(t.item())


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()


def unwrap(model: nn.Module) -> nn.Module:
    """The user's module under DDP and torch.compile wrappers."""
    model = getattr(model, "_orig_mod", model)
    return getattr(model, "module", model)
