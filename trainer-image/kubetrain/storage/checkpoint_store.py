"""Where checkpoints are published: a local directory or a bucket prefix, behind one interface.

The checkpointer writes every part into a local staging directory, then asks the store to
publish it; the all-or-nothing rule is the same on both, only its mechanics differ:
- `LocalStore`: staging is `<dir>/.tmp-<name>/`, shared by every rank (so several nodes need a
  shared volume); rank 0 hashes the files, writes manifest.json, fsyncs and renames the
  directory into place.
- `BucketStore` (s3://bucket/prefix): every rank stages in its own local temporary directory
  and uploads its own files (hashing them as it goes); rank 0 uploads manifest.json last, once
  every rank's files are in. An object store has no rename, so the manifest is the commit: a
  prefix without one (an upload killed midway) or with a part that does not match it is never
  taken for a checkpoint. Reading downloads a checkpoint into a local temporary copy once and
  verifies it there; the checkpointer then loads the copy.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import shutil
import signal
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubetrain.storage.durable import fsync
from kubetrain.storage.remote import (
    WRITABLE,
    filesystem,
    invalid,
    is_remote,
    join,
    read_chunks,
    scheme_of,
)

MANIFEST = "manifest.json"
Entry = dict[str, Any]
"""{"size": bytes, "sha256": hex digest} of one file."""

# Test-only fault: SIGKILL this process while uploading the named file of a checkpoint
# ("step-00000040/optim.pt"), after its first chunk went out (tests/trainer/test_object_store*).
KILL_DURING_UPLOAD = "KUBETRAIN_TEST_KILL_DURING_UPLOAD"
CHUNK = 8 << 20


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _files(tmp: Path) -> list[Path]:
    return [p for p in sorted(tmp.rglob("*")) if p.is_file()]


class LocalStore:
    """Checkpoints in a local (or mounted) directory, published by rename."""

    shared_staging = True

    def __init__(self, directory: Path):
        self.root = directory

    def location(self, name: str) -> Path:
        return self.root / name

    def check(self, rank: int) -> None:
        """Problems of a local directory show at the first save (see run_dir_faults)."""

    def begin(self, name: str, is_main: bool) -> Path:
        tmp = self.root / f".tmp-{name}"
        if is_main:
            self.root.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
        return tmp

    def push(self, tmp: Path, name: str, is_main: bool, beat: Callable[[], None]
             ) -> dict[str, Entry]:
        """Rank 0 fsyncs and hashes every file of the shared staging directory."""
        files: dict[str, Entry] = {}
        if not is_main:
            return files
        for p in _files(tmp):
            fsync(p)
            files[str(p.relative_to(tmp))] = {"size": p.stat().st_size, "sha256": sha256_file(p)}
            beat()
        return files

    def commit(self, tmp: Path, name: str, manifest: bytes) -> None:
        (tmp / MANIFEST).write_bytes(manifest)
        fsync(tmp / MANIFEST)
        for d in [tmp, *(p for p in tmp.rglob("*") if p.is_dir())]:
            fsync(d)
        final = self.location(name)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        fsync(self.root)

    def discard(self, tmp: Path, is_main: bool) -> None:
        if is_main:
            shutil.rmtree(tmp, ignore_errors=True)

    def done(self, tmp: Path) -> None:
        """Nothing to clean: the staging directory became the checkpoint."""

    def published(self, prefix: str) -> list[Path]:
        if not self.root.is_dir():
            return []
        return sorted(p for p in self.root.iterdir() if p.name.startswith(prefix) and p.is_dir())

    def remove(self, location: Path | str) -> None:
        shutil.rmtree(location, ignore_errors=True)

    def prune_partial(self, prefix: str, keep: str) -> None:
        """A crashed save's `.tmp-` directory is replaced when the same step is saved again."""


class BucketStore:
    """Checkpoints under an object-store prefix (s3://bucket/prefix), published by the manifest
    written last."""

    shared_staging = False

    def __init__(self, url: str):
        if scheme_of(url) not in WRITABLE:
            from kubetrain.errors import InvalidJob

            raise InvalidJob(f"spec.checkpoint.path: {url}: checkpoints can be written to s3://"
                             " buckets, a local path or a mounted volume, not to"
                             f" {scheme_of(url)}://")
        self.root = url.rstrip("/")
        self.fs = filesystem(self.root)

    def location(self, name: str) -> str:
        return join(self.root, name)

    def check(self, rank: int) -> None:
        """Write and delete a probe object at start-up, so that a missing bucket or a denied
        write is one line (exit 2) now rather than a crash at the first checkpoint."""
        url = join(self.root, f".kubetrain-probe-{rank}")
        try:
            self.fs.pipe_file(url, b"kubetrain")
            self.fs.rm_file(url)
        except Exception as e:
            raise invalid(e, url, "spec.checkpoint.path") from None

    def begin(self, name: str, is_main: bool) -> Path:
        if is_main:  # a crashed upload of the same name, or the checkpoint being replaced
            self.remove(self.location(name))
        return Path(tempfile.mkdtemp(prefix=f"kubetrain-{name}-"))

    def push(self, tmp: Path, name: str, is_main: bool, beat: Callable[[], None]
             ) -> dict[str, Entry]:
        """Every rank uploads (and hashes) the files it staged."""
        files: dict[str, Entry] = {}
        kill = os.environ.get(KILL_DURING_UPLOAD)
        for p in _files(tmp):
            rel = str(p.relative_to(tmp))
            url = join(self.location(name), rel)
            files[rel] = self._upload(p, url, kill == f"{name}/{rel}")
            beat()
        return files

    def _upload(self, src: Path, url: str, kill: bool) -> Entry:
        h, size = hashlib.sha256(), 0
        try:
            with src.open("rb") as f, self.fs.open(url, "wb") as out:
                while chunk := f.read(CHUNK):
                    h.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
                    if kill:
                        out.flush()
                        os.kill(os.getpid(), signal.SIGKILL)
        except Exception as e:
            raise invalid(e, url) from None
        return {"size": size, "sha256": h.hexdigest()}

    def commit(self, tmp: Path, name: str, manifest: bytes) -> None:
        url = join(self.location(name), MANIFEST)
        try:
            self.fs.pipe_file(url, manifest)
        except Exception as e:
            raise invalid(e, url) from None

    def discard(self, tmp: Path, is_main: bool) -> None:
        shutil.rmtree(tmp, ignore_errors=True)

    def done(self, tmp: Path) -> None:
        shutil.rmtree(tmp, ignore_errors=True)

    def _list(self) -> list[dict[str, Any]]:
        self.fs.invalidate_cache()
        try:
            return self.fs.ls(self.root, detail=True)
        except FileNotFoundError:
            return []  # nothing saved yet (or a missing bucket: the first upload says which)
        except Exception as e:
            raise invalid(e, self.root) from None

    def published(self, prefix: str) -> list[str]:
        """Prefixes named `prefix…` that hold a manifest (not verified)."""
        names = sorted(e["name"].rstrip("/").rsplit("/", 1)[-1] for e in self._list()
                       if e["type"] == "directory")
        return [self.location(n) for n in names
                if n.startswith(prefix) and self.fs.exists(join(self.location(n), MANIFEST))]

    def remove(self, location: Path | str) -> None:
        """Manifest first: a removal cut short leaves no checkpoint that looks complete."""
        url = str(location)
        manifest = join(url, MANIFEST)
        self.fs.invalidate_cache()
        if self.fs.exists(manifest):
            self.fs.rm_file(manifest)
        self.fs.invalidate_cache()
        try:
            objects = self.fs.find(url, detail=False)
        except FileNotFoundError:
            return
        for key in objects:
            self.fs.rm_file(f"{scheme_of(url)}://{key}")
        self.fs.invalidate_cache()

    def prune_partial(self, prefix: str, keep: str) -> None:
        """Prefixes without a manifest (uploads killed midway) other than `keep`."""
        complete = {str(p) for p in self.published(prefix)}
        for e in self._list():
            name = e["name"].rstrip("/").rsplit("/", 1)[-1]
            url = self.location(name)
            if (e["type"] == "directory" and name.startswith(prefix) and name != keep
                    and url not in complete):
                self.remove(url)


Store = LocalStore | BucketStore


def open_store(location: str | Path) -> Store:
    return BucketStore(location) if is_remote(location) else LocalStore(Path(location))


# -- reading a checkpoint in a bucket: one verified local copy per process -------------------
_copies: dict[str, Path] = {}
_copy_root: list[Path] = []


def _scratch() -> Path:
    if not _copy_root:
        _copy_root.append(Path(tempfile.mkdtemp(prefix="kubetrain-checkpoints-")))
        atexit.register(shutil.rmtree, _copy_root[0], True)
    return _copy_root[0]


def download(location: str) -> Path:
    """A fresh local copy of a checkpoint in a bucket: its manifest and every file the manifest
    lists. A missing object is left out (the verification that follows names it); a prefix
    without a readable manifest yields a copy without one."""
    dest = _scratch() / hashlib.sha256(location.encode()).hexdigest()[:16]
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    if _get(join(location, MANIFEST), dest / MANIFEST):
        try:
            listed = list(json.loads((dest / MANIFEST).read_text())["files"])
        except (ValueError, KeyError, TypeError):
            listed = []
        for rel in listed:
            if ".." not in Path(rel).parts:  # a manifest names files inside its checkpoint
                _get(join(location, rel), dest / rel)
    _copies[location] = dest
    return dest


def _get(url: str, out: Path) -> bool:
    """Download one object; False when it does not exist."""
    from obstore.exceptions import NotFoundError

    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with out.open("wb") as f:
            for chunk in read_chunks(url, CHUNK):
                f.write(chunk)
    except (FileNotFoundError, NotFoundError):
        out.unlink(missing_ok=True)
        return False
    except Exception as e:
        out.unlink(missing_ok=True)
        raise invalid(e, url) from None
    return True


def cached_copy(location: str) -> Path | None:
    return _copies.get(location)


def forget(location: str) -> None:
    path = _copies.pop(location, None)
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)
