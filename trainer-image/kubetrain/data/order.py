"""The data order: which samples form global step s, and which of them this rank computes.

The order is a pure function of (seed, epoch, position): step s is epoch s // steps_per_epoch,
at offset (s % steps_per_epoch) × global batch in that epoch's permutation. Resuming therefore
needs only the step, and any world size sees the same global batches.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np


@dataclass(frozen=True)
class BatchOrder:
    """Global batches over n training samples."""

    n: int
    global_batch: int
    seed: int
    shuffle: bool = True
    drop_last: bool = True
    weights: tuple[float, ...] | None = None
    """Per-sample draw weights (oversampling); epochs are then drawn with replacement."""

    @property
    def steps_per_epoch(self) -> int:
        if self.drop_last:
            return self.n // self.global_batch
        return -(-self.n // self.global_batch)

    def epoch_of(self, step: int) -> int:
        return step // self.steps_per_epoch

    def global_indices(self, step: int) -> np.ndarray:
        """Sample indices of the whole global batch of optimizer step `step`."""
        epoch, within = divmod(step, self.steps_per_epoch)
        perm = _permutation(self, epoch)
        start = within * self.global_batch
        idx = perm[start:start + self.global_batch]
        if len(idx) < self.global_batch:  # last batch without drop_last: fill from the start
            idx = np.concatenate([idx, perm[:self.global_batch - len(idx)]])
        return idx

    def rank_micro_batches(self, step: int, rank: int, world: int, micro: int) -> list[np.ndarray]:
        """This rank's micro-batches of step `step`: a contiguous block of the global batch."""
        idx = self.global_indices(step)
        per_rank = self.global_batch // world
        if per_rank == micro and world == 1:
            return [idx]
        mine = idx[rank * per_rank:(rank + 1) * per_rank]
        return [mine[i:i + micro] for i in range(0, per_rank, micro)]


@lru_cache(maxsize=4)
def _permutation(order: BatchOrder, epoch: int) -> np.ndarray:
    rng = np.random.default_rng([order.seed, epoch])
    if order.weights is not None:
        p = np.asarray(order.weights, dtype=np.float64)
        return rng.choice(order.n, size=order.n, replace=True, p=p / p.sum())
    return rng.permutation(order.n) if order.shuffle else np.arange(order.n)


def locate(order: BatchOrder, idx: np.ndarray, epoch: int, rank: int, world: int,
           micro: int) -> tuple[int, int] | None:
    """(step, micro-batch number) of this rank whose samples are `idx` in `epoch`, or None."""
    if len(idx) == 0 or order.steps_per_epoch == 0:
        return None
    perm = _permutation(order, epoch)
    per_rank = order.global_batch // world
    for pos in np.flatnonzero(perm == idx[0]):
        within, offset = divmod(int(pos), order.global_batch)
        if offset // per_rank != rank or within >= order.steps_per_epoch:
            continue
        step = epoch * order.steps_per_epoch + within
        for k, mb in enumerate(order.rank_micro_batches(step, rank, world, micro)):
            if np.array_equal(mb, idx):
                return step, k
    return None
