"""Images (N, C, H, W): per-channel normalization and seeded on-tensor augmentations."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from kubetrain.api.preprocessing import Augment, ImagePreprocessing


@dataclass
class ChannelStats:
    """Per-channel mean and std: given in the spec, else measured on the training split."""

    mean: list[float]
    std: list[float]

    @classmethod
    def fit(cls, x_train: np.ndarray, spec: ImagePreprocessing) -> ChannelStats:
        axes = (0, 2, 3)
        mean = spec.mean or x_train.mean(axis=axes, dtype=np.float64).tolist()
        std = spec.std or [s or 1.0 for s in x_train.std(axis=axes, dtype=np.float64).tolist()]
        return cls([float(m) for m in mean], [float(s) for s in std])

    def transform(self, x: np.ndarray) -> np.ndarray:
        m = np.asarray(self.mean, dtype=np.float32)[None, :, None, None]
        s = np.asarray(self.std, dtype=np.float32)[None, :, None, None]
        return (x.astype(np.float32) - m) / s

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, s: dict[str, object]) -> ChannelStats:
        return cls(**s)  # type: ignore[arg-type]


def augmenting(spec: Augment) -> bool:
    return bool(spec.horizontal_flip or spec.crop_padding or spec.rotation_degrees
                or spec.scale or spec.gaussian_noise)


def augment_batch(x: torch.Tensor, spec: Augment, generator: torch.Generator) -> torch.Tensor:
    """Random flips, crops, rotation/zoom and noise for a batch, drawn from `generator`."""
    n, _, h, w = x.shape
    dev = x.device
    if spec.horizontal_flip:
        flip = torch.rand(n, generator=generator) < spec.horizontal_flip
        x = torch.where(flip.to(dev)[:, None, None, None], x.flip(3), x)
    if spec.crop_padding:
        p = spec.crop_padding
        padded = F.pad(x, (p, p, p, p))
        dy = torch.randint(0, 2 * p + 1, (n,), generator=generator)
        dx = torch.randint(0, 2 * p + 1, (n,), generator=generator)
        rows = (dy[:, None] + torch.arange(h)).to(dev)
        cols = (dx[:, None] + torch.arange(w)).to(dev)
        x = padded[torch.arange(n, device=dev)[:, None, None, None],
                   torch.arange(x.shape[1], device=dev)[None, :, None, None],
                   rows[:, None, :, None], cols[:, None, None, :]]
    if spec.rotation_degrees or spec.scale:
        angle = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(spec.rotation_degrees)
        lo, hi = spec.scale or (1.0, 1.0)
        zoom = lo + torch.rand(n, generator=generator) * (hi - lo)
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        theta = torch.stack([torch.stack([cos, -sin, torch.zeros(n)], 1),
                             torch.stack([sin, cos, torch.zeros(n)], 1)], 1).to(dev, x.dtype)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, align_corners=False)
    if spec.gaussian_noise:
        noise = torch.randn(x.shape, generator=generator).to(dev, x.dtype)
        x = x + spec.gaussian_noise * noise
    return x
