"""Checkpoints of named stateful parts: written atomically, verified by hashes, newest wins.

The checkpointer knows no part by name: the trainer hands it `Stateful` objects (anything
with `state_dict()`/`load_state_dict()`), so a new stateful part needs no edit here.

Layout of one checkpoint directory `step-XXXXXXXX/` (format 2):
  <name>.pt | <name>.json   rank 0's parts (model, optim, loop, schedule, preprocessing...)
  rank-<r>/<name>.pt        parts every rank keeps for itself (RNG streams)
  dcp/                      a sharded state written by every rank (FSDP)
  manifest.json             written last: format, step, world size, the resume guard and
                            every file's size and sha256; a directory without it is partial
Each checkpoint is first written to `.tmp-<name>/`, fsynced, then renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from kubetrain.errors import InvalidJob
from kubetrain.trainer.distributed import DistContext, any_rank, barrier

PREFIX = "step-"
FORMAT = 2
"""Bumped when the layout changes; older formats are refused with a message naming them."""


class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class CheckpointError(RuntimeError):
    """A verified checkpoint that still cannot be loaded (a crash: exit code 1)."""


@dataclass(frozen=True)
class Manifest:
    step: int
    world: int
    guard: dict[str, Any] = field(default_factory=dict)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Checkpointer:
    """Saves, verifies and loads checkpoints under one directory, collectively across ranks."""

    def __init__(self, directory: Path, keep_last: int, ctx: DistContext,
                 beat: Callable[[], None] = lambda: None):
        self.dir, self.keep_last, self.ctx, self.beat = directory, keep_last, ctx, beat

    # -- writing ------------------------------------------------------------------------
    def save(self, step: int, *, main: Mapping[str, Stateful],
             per_rank: Mapping[str, Stateful] = {}, sharded: Stateful | None = None,
             guard: dict[str, Any] | None = None, name: str | None = None) -> Path:
        """Write a checkpoint; every rank calls this. `main` is saved by rank 0, `per_rank`
        by each rank for itself, `sharded` through torch.distributed.checkpoint by all."""
        final = self.dir / (name or f"{PREFIX}{step:08d}")
        tmp = self.dir / f".tmp-{final.name}"
        try:
            return self._save(step, final, tmp, main, per_rank, sharded, guard)
        except Exception:  # torch.save reports a full disk as a RuntimeError, not an OSError
            # A full or failing disk: leave no partial copy holding the space that is left.
            if self.ctx.is_main:
                shutil.rmtree(tmp, ignore_errors=True)
            raise

    def _save(self, step: int, final: Path, tmp: Path, main: Mapping[str, Stateful],
              per_rank: Mapping[str, Stateful], sharded: Stateful | None,
              guard: dict[str, Any] | None) -> Path:
        if self.ctx.is_main:
            self.dir.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
        barrier(self.ctx)
        if any_rank(not tmp.is_dir(), self.ctx):
            raise InvalidJob(
                f"checkpoint directory {self.dir} is not shared by every node: with several nodes"
                " keep the run directory on storage they all mount (a ReadWriteMany volume named"
                " kubetrain-run in spec.template.volumes, or spec.checkpoint.path on one)"
            )
        mine = tmp / f"rank-{self.ctx.rank}"
        for part_name, part in per_rank.items():
            mine.mkdir(exist_ok=True)
            torch.save(part.state_dict(), mine / f"{part_name}.pt")
        if sharded is not None:
            import torch.distributed.checkpoint as dcp

            dcp.save(sharded.state_dict(), checkpoint_id=str(tmp / "dcp"))
        self.beat()
        barrier(self.ctx)
        if self.ctx.is_main:
            for part_name, part in main.items():
                _write_part(tmp / part_name, part.state_dict())
                self.beat()
            self._publish(tmp, final, Manifest(step, self.ctx.world, guard or {}))
        barrier(self.ctx)
        return final

    def _publish(self, tmp: Path, final: Path, manifest: Manifest) -> None:
        files = {}
        for p in sorted(tmp.rglob("*")):
            if p.is_file():
                _fsync(p)
                files[str(p.relative_to(tmp))] = {"size": p.stat().st_size, "sha256": _sha256(p)}
                self.beat()
        doc = {"format": FORMAT, "step": manifest.step, "world": manifest.world,
               "guard": manifest.guard, "files": files}
        (tmp / "manifest.json").write_text(json.dumps(doc, indent=1))
        _fsync(tmp / "manifest.json")
        for d in [tmp, *(p for p in tmp.rglob("*") if p.is_dir())]:
            _fsync(d)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        _fsync(self.dir)
        for old in self.complete()[: -self.keep_last]:
            shutil.rmtree(old, ignore_errors=True)

    # -- finding ------------------------------------------------------------------------
    def complete(self) -> list[Path]:
        """Published step checkpoints, oldest first (not verified)."""
        if not self.dir.is_dir():
            return []
        return sorted(p for p in self.dir.iterdir() if p.name.startswith(PREFIX) and p.is_dir())

    def resume_point(self, resume: str) -> Path | None:
        """The verified checkpoint to resume from (None: start afresh).

        `auto` takes the newest that verifies, skipping damaged newer ones with a warning (older
        ones are not hashed), but refuses to start over when every checkpoint there is damaged:
        that would silently throw the run away.
        """
        if resume == "never":
            return None
        if resume != "auto":
            problem = verify(Path(resume))
            if problem:
                raise InvalidJob(f"checkpoint.resume {resume}: {problem}")
            return Path(resume)
        bad = []
        for path in reversed(self.complete()):
            problem = verify(path)
            if problem is None:
                return path
            bad.append(f"{path.name}: {problem}")
            if self.ctx.is_main:
                print(f"kubetrain: warning: skipping checkpoint {path}: {problem}",
                      file=sys.stderr)
        if bad:
            raise InvalidJob(
                f"every checkpoint in {self.dir} is unusable ({'; '.join(bad)}); move them away"
                " to start over, or set spec.checkpoint.resume: never")
        return None

    # -- reading ------------------------------------------------------------------------
    def load(self, path: Path, *, main: Mapping[str, Stateful],
             per_rank: Mapping[str, Stateful] = {}, sharded: Stateful | None = None) -> Manifest:
        """Load a verified checkpoint into the parts; per-rank parts only at the same world
        size (the caller decides what a rank without its own state does)."""
        manifest = read_manifest(path)
        for part_name, part in main.items():
            part.load_state_dict(read_part(path, part_name))
        if manifest.world == self.ctx.world:
            for part_name, part in per_rank.items():
                part.load_state_dict(read_part(path, f"rank-{self.ctx.rank}/{part_name}.pt"))
        if sharded is not None:
            import torch.distributed.checkpoint as dcp

            state = sharded.state_dict()
            dcp.load(state, checkpoint_id=str(path / "dcp"))
            sharded.load_state_dict(state)
        return manifest


def _write_part(path: Path, state: dict[str, Any]) -> None:
    if path.suffix == ".json":
        path.write_text(json.dumps(state))
    else:
        torch.save(state, path if path.suffix == ".pt" else path.with_name(path.name + ".pt"))


def read_part(path: Path, part_name: str) -> Any:
    """One part of a checkpoint; `weights_only`: our parts hold only tensors and plain data."""
    f = path / part_name
    if f.suffix not in (".pt", ".json"):
        f = f.with_name(f.name + ".pt")
    try:
        if f.suffix == ".json":
            return json.loads(f.read_text())
        return torch.load(f, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{f} cannot be read: {e}") from e


def read_manifest(path: Path) -> Manifest:
    doc = json.loads((path / "manifest.json").read_text())
    return Manifest(doc["step"], doc.get("world", 1), doc.get("guard", {}), doc["files"])


def verify(path: Path) -> str | None:
    """None when the checkpoint is complete, of this format, and every file has its recorded
    size and hash; otherwise what is wrong, in a few words."""
    try:
        doc = json.loads((path / "manifest.json").read_text())
        files = doc["files"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        return f"no readable manifest ({e.__class__.__name__})"
    version = doc.get("format", 1)
    if version != FORMAT:
        return (f"checkpoint format {version}, but this kubetrain reads format {FORMAT} (format 1"
                " was written by kubetrain 0.1.0)")
    for fname, entry in files.items():
        p = path / fname
        if not p.is_file() or p.stat().st_size != entry["size"]:
            return f"{fname} is missing or truncated"
        if _sha256(p) != entry["sha256"]:
            return f"{fname} does not match its recorded hash"
    return None
