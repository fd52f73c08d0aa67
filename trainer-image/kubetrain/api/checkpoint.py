"""`spec.checkpoint`: when to save, what to keep, where to resume from."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from kubetrain.api.base import KubeModel


class SaveBest(KubeModel):
    """Also keep the checkpoint with the best validation metric."""

    metric: str = Field("valLoss", max_length=64)
    mode: Literal["min", "max"] = "min"


class Checkpoint(KubeModel):
    """Checkpoints hold everything needed to continue the same run exactly."""

    path: str | None = Field(None, max_length=4096)
    """Directory for checkpoints: a local path (a mounted volume in a cluster) or an S3 bucket
    prefix (s3://bucket/prefix; credentials from the environment, see docs/object-storage.md);
    <run dir>/checkpoints when omitted."""
    every_steps: int | None = Field(None, ge=1)
    """Save every N steps (and when interrupted, and at the end)."""
    keep_last: int = Field(3, ge=1, le=1000)
    """Checkpoints kept, newest first (the best one is kept besides)."""
    resume: str = Field("auto", min_length=1, max_length=4096)
    """auto: continue from the newest complete checkpoint in path; never; or a checkpoint path
    (a directory, or an s3:// checkpoint prefix)."""
    save_best: SaveBest | None = None
