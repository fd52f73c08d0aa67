"""Flat numeric arrays: per-feature zscore or minmax scaling fitted on the training split."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass
class ArrayScale:
    """(x - shift) / scale per feature; constant features keep scale 1."""

    shift: list[float]
    scale: list[float]

    @classmethod
    def fit(cls, x_train: np.ndarray, method: str) -> ArrayScale | None:
        """Statistics of the (samples, features) training inputs; None for normalize none."""
        if method == "none":
            return None
        flat = x_train.astype(np.float64)
        if method == "zscore":
            shift, scale = flat.mean(0), flat.std(0)
        else:
            shift, scale = flat.min(0), flat.max(0) - flat.min(0)
        return cls(shift.tolist(), np.where(scale > 0, scale, 1.0).tolist())

    def transform(self, x: np.ndarray) -> np.ndarray:
        return ((x - np.asarray(self.shift)) / np.asarray(self.scale)).astype(np.float32)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, s: dict[str, object]) -> ArrayScale:
        return cls(**s)  # type: ignore[arg-type]
