"""Background prefetch of training batches (dataset.loader.numWorkers threads per rank).

A batch is a pure function of (sample indices, epoch), and the order of every step is known in
advance (data/order.py), so worker threads gather the micro-batches this rank will ask for
next while the model computes. The loop asks as before; a batch that was gathered ahead is
returned at once, anything else (the first batch, a jump) is gathered in place and re-aims the
prefetch at the batches after it. The result is identical to gathering in place.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from kubetrain.data.order import BatchOrder, locate
from kubetrain.data.samples import Samples

Key = tuple[int, bytes]


class Prefetched:
    """`samples` with the next micro-batches of this rank gathered ahead by worker threads."""

    def __init__(self, samples: Samples, order: BatchOrder, rank: int, world: int, micro: int,
                 workers: int, per_worker: int):
        self.samples, self.order = samples, order
        self.rank, self.world, self.micro = rank, world, micro
        self.depth = max(1, workers * per_worker)
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="kubetrain-prefetch")
        self.ahead: deque[tuple[Key, Future[tuple[torch.Tensor, torch.Tensor]]]] = deque()
        self.plan: Iterator[tuple[int, np.ndarray]] | None = None
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self.samples)

    def __getattr__(self, name: str) -> Any:  # seq_len, tokens, x, y...: the samples' own
        return getattr(self.samples, name)

    def to(self, device: torch.device) -> Prefetched:
        return self

    def _upcoming(self, step: int, k: int) -> Iterator[tuple[int, np.ndarray]]:
        while True:
            batches = self.order.rank_micro_batches(step, self.rank, self.world, self.micro)
            for j in range(k, len(batches)):
                yield self.order.epoch_of(step), batches[j]
            step, k = step + 1, 0

    def _fill(self) -> None:
        while self.plan is not None and len(self.ahead) < self.depth:
            epoch, idx = next(self.plan)
            key = (epoch, idx.tobytes())
            self.ahead.append((key, self.pool.submit(self.samples.batch, idx, epoch)))

    def batch(self, idx: np.ndarray, epoch: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        if self.ahead and self.ahead[0][0] == (epoch, idx.tobytes()):
            _, future = self.ahead.popleft()
            self.hits += 1
            self._fill()
            return future.result()
        self.misses += 1
        for _, future in self.ahead:
            future.cancel()
        self.ahead.clear()
        at = locate(self.order, idx, epoch, self.rank, self.world, self.micro)
        self.plan = self._upcoming(at[0], at[1] + 1) if at is not None else None
        self._fill()
        return self.samples.batch(idx, epoch)

    def close(self) -> None:
        for _, future in self.ahead:
            future.cancel()
        self.pool.shutdown(wait=False, cancel_futures=True)
