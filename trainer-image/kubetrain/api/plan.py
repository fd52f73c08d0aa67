"""The resolved plan: world size, batch arithmetic and length derived from a spec."""

from __future__ import annotations

import math

from kubetrain.api.spec import TrainingJobSpec
from kubetrain.api.status import Plan
from kubetrain.errors import InvalidJob


def procs_per_node(spec: TrainingJobSpec, gpus_per_node: int) -> int:
    """procsPerNode with 'auto' resolved: one per GPU, else one."""
    procs = spec.parallelism.procs_per_node
    if procs == "auto":
        return max(gpus_per_node, 1)
    return int(procs)


def resolve_plan(
    spec: TrainingJobSpec,
    *,
    gpus_per_node: int | None = None,
    train_samples: int | None = None,
) -> Plan:
    """Derive the numbers a run will use. gpus_per_node defaults to spec.resources.gpu."""
    gpus = spec.resources.gpu if gpus_per_node is None else gpus_per_node
    world = spec.parallelism.nodes * procs_per_node(spec, gpus)
    t = spec.training
    micro = t.micro_batch_size or t.global_batch_size // world
    if micro < 1 or t.global_batch_size % (micro * world):
        raise InvalidJob(
            f"spec.training.globalBatchSize: {t.global_batch_size} is not a multiple of "
            f"microBatchSize ({micro}) × world size ({world})"
        )
    strategy = spec.parallelism.strategy
    if strategy == "auto":
        strategy = "ddp" if world > 1 else "none"
    if strategy == "fsdp" and world < 2:
        raise InvalidJob("spec.parallelism.strategy: fsdp needs more than one process")
    backend = spec.parallelism.backend
    if backend == "auto":
        backend = "nccl" if gpus > 0 else "gloo"
    total = t.max_steps
    if total is None and train_samples is not None and t.epochs is not None:
        per_epoch = (
            train_samples // t.global_batch_size
            if spec.dataset.loader.drop_last
            else math.ceil(train_samples / t.global_batch_size)
        )
        if per_epoch < 1:
            raise InvalidJob(
                f"spec.training.globalBatchSize: {t.global_batch_size} is larger than the "
                f"training split ({train_samples} samples)"
            )
        total = per_epoch * t.epochs
    return Plan(
        world_size=world,
        micro_batch_size=micro,
        grad_accum_steps=t.global_batch_size // (micro * world),
        global_batch_size=t.global_batch_size,
        total_steps=total,
        strategy=strategy,
        backend=backend,
    )
