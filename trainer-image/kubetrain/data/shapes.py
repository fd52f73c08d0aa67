"""What a model needs to know about the data (no torch import: `kubetrain validate` uses it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DataShapes:
    task: str
    """classification, regression or lm."""
    input_shape: tuple[int, ...] = ()
    """One sample's input shape (features, or C, H, W)."""
    num_outputs: int = 1
    """Classes (classification), 1 (regression), vocabulary size (lm)."""
    seq_len: int | None = None
