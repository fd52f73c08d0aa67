"""Token shards: flat uint16/uint32 files read by memory map, seen as one token stream.

A shard set is a directory with `index.json` (written last by `kubetrain prepare`):

    {"format": "kubetrain.token-shards/v1", "dtype": "uint16", "vocabSize": 4096,
     "tokens": 123456, "maxTokenId": 4095, "headerBytes": 0,
     "tokenizer": {"kind": "bpe", "file": "tokenizer.json"} | {"kind": "char", ...} | null,
     "shards": [{"file": "shard-000000.bin", "tokens": 100000}, ...]}

or flat files without an index (a directory or glob of *.bin; dtype and vocabulary from the
spec). Nothing is read whole: a batch gathers its windows' tokens from the maps, and a window
that crosses a shard boundary is stitched from both shards.
"""

from __future__ import annotations

import glob
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kubetrain.errors import InvalidJob
from kubetrain.preprocessing.tokenizer import Tokenizer, read_tokenizer_file

INDEX = "index.json"
FORMAT = "kubetrain.token-shards/v1"
DTYPES = {"uint16": np.dtype("<u2"), "uint32": np.dtype("<u4")}
_SCAN_BYTES = 1 << 22


@dataclass
class ShardSet:
    """The shards of one set, checked against their index (or their own sizes)."""

    files: list[Path]
    counts: list[int]
    dtype: np.dtype
    vocab_size: int
    header_bytes: int = 0
    tokenizer: Tokenizer | None = None
    where: str = ""
    """The set's location as the spec names it (for messages)."""

    @property
    def tokens(self) -> int:
        return int(sum(self.counts))

    def stream(self) -> ShardStream:
        return ShardStream(self)


class ShardStream:
    """The shards' tokens as one array-like: `s[a:b]` is a view, `s[int array]` a gather."""

    def __init__(self, shards: ShardSet, start: int = 0, stop: int | None = None,
                 maps: list[np.memmap | None] | None = None):
        self.shards = shards
        self.offsets = np.concatenate([[0], np.cumsum(shards.counts, dtype=np.int64)])
        self.start, self.stop = start, shards.tokens if stop is None else stop
        self._maps = maps if maps is not None else [None] * len(shards.files)

    def __len__(self) -> int:
        return self.stop - self.start

    @property
    def dtype(self) -> np.dtype:
        return self.shards.dtype

    def _map(self, i: int) -> np.memmap:
        m = self._maps[i]
        if m is None:
            m = self._maps[i] = np.memmap(self.shards.files[i], dtype=self.shards.dtype, mode="r",
                                          offset=self.shards.header_bytes,
                                          shape=(self.shards.counts[i],))
        return m

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, slice):
            a, b, step = key.indices(len(self))
            if step != 1:
                raise ValueError("token streams are sliced contiguously")
            return ShardStream(self.shards, self.start + a, self.start + max(a, b), self._maps)
        pos = np.asarray(key, dtype=np.int64) + self.start
        flat = pos.ravel()
        if flat.size and (flat.min() < self.start or flat.max() >= self.stop):
            raise IndexError("token position outside the stream")
        which = np.searchsorted(self.offsets, flat, side="right") - 1
        out = np.empty(flat.shape, dtype=self.shards.dtype)
        first, last = (int(which.min()), int(which.max())) if flat.size else (0, -1)
        if first == last:  # the common case: every window inside one shard
            out[:] = self._map(first)[flat - self.offsets[first]]
        else:
            for s in np.unique(which):
                sel = which == s
                out[sel] = self._map(int(s))[flat[sel] - self.offsets[s]]
        if out.size and int(out.max()) >= self.shards.vocab_size:
            self._bad_token(flat, out)
        return out.reshape(pos.shape)

    def _bad_token(self, flat: np.ndarray, out: np.ndarray) -> None:
        k = int(np.argmax(out >= self.shards.vocab_size))
        s = int(np.searchsorted(self.offsets, flat[k], side="right") - 1)
        raise InvalidJob(
            f"{self.shards.files[s]}: token id {int(out[k])} at token"
            f" {int(flat[k] - self.offsets[s])} is not below the vocabulary size"
            f" {self.shards.vocab_size} ({self.shards.where}); the shards were made with"
            " another tokenizer, or the index names the wrong vocabulary")


def _scan_max(file: Path, dtype: np.dtype, header: int) -> int:
    """The largest token id of a shard, read in fixed blocks (read(), not the map: the pages do
    not count against this process's memory)."""
    top = -1
    block = _SCAN_BYTES - _SCAN_BYTES % dtype.itemsize
    with file.open("rb") as f:
        f.seek(header)
        while chunk := f.read(block):
            a = np.frombuffer(chunk, dtype=dtype)
            if a.size:
                top = max(top, int(a.max()))
    return top


def _check_size(file: Path, dtype: np.dtype, header: int, where: str) -> int:
    try:
        size = file.stat().st_size
    except OSError as e:
        raise InvalidJob(f"{file}: cannot read the shard ({e.strerror}; {where})") from None
    body = size - header
    if body < 0 or body % dtype.itemsize:
        after = f" after a {header}-byte header" if header else ""
        raise InvalidJob(f"{file}: {size} bytes is not a whole number of {dtype.name} tokens"
                         f" ({dtype.itemsize} bytes each{after}); the shard is truncated or of"
                         " another dtype")
    return body // dtype.itemsize


def find_index(path: Path) -> Path | None:
    """The index a tokens.path names: itself (a .json file) or its directory's index.json."""
    if path.is_file() and path.suffix == ".json":
        return path
    if path.is_dir() and (path / INDEX).is_file():
        return path / INDEX
    return None


def read_index(index: Path, where: str) -> ShardSet:
    """The shard set of an index, every shard checked to exist with the size the index says."""
    try:
        meta = json.loads(index.read_text(encoding="utf-8"))
        if not isinstance(meta, dict):
            raise ValueError("not a JSON object")
        dtype_name = meta["dtype"]
        if dtype_name not in DTYPES:
            raise ValueError(f"dtype {dtype_name!r} is not one of {', '.join(DTYPES)}")
        dtype = DTYPES[dtype_name]
        vocab = int(meta["vocabSize"])
        header = int(meta.get("headerBytes", 0))
        entries = [(str(e["file"]), int(e["tokens"])) for e in meta["shards"]]
    except (OSError, ValueError, KeyError, TypeError) as e:
        what = f"missing field {e}" if isinstance(e, KeyError) else str(e).splitlines()[0]
        raise InvalidJob(f"{index}: not a token-shard index ({what})") from None
    if not entries:
        raise InvalidJob(f"{index}: the index lists no shards")
    files, counts = [], []
    for name, count in entries:
        file = index.parent / name
        if not file.is_file():
            raise InvalidJob(f"{index}: shard {name} is missing; the index does not match its"
                             " shards (run kubetrain prepare again)")
        have = _check_size(file, dtype, header, where)
        if have != count:
            raise InvalidJob(f"{index}: shard {name} holds {have} tokens but the index says"
                             f" {count}; the index does not match its shards (run kubetrain"
                             " prepare again)")
        files.append(file)
        counts.append(count)
    if "tokens" in meta and int(meta["tokens"]) != sum(counts):
        raise InvalidJob(f"{index}: the index says {meta['tokens']} tokens but its shards hold"
                         f" {sum(counts)}; the index does not match its shards")
    top = meta.get("maxTokenId")
    if top is not None and int(top) >= vocab:
        raise InvalidJob(f"{index}: token id {top} is not below the vocabulary size {vocab}"
                         " the index names")
    tok = _index_tokenizer(index, meta.get("tokenizer"))
    if tok is not None and tok.vocab_size > vocab:
        raise InvalidJob(f"{index}: vocabSize {vocab} is smaller than its tokenizer's"
                         f" vocabulary ({tok.vocab_size})")
    return ShardSet(files, counts, dtype, vocab, header, tok, where)


def _index_tokenizer(index: Path, entry: Any) -> Tokenizer | None:
    if entry is None:
        return None
    try:
        kind = entry["kind"]
        if kind in ("bpe", "pretrained"):
            return Tokenizer(kind, hf_json=read_tokenizer_file(index.parent / entry["file"]))
        return Tokenizer.from_dict(entry)
    except (KeyError, TypeError, ValueError) as e:
        raise InvalidJob(f"{index}: the tokenizer entry is damaged ({e})") from None


def flat_files(location: str, base: Path | None) -> list[Path]:
    """The flat token files of a directory (its *.bin) or a glob, in name order."""
    from kubetrain.data.uri import candidates, local_path

    if any(c in location for c in "*?["):
        tried = candidates(Path(location), base)
        for pattern in tried:
            files = sorted(Path(p) for p in glob.glob(str(pattern)) if Path(p).is_file())
            if files:
                return files
        raise InvalidJob(f"{location}: the glob matches no file (looked for"
                         f" {' or '.join(map(str, tried))})")
    path = local_path(location, base=base)
    if (path / ".preparing").exists():
        raise InvalidJob(f"{location}: a kubetrain prepare into this directory did not finish"
                         " (no index.json); run it again")
    files = [path] if path.is_file() else sorted(p for p in path.glob("*.bin") if p.is_file())
    if not files:
        raise InvalidJob(f"{location}: no {INDEX} and no .bin token files in this directory;"
                         " run kubetrain prepare, or point tokens.path at the shards")
    return files


def read_flat(files: list[Path], dtype_name: str, vocab: int | None, where: str) -> ShardSet:
    """Flat files without an index: each checked to hold whole tokens below the vocabulary."""
    if vocab is None:
        raise InvalidJob(f"{where}: flat token files without an {INDEX} need"
                         " dataset.tokens.vocabSize")
    dtype = DTYPES[dtype_name]
    counts = [_check_size(f, dtype, 0, where) for f in files]
    for f in files:
        top = _scan_max(f, dtype, 0)
        if top >= vocab:
            raise InvalidJob(f"{f}: token id {top} is not below dataset.tokens.vocabSize"
                             f" {vocab}")
    return ShardSet(files, counts, dtype, vocab, 0, None, where)


def read_shards(location: str, dtype_name: str, vocab: int | None,
                base: Path | None) -> ShardSet:
    """The shard set tokens.path names: an index (a directory's index.json or a .json file),
    else flat files (a directory's *.bin, or a glob)."""
    if not any(c in location for c in "*?["):
        from kubetrain.data.uri import local_path

        index = find_index(local_path(location, base=base))
        if index is not None:
            return read_index(index, location)
    return read_flat(flat_files(location, base), dtype_name, vocab, location)
