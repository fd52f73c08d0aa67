"""The samples of one split (train, val or test), gathered by index into batches."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class TensorSamples:
    """Inputs and targets held as tensors (tabular, arrays, synthetic)."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.x)

    def batch(self, idx: np.ndarray, epoch: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        i = torch.from_numpy(idx)
        return self.x.index_select(0, i), self.y.index_select(0, i)

    def to(self, device: torch.device) -> TensorSamples:
        return TensorSamples(self.x.to(device), self.y.to(device))


@dataclass
class TokenWindows:
    """Next-token windows of seq_len over a token stream.

    Sample i is the window starting at i × seq_len + shift; with packing the shift is drawn per
    epoch from the seed, so every epoch sees different window boundaries.
    """

    tokens: np.ndarray
    """uint16 ids, possibly a read-only memory map (gathered per batch, never loaded whole)."""
    seq_len: int
    packing: bool = False
    seed: int = 0

    def __len__(self) -> int:
        return max(len(self.tokens) // self.seq_len - 1, 0)

    def shift(self, epoch: int) -> int:
        if not self.packing:
            return 0
        return int(np.random.default_rng([self.seed, epoch, 7]).integers(0, self.seq_len))

    def batch(self, idx: np.ndarray, epoch: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        starts = idx * self.seq_len + self.shift(epoch)
        window = torch.from_numpy(self.tokens[starts[:, None] + np.arange(self.seq_len + 1)]
                                  .astype(np.int64))
        return window[:, :-1], window[:, 1:]

    def to(self, device: torch.device) -> TokenWindows:
        return self  # batches are gathered on the host and moved by the loop


Samples = TensorSamples | TokenWindows
