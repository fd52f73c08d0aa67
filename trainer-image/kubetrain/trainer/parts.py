"""What the loop trains with, derived from the job and the data: loss (with class weights),
batch order (with oversampling), augmentation and the numbers MFU needs."""

from __future__ import annotations

import torch

from kubetrain.api.job import TrainingJob
from kubetrain.api.status import Plan
from kubetrain.data.build import DataBundle
from kubetrain.data.order import BatchOrder
from kubetrain.metrics.losses import loss_for
from kubetrain.optim.schedule import Schedule
from kubetrain.preprocessing.image import augmenting
from kubetrain.trainer.distributed import DistContext
from kubetrain.trainer.loop import Parts

# Dense bf16 peak FLOP/s by device name, for MFU (None elsewhere: MFU is not reported).
PEAK_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12, "A10": 125e12}


def loop_parts(job: TrainingJob, data: DataBundle, model: torch.nn.Module,
               optimizer: torch.optim.Optimizer, schedule: Schedule,
               scaler: torch.amp.GradScaler | None, plan: Plan, ctx: DistContext,
               flops: float | None) -> Parts:
    spec = job.spec
    task = data.shapes.task
    imbalance = spec.preprocessing.imbalance.strategy
    weights = None
    order_weights = None
    if task == "classification" and data.class_counts and imbalance != "none":
        counts = torch.tensor(data.class_counts, dtype=torch.float32).clamp(min=1)
        if imbalance == "classWeights":
            weights = (counts.sum() / (len(counts) * counts)).to(ctx.device)
        else:
            per_sample = (1.0 / counts)[data.train.y]  # type: ignore[union-attr]
            order_weights = tuple(per_sample.tolist())
    loss_fn = loss_for(task, spec.training.loss, data.shapes.num_outputs, weights)
    loader = spec.dataset.loader
    order = BatchOrder(len(data.train), plan.global_batch_size, spec.training.seed,
                       loader.shuffle, loader.drop_last, order_weights)
    train = data.train
    if loader.num_workers > 0:
        from kubetrain.data.prefetch import Prefetched

        train = Prefetched(train, order, ctx.rank, ctx.world, plan.micro_batch_size,
                           loader.num_workers, loader.prefetch_factor)  # type: ignore[assignment]
    aug = spec.preprocessing.image.augment
    peak = None
    if ctx.device.type == "cuda":
        name = torch.cuda.get_device_name(ctx.device)
        peak = next((v for k, v in PEAK_FLOPS.items() if k in name), None)
    return Parts(model, optimizer, schedule, loss_fn, train, data.val, order, task,
                 data.shapes.num_outputs, data.target_scale, scaler,
                 aug if augmenting(aug) and len(data.shapes.input_shape) == 3 else None,
                 flops, peak)
