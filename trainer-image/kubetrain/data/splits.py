"""Reproducible train/val/test splits from split.seed (optionally stratified)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kubetrain.api.data import SplitFractions


@dataclass(frozen=True)
class SplitIndices:
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def split_indices(n: int, split: SplitFractions, labels: np.ndarray | None = None) -> SplitIndices:
    """Shuffle 0..n-1 with the split seed and cut off the val and test fractions.

    With stratify and labels, each class is cut separately so proportions match across splits.
    """
    rng = np.random.default_rng(split.seed)
    if split.stratify and labels is not None:
        parts: list[list[np.ndarray]] = [[], [], []]
        for cls in np.unique(labels):
            members = rng.permutation(np.flatnonzero(labels == cls))
            for i, part in enumerate(_cut(members, split)):
                parts[i].append(part)
        train, val, test = (np.sort(np.concatenate(p)) for p in parts)
        return SplitIndices(train, val, test)
    train, val, test = _cut(rng.permutation(n), split)
    return SplitIndices(np.sort(train), np.sort(val), np.sort(test))


def _cut(order: np.ndarray, split: SplitFractions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = len(order)
    n_val, n_test = round(n * split.val), round(n * split.test)
    return order[n_val + n_test:], order[:n_val], order[n_val:n_val + n_test]


def contiguous_ranges(n: int, split: SplitFractions) -> tuple[slice, slice, slice]:
    """Train, val, test as consecutive ranges (token streams: the tail is held out)."""
    n_val, n_test = round(n * split.val), round(n * split.test)
    n_train = n - n_val - n_test
    return slice(0, n_train), slice(n_train, n_train + n_val), slice(n_train + n_val, n)
