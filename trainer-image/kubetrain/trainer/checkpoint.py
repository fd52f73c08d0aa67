"""Checkpoints: written atomically (temp dir, fsync, rename), last K kept, newest complete wins.

Layout of one checkpoint directory `step-XXXXXXXX/`:
  model.pt, optim.pt        full state dicts (DDP/single), or dcp/ (FSDP, sharded)
  trainer.pt                step, epoch, schedule, scaler, loop state
  rng-rank{r}.pt            RNG states of rank r (python, numpy, torch, cuda)
  preprocessing.json, job.yaml
  manifest.json             written last: file sizes; a checkpoint without it is partial
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kubetrain.data.errors import DataError
from kubetrain.trainer.distributed import DistContext, any_rank, barrier

PREFIX = "step-"


def _fsync_file(path: Path) -> None:
    with path.open("rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def rng_state() -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class CheckpointError(RuntimeError):
    pass


class UnsharedStorageError(DataError):
    """Ranks on other nodes cannot see rank 0's checkpoint directory: a configuration error
    (exit code 2) rather than a crash to retry, since every retry would fail the same way."""


class Checkpointer:
    """Saves and finds checkpoints under one directory, collectively across ranks."""

    def __init__(
        self,
        directory: Path,
        keep_last: int,
        ctx: DistContext,
        beat: Callable[[], None] = lambda: None,
    ):
        self.dir, self.keep_last, self.ctx, self.beat = directory, keep_last, ctx, beat

    def save(
        self,
        step: int,
        full: dict[str, Any],
        files: dict[str, str],
        sharded: dict[str, Any] | None = None,
        name: str | None = None,
    ) -> Path:
        """Write a checkpoint; every rank calls this. `full` holds rank 0's torch objects
        (model, optim, trainer), `files` text files, `sharded` a DCP state (FSDP)."""
        final = self.dir / (name or f"{PREFIX}{step:08d}")
        tmp = self.dir / f".tmp-{final.name}"
        if self.ctx.is_main:
            self.dir.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
        barrier(self.ctx)
        if any_rank(not tmp.is_dir(), self.ctx):
            raise UnsharedStorageError(
                f"checkpoint directory {self.dir} is not shared by every node: with several nodes"
                " keep the run directory on storage they all mount (a ReadWriteMany volume named"
                " kubetrain-run in spec.template.volumes, or spec.checkpoint.path on one)"
            )
        rng_file = tmp / f"rng-rank{self.ctx.rank}.pt"
        torch.save(rng_state(), rng_file)
        _fsync_file(rng_file)
        if sharded is not None:
            import torch.distributed.checkpoint as dcp

            dcp.save(sharded, checkpoint_id=str(tmp / "dcp"))
        self.beat()
        barrier(self.ctx)
        if self.ctx.is_main:
            for key, obj in full.items():
                torch.save(obj, tmp / f"{key}.pt")
                self.beat()
            for fname, text in files.items():
                (tmp / fname).write_text(text)
            sizes = {
                str(p.relative_to(tmp)): p.stat().st_size
                for p in sorted(tmp.rglob("*"))
                if p.is_file()
            }
            for p in tmp.rglob("*"):
                if p.is_file():
                    _fsync_file(p)
            (tmp / "manifest.json").write_text(json.dumps({"step": step, "files": sizes}))
            _fsync_file(tmp / "manifest.json")
            _fsync_dir(tmp)
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
            _fsync_dir(self.dir)
            self._prune()
        barrier(self.ctx)
        return final

    def _prune(self) -> None:
        done = self.complete()
        for old in done[: -self.keep_last]:
            shutil.rmtree(old, ignore_errors=True)

    def complete(self) -> list[Path]:
        """Published step checkpoints, oldest first (not verified)."""
        if not self.dir.is_dir():
            return []
        return sorted(p for p in self.dir.iterdir() if p.name.startswith(PREFIX) and p.is_dir())

    def newest_valid(self) -> Path | None:
        """The newest checkpoint whose manifest matches its files; skips others with a warning."""
        for path in reversed(self.complete()):
            problem = verify(path)
            if problem is None:
                return path
            warnings.warn(f"skipping checkpoint {path}: {problem}", stacklevel=2)
            print(f"kubetrain: warning: skipping checkpoint {path}: {problem}", file=sys.stderr)
        return None


def verify(path: Path) -> str | None:
    """None when the checkpoint is complete and its files have their recorded sizes."""
    try:
        manifest = json.loads((path / "manifest.json").read_text())
    except (OSError, ValueError) as e:
        return f"no readable manifest ({e.__class__.__name__})"
    for fname, size in manifest["files"].items():
        p = path / fname
        if not p.is_file() or p.stat().st_size != size:
            return f"{fname} is missing or truncated"
    return None


def load_part(path: Path, key: str) -> Any:
    """One torch object of a checkpoint (weights_only: our own files hold plain state)."""
    try:
        return torch.load(path / f"{key}.pt", map_location="cpu", weights_only=False)
    except Exception as e:
        raise CheckpointError(f"{path / key}.pt cannot be read: {e}") from e


def load_rng(path: Path, rank: int) -> dict[str, Any] | None:
    f = path / f"rng-rank{rank}.pt"
    return torch.load(f, weights_only=False) if f.is_file() else None
