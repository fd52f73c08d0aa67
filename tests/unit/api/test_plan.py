"""The resolved plan: world size, batch arithmetic and length, table-driven."""

from __future__ import annotations

import pytest

from kubetrain.api.plan import resolve_plan
from kubetrain.api.spec import TrainingJobSpec
from kubetrain.errors import InvalidJob


def spec(**training_and_parallelism) -> TrainingJobSpec:
    training = {"maxSteps": 100, "globalBatchSize": 64}
    parallelism = {}
    for key, value in training_and_parallelism.items():
        (parallelism if key in {"nodes", "procsPerNode", "strategy", "backend"} else training)[
            key
        ] = value
    training = {k: v for k, v in training.items() if v is not None}
    return TrainingJobSpec.model_validate(
        {
            "dataset": {"type": "synthetic"},
            "model": {"type": "mlp"},
            "training": training,
            "parallelism": parallelism,
        }
    )


@pytest.mark.parametrize(
    ("kwargs", "gpus", "expected"),
    [
        ({}, 0, (1, 64, 1, "none", "gloo")),
        ({"procsPerNode": 2}, 0, (2, 32, 1, "ddp", "gloo")),
        ({"procsPerNode": 2, "microBatchSize": 8}, 0, (2, 8, 4, "ddp", "gloo")),
        ({"nodes": 2, "procsPerNode": "auto"}, 8, (16, 4, 1, "ddp", "nccl")),
        ({"nodes": 2, "procsPerNode": 8, "microBatchSize": 2}, 8, (16, 2, 2, "ddp", "nccl")),
        ({"procsPerNode": 4, "strategy": "fsdp"}, 4, (4, 16, 1, "fsdp", "nccl")),
        ({"procsPerNode": 2, "backend": "gloo"}, 2, (2, 32, 1, "ddp", "gloo")),
    ],
)
def test_plan(kwargs, gpus, expected) -> None:
    plan = resolve_plan(spec(**kwargs), gpus_per_node=gpus)
    got = (
        plan.world_size,
        plan.micro_batch_size,
        plan.grad_accum_steps,
        plan.strategy,
        plan.backend,
    )
    assert got == expected
    assert plan.global_batch_size == plan.world_size * plan.micro_batch_size * plan.grad_accum_steps


def test_auto_procs_is_checked_once_the_gpu_count_is_known() -> None:
    with pytest.raises(InvalidJob, match="globalBatchSize: 64 is not a multiple"):
        resolve_plan(spec(procsPerNode="auto"), gpus_per_node=3)


def test_epochs_become_steps_once_the_training_split_is_known() -> None:
    s = spec(maxSteps=None, epochs=3)
    assert resolve_plan(s).total_steps is None
    assert resolve_plan(s, train_samples=1000).total_steps == 3 * (1000 // 64)
    with pytest.raises(InvalidJob, match="larger than the training split"):
        resolve_plan(s, train_samples=10)


def test_progress_is_written_with_readable_numbers() -> None:
    from kubetrain.api.status import Progress

    progress = Progress(
        step=50, loss=0.05378969758749008, samples_per_second=1651.2209310738651,
        metrics={"r2": 0.9764954861508021}, history=[{"step": 50, "valLoss": 0.023725991994142534}],
    )  # fmt: skip
    shown = progress.to_yaml_dict()
    assert shown["loss"] == 0.05379
    assert shown["samplesPerSecond"] == 1651.2
    assert shown["metrics"] == {"r2": 0.97650}
    assert shown["history"] == [{"step": 50, "valLoss": 0.023726}]
    assert progress.loss == 0.05378969758749008  # the value itself is kept for computations
