"""Remote data copied once into a local cache, then read like any local file.

Every reader of the trainer (pyarrow, numpy, memory-mapped token shards, tokenizers) takes a local
path, so a remote dataset is downloaded, streaming in chunks (never whole in memory), into
$KUBETRAIN_DATA_CACHE (default ~/.cache/kubetrain/data) and refreshed when the object's size,
ETag or modification time changes. A download goes to a temporary name and is renamed into
place: an interrupted one is never taken for the data. A prefix (s3://bucket/dir/) is copied
with every object under it; http(s):// names single files only (a web server has no listing).

Within `one_job()` (every `kubetrain` command runs in one) a location is checked against the
store once: the readers of a job ask for the same URL several times (a model's config, its
tokenizer, its weights), and a second listing would only cost requests. The next job (the next
command, a restarted rank) checks again, so a changed object is downloaded then.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kubetrain.errors import InvalidJob
from kubetrain.storage.remote import (
    credentials_key,
    filesystem,
    head,
    invalid,
    read_chunks,
    scheme_of,
)

CHUNK = 8 << 20

# url, credentials/endpoint, cache → the copy verified in this job; None outside `one_job()`.
_verified: dict[tuple[str, tuple[tuple[str, str], ...], str], Path] | None = None


@contextlib.contextmanager
def one_job() -> Iterator[None]:
    """Within: each location is listed (and downloaded when changed) at most once."""
    global _verified
    outer = _verified
    _verified = {} if outer is None else outer  # nested: the outer job's scope
    try:
        yield
    finally:
        _verified = outer


def cache_root() -> Path:
    given = os.environ.get("KUBETRAIN_DATA_CACHE")
    return Path(given) if given else Path.home() / ".cache" / "kubetrain" / "data"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Ranks on one node fetching the same URL: one downloads, the others wait and reuse it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def _objects(fs: Any, url: str) -> tuple[str, dict[str, dict[str, Any]]]:
    """("file" | "directory", {relative name: what identifies its content})."""
    fs.invalidate_cache()
    try:
        if scheme_of(url) in ("http", "https"):  # no listing on a web server: files only
            return "file", {"": _identity(head(url))}
        info = fs.info(url)
        if info["type"] == "file":
            return "file", {"": _identity(info)}
        found = fs.find(url.rstrip("/"), detail=True)
    except Exception as e:
        raise invalid(e, url) from None
    prefix = url.split("://", 1)[1].rstrip("/") + "/"
    files = {name[len(prefix):] if name.startswith(prefix) else name.rsplit("/", 1)[-1]:
             _identity(entry) for name, entry in found.items() if entry["type"] == "file"}
    if not files:
        raise InvalidJob(f"{url}: no such object")
    return "directory", files


def _identity(info: dict[str, Any]) -> dict[str, Any]:
    return {"size": info.get("size"), "etag": info.get("e_tag") or info.get("ETag"),
            "modified": str(info.get("last_modified") or info.get("LastModified") or "")}


def fetch(url: str) -> Path:
    """The local copy of a remote file or prefix (downloaded when missing or changed; within
    `one_job()`, listed once)."""
    known = verified(url)
    if known is not None:
        return known
    target = _fetch(url)
    if _verified is not None:
        _verified[_memo_key(url)] = target
    return target


def verified(url: str) -> Path | None:
    """The copy of `url` already fetched in this job, if any (no request)."""
    if _verified is None:
        return None
    known = _verified.get(_memo_key(url))
    return known if known is not None and known.exists() else None


def _memo_key(url: str) -> tuple[str, tuple[tuple[str, str], ...], str]:
    # Other credentials or another cache directory (tests) are another location.
    return url, credentials_key(), str(cache_root())


def _fetch(url: str) -> Path:
    fs = filesystem(url)
    kind, objects = _objects(fs, url)
    key = hashlib.sha256(url.encode()).hexdigest()[:16]
    name = url.rstrip("/").rsplit("/", 1)[-1] or "data"
    entry = cache_root() / key
    target = entry / name
    stamp = entry / "source.json"
    want = {"url": url, "kind": kind, "objects": objects}
    with _locked(entry.with_suffix(".lock")):
        try:
            if json.loads(stamp.read_text()) == want and target.exists():
                return target
        except (OSError, ValueError):
            pass
        entry.mkdir(parents=True, exist_ok=True)
        tmp = entry / f".tmp-{name}"
        shutil.rmtree(tmp, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        for rel, ident in objects.items():
            source = f"{url.rstrip('/')}/{rel}" if rel else url
            dest = tmp / rel if kind == "directory" else tmp
            _download(source, dest, ident["size"])
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        os.replace(tmp, target)
        stamp.write_text(json.dumps(want))
    return target


def _download(url: str, dest: Path, size: int | None) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    got = 0
    try:
        with dest.open("wb") as out:
            for chunk in read_chunks(url, CHUNK):
                out.write(chunk)
                got += len(chunk)
    except Exception as e:
        raise invalid(e, url) from None
    if size is not None and got != size:
        raise OSError(f"{url}: read {got} bytes of {size} (the object changed while reading?)")
