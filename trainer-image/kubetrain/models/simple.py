"""Linear, MLP and a small residual CNN."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from kubetrain.api.model import CNNArgs, LinearArgs, MLPArgs

_ACT = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU}


def linear(a: LinearArgs, in_shape: tuple[int, ...], outputs: int) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(in_shape), outputs, bias=a.bias))


def mlp(a: MLPArgs, in_shape: tuple[int, ...], outputs: int, dropout: float) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(in_shape)
    for h in a.hidden:
        layers.append(nn.Linear(width, h))
        if a.norm == "layer":
            layers.append(nn.LayerNorm(h))
        elif a.norm == "batch":
            layers.append(nn.BatchNorm1d(h))
        layers.append(_ACT[a.activation]())
        if dropout:
            layers.append(nn.Dropout(dropout))
        width = h
    layers.append(nn.Linear(width, outputs))
    return nn.Sequential(*layers)


class ResidualBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.skip = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                   nn.BatchNorm2d(cout))
                     if stride != 1 or cin != cout else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.skip(x))


class CNN(nn.Module):
    """Stages of residual blocks (each after the first halves the resolution), pool, linear."""

    def __init__(self, a: CNNArgs, in_shape: tuple[int, ...], outputs: int, dropout: float):
        super().__init__()
        if len(in_shape) != 3:
            raise ValueError(f"cnn needs image inputs (C, H, W), got samples of shape {in_shape}")
        self.activation_checkpointing = False
        cin = in_shape[0]
        stages = []
        for i, ch in enumerate(a.channels):
            blocks = [ResidualBlock(cin if j == 0 else ch, ch, 2 if (i > 0 and j == 0) else 1)
                      for j in range(a.blocks_per_stage)]
            stages.append(nn.Sequential(*blocks))
            cin = ch
        self.stages = nn.ModuleList(stages)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
                                  nn.Linear(cin, outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages:
            if self.activation_checkpointing and self.training:
                x = checkpoint(stage, x, use_reentrant=False)
            else:
                x = stage(x)
        return self.head(x)
