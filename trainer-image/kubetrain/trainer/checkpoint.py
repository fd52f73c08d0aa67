"""Checkpoints of named stateful parts: written atomically, verified by hashes, newest wins.

The checkpointer knows no part by name: the trainer hands it `Stateful` objects (anything
with `state_dict()`/`load_state_dict()`), so a new stateful part needs no edit here.

Layout of one checkpoint directory `step-XXXXXXXX/` (format 2):
  <name>.pt | <name>.json   rank 0's parts (model, optim, loop, schedule, preprocessing...)
  rank-<r>/<name>.pt        parts every rank keeps for itself (RNG streams)
  dcp/                      a sharded state written by every rank (FSDP), resharded on load:
                            any world size reads it, and so does a run without FSDP
  manifest.json             written last: format, step, world size, the resume guard and
                            every file's size and sha256; a directory without it is partial
Each checkpoint is first written to a staging directory, then published through its store
(`kubetrain.storage.checkpoint_store`): on disk `.tmp-<name>/` is fsynced and renamed into place;
in a bucket (s3://bucket/prefix) every file is uploaded first and the manifest last. Either way a
checkpoint without a manifest, or with a file that does not match it, is never taken.
A checkpoint's location is a Path on disk and a URL string in a bucket.
"""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch

from kubetrain.errors import InvalidJob
from kubetrain.storage import checkpoint_store as stores
from kubetrain.storage.checkpoint_store import sha256_file as _sha256
from kubetrain.storage.remote import is_remote
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

    @property
    def sharded(self) -> bool:
        """Model and optimizer saved through torch.distributed.checkpoint (an FSDP run), not
        as rank 0's model.pt and optim.pt."""
        return any(name.startswith("dcp/") for name in self.files)


Location = Path | str
"""A checkpoint (or the checkpoint directory): a Path on disk, a URL string in a bucket."""


class Checkpointer:
    """Saves, verifies and loads checkpoints under one directory or bucket prefix,
    collectively across ranks."""

    def __init__(self, directory: Location, keep_last: int, ctx: DistContext,
                 beat: Callable[[], None] = lambda: None):
        self.store = stores.open_store(directory)
        self.dir: Location = self.store.root
        self.keep_last, self.ctx, self.beat = keep_last, ctx, beat
        self.store.check(ctx.rank)

    # -- writing ------------------------------------------------------------------------
    def save(self, step: int, *, main: Mapping[str, Stateful],
             per_rank: Mapping[str, Stateful] = {}, sharded: Stateful | None = None,
             guard: dict[str, Any] | None = None, name: str | None = None) -> Location:
        """Write a checkpoint; every rank calls this. `main` is saved by rank 0, `per_rank`
        by each rank for itself, `sharded` through torch.distributed.checkpoint by all."""
        name = name or f"{PREFIX}{step:08d}"
        tmp = self.store.begin(name, self.ctx.is_main)
        try:
            return self._save(step, name, tmp, main, per_rank, sharded, guard)
        except Exception:  # torch.save reports a full disk as a RuntimeError, not an OSError
            # A full or failing disk: leave no partial copy holding the space that is left.
            self.store.discard(tmp, self.ctx.is_main)
            raise

    def _save(self, step: int, name: str, tmp: Path, main: Mapping[str, Stateful],
              per_rank: Mapping[str, Stateful], sharded: Stateful | None,
              guard: dict[str, Any] | None) -> Location:
        barrier(self.ctx)
        if self.store.shared_staging and any_rank(not tmp.is_dir(), self.ctx):
            raise InvalidJob(
                f"checkpoint directory {self.dir} is not shared by every node: with several nodes"
                " keep the run directory on storage they all mount (a ReadWriteMany volume named"
                " kubetrain-run in spec.template.volumes, or spec.checkpoint.path on one), or"
                " set spec.checkpoint.path to an s3:// bucket prefix"
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
        files = self.store.push(tmp, name, self.ctx.is_main, self.beat)
        if not self.store.shared_staging:  # every rank uploaded its own files
            files = _gather(files, self.ctx)
        if self.ctx.is_main:
            doc = {"format": FORMAT, "step": step, "world": self.ctx.world,
                   "guard": guard or {}, "files": dict(sorted(files.items()))}
            self.store.commit(tmp, name, json.dumps(doc, indent=1).encode())
            self._prune(name)
        self.store.done(tmp)
        barrier(self.ctx)
        final = self.store.location(name)
        if isinstance(final, str):
            stores.forget(final)
        return final

    def _prune(self, saved: str) -> None:
        for old in self.complete()[: -self.keep_last]:
            self.store.remove(old)
        self.store.prune_partial(PREFIX, keep=saved)

    # -- finding ------------------------------------------------------------------------
    def complete(self) -> list[Location]:
        """Published step checkpoints, oldest first (not verified)."""
        return list(self.store.published(PREFIX))

    def resume_point(self, resume: str) -> Location | None:
        """The verified checkpoint to resume from (None: start afresh).

        `auto` takes the newest that verifies, skipping damaged newer ones with a warning (older
        ones are not hashed), but refuses to start over when every checkpoint there is damaged:
        that would silently throw the run away.
        """
        if resume == "never":
            return None
        if resume != "auto":
            where: Location = resume if is_remote(resume) else Path(resume)
            problem = verify(where)
            if problem:
                raise InvalidJob(f"checkpoint.resume {resume}: {problem}")
            return where
        bad = []
        for path in reversed(self.complete()):
            problem = verify(path)
            if problem is None:
                return path
            bad.append(f"{_name(path)}: {problem}")
            if self.ctx.is_main:
                print(f"kubetrain: warning: skipping checkpoint {path}: {problem}",
                      file=sys.stderr)
        if bad:
            raise InvalidJob(
                f"every checkpoint in {self.dir} is unusable ({'; '.join(bad)}); move them away"
                " to start over, or set spec.checkpoint.resume: never")
        return None

    # -- reading ------------------------------------------------------------------------
    def load(self, path: Location, *, main: Mapping[str, Stateful],
             per_rank: Mapping[str, Stateful] = {}, sharded: Stateful | None = None,
             manifest: Manifest | None = None) -> Manifest:
        """Load a verified checkpoint into the parts; per-rank parts only at the same world
        size (the caller decides what a rank without its own state does). `manifest`: the
        checkpoint's, when the caller has read it already (to judge it before any part)."""
        manifest = manifest or read_manifest(path)
        for part_name, part in main.items():
            part.load_state_dict(read_part(path, part_name))
        if manifest.world == self.ctx.world:
            for part_name, part in per_rank.items():
                part.load_state_dict(read_part(path, f"rank-{self.ctx.rank}/{part_name}.pt"))
        if sharded is not None:
            import torch.distributed.checkpoint as dcp

            state = sharded.state_dict()
            with warnings.catch_warnings():
                # A single process (no process group) reads every shard itself, as meant.
                warnings.filterwarnings("ignore", "torch.distributed is disabled")
                dcp.load(state, checkpoint_id=str(_local(path) / "dcp"),
                         no_dist=not self.ctx.distributed)
            sharded.load_state_dict(state)
        return manifest


def _gather(files: dict[str, Any], ctx: DistContext) -> dict[str, Any]:
    """Every rank's uploaded files, merged (host objects over the gloo group: no device sync)."""
    if not ctx.distributed:
        return files
    import torch.distributed as dist

    got: list[Any] = [None] * ctx.world
    dist.all_gather_object(got, files, group=ctx.control)
    return {k: v for part in got for k, v in part.items()}


def _name(path: Location) -> str:
    return path.name if isinstance(path, Path) else path.rstrip("/").rsplit("/", 1)[-1]


def _local(path: Location) -> Path:
    """The local files of a checkpoint: itself on disk; for one in a bucket, the copy that
    `verify` downloaded and checked (downloaded and checked now when there is none)."""
    if isinstance(path, Path) or not is_remote(path):
        return Path(path)
    copy = stores.cached_copy(path)
    if copy is None:
        problem = verify(path)
        if problem:
            raise CheckpointError(f"{path}: {problem}")
        copy = stores.cached_copy(path)
        assert copy is not None
    return copy


def _write_part(path: Path, state: dict[str, Any]) -> None:
    if path.suffix == ".json":
        path.write_text(json.dumps(state))
    else:
        torch.save(state, path if path.suffix == ".pt" else path.with_name(path.name + ".pt"))


def read_part(path: Location, part_name: str) -> Any:
    """One part of a checkpoint; `weights_only`: our parts hold only tensors and plain data."""
    f = _local(path) / part_name
    if f.suffix not in (".pt", ".json"):
        f = f.with_name(f.name + ".pt")
    try:
        if f.suffix == ".json":
            return json.loads(f.read_text())
        return torch.load(f, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{f} cannot be read: {e}") from e


def read_manifest(path: Location) -> Manifest:
    doc = json.loads((_local(path) / "manifest.json").read_text())
    return Manifest(doc["step"], doc.get("world", 1), doc.get("guard", {}), doc["files"])


def verify(path: Location) -> str | None:
    """None when the checkpoint is complete, of this format, and every file has its recorded
    size and hash; otherwise what is wrong, in a few words. A checkpoint in a bucket is
    downloaded afresh and its local copy verified (and then loaded)."""
    if isinstance(path, str) and is_remote(path):
        problem = _verify(stores.download(path))
        if problem:
            stores.forget(path)  # never loaded
        return problem
    return _verify(Path(path))


def _verify(path: Path) -> str | None:
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
