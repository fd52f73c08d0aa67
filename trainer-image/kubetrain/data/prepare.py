"""`kubetrain prepare`: a raw corpus → token shards + index.json, on every core, atomically.

The corpus is streamed in chunks (data/prepare_read.py); worker processes tokenize chunks
while this process reads the next ones and appends the ids, in order, to shard files. Memory
stays bounded by the chunks in flight. A shard is written under a temporary name and renamed
when full; index.json, written last (also by rename), is what makes the set complete, so an
interrupted prepare leaves no set that reads as whole (the directory is marked `.preparing`
until then).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kubetrain.api.data import SplitFractions, TokenData, TokenPrepare
from kubetrain.api.preprocessing import TextPreprocessing
from kubetrain.data.prepare_read import CorpusFile, corpus_files, read_chunks
from kubetrain.data.shards import FORMAT, INDEX, find_index
from kubetrain.errors import InvalidJob
from kubetrain.preprocessing.tokenizer import (
    DEFAULT_BPE_VOCAB,
    Tokenizer,
    read_tokenizer_file,
    train_bpe,
)
from kubetrain.storage.durable import fsync

MARKER = ".preparing"
Progress = Callable[[str, int, int], None]
"""progress(phase, bytes done, bytes total)"""


@dataclass
class Prepared:
    """What a prepare wrote, and how fast."""

    out: Path
    tokens: int
    shards: int
    text_bytes: int
    input_bytes: int
    seconds: float
    tokenize_seconds: float
    workers: int

    @property
    def mb_per_second(self) -> float:
        """Text (UTF-8 MB) tokenized and written per second, tokenizer training excluded."""
        return self.text_bytes / 1e6 / max(self.tokenize_seconds, 1e-9)


def output_dir(tokens: TokenData, base: Path | None) -> Path:
    """Where the shards go: tokens.path, beside the job file when relative (or where it exists)."""
    from kubetrain.data.uri import candidates

    places = candidates(Path(tokens.path).expanduser(), base)
    return next((p for p in places if p.exists()), places[0])


def prepare(tokens: TokenData, text: TextPreprocessing, split: SplitFractions,
            base: Path | None, *, workers: int | None = None,
            progress: Progress | None = None) -> Prepared:
    """Tokenize tokens.prepare's corpus into shards at tokens.path."""
    from kubetrain.data.uri import local_path

    src = tokens.prepare
    if src is None:
        raise InvalidJob("dataset.tokens.prepare: set it to the raw corpus to prepare shards from")
    start = time.perf_counter()
    files = corpus_files(local_path(src.path, base=base), src.format, src.path)
    total = sum(f.size for f in files)
    if total == 0:
        raise InvalidJob(f"{src.path}: the corpus is empty; a language model needs text")
    out = output_dir(tokens, base)
    if out.exists() and not out.is_dir():
        raise InvalidJob(f"{tokens.path}: is a file; tokens.path must name a directory to"
                         " prepare into")
    out.mkdir(parents=True, exist_ok=True)
    _clear(out)
    tok = fit_tokenizer(text, files, src, split, base, progress)
    workers = max(1, workers or os.cpu_count() or 1)
    t0 = time.perf_counter()
    writer = ShardWriter(out, tok.dtype, src.shard_tokens)
    text_bytes = done = 0
    for ids, n_text, n_in in _encoded(files, src.text_column, tok, workers):
        writer.write(ids)
        text_bytes += n_text
        done += n_in
        if progress:
            progress("tokenizing", done, total)
    tok_seconds = time.perf_counter() - t0
    if writer.total == 0:
        writer.abort()
        raise InvalidJob(f"{src.path}: the corpus holds no text (column"
                         f" {src.text_column!r} is empty in every row, or the files are)")
    entry: dict[str, Any]
    if tok.hf_json:
        (out / "tokenizer.json").write_text(tok.hf_json, encoding="utf-8")
        entry = {"kind": tok.kind, "file": "tokenizer.json"}
    else:
        entry = tok.to_dict()
    writer.finish({"vocabSize": tok.vocab_size, "tokenizer": entry,
                   "source": {"path": src.path, "bytes": total, "files": len(files)}})
    return Prepared(out, writer.total, len(writer.shards), text_bytes, total,
                    time.perf_counter() - start, tok_seconds, workers)


def fit_tokenizer(text: TextPreprocessing, files: list[CorpusFile], src: TokenPrepare,
                  split: SplitFractions, base: Path | None,
                  progress: Progress | None = None) -> Tokenizer:
    """The tokenizer for the shards, fitted on the training part only: the leading
    1 − val − test of the corpus bytes (the trainer holds out the same fraction of tokens at
    the end)."""
    from kubetrain.data.uri import local_path

    if text.tokenizer == "byte":
        return Tokenizer("byte")
    if text.tokenizer == "pretrained":
        assert text.tokenizer_path is not None
        path = local_path(text.tokenizer_path, base=base)
        return Tokenizer("pretrained", hf_json=read_tokenizer_file(path, text.tokenizer_path))
    budget = int(sum(f.size for f in files) * (1.0 - split.val - split.test))
    chunks = _leading(read_chunks(files, src.text_column), budget, progress)
    if text.tokenizer == "bpe":
        return Tokenizer("bpe", hf_json=train_bpe(chunks, text.vocab_size or DEFAULT_BPE_VOCAB))
    chars: set[str] = set()
    for chunk in chunks:
        chars.update(chunk)
    if not chars:
        raise InvalidJob(f"{src.path}: the corpus holds no text in its training part")
    # Characters only the held-out part has map to <unk>, which is always present here.
    return Tokenizer("char", "".join(sorted(chars)), unk=True)


def _leading(chunks: Iterator[tuple[str, int]], budget: int,
             progress: Progress | None) -> Iterator[str]:
    done = 0
    for text, n in chunks:
        if done + n > budget and done > 0:
            return
        done += n
        if progress:
            progress("fitting the tokenizer", done, budget)
        yield text


# -- tokenizing in worker processes ---------------------------------------------------------------
_worker_tokenizer: Tokenizer | None = None


def _init_worker(state: dict[str, object]) -> None:
    import signal

    # A forked worker inherits the trainer's SIGTERM/SIGINT handlers (stop at the next step):
    # here they would keep the pool from ending its workers.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one core per worker: the pool spreads them
    global _worker_tokenizer
    _worker_tokenizer = Tokenizer.from_dict(state)


def _encode(text: str) -> np.ndarray:
    assert _worker_tokenizer is not None
    return _worker_tokenizer.encode(text)


def _encoded(files: list[CorpusFile], column: str, tok: Tokenizer,
             workers: int) -> Iterator[tuple[np.ndarray, int, int]]:
    """(ids, text bytes, input bytes) per chunk, in corpus order, with at most 2 chunks per
    worker in flight (the reader never runs ahead of the tokenizers by more)."""
    # forkserver, not fork: a fork of a process that runs other threads (obstore's runtime after
    # a bucket download, jemalloc's, a test session's) can leave the child waiting forever on a
    # lock one of them held (seen in CI). The server is a fresh one-thread process; workers
    # tokenize on one thread each.
    saved = os.environ.get("TOKENIZERS_PARALLELISM")
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    try:
        pool = mp.get_context("forkserver").Pool(
            workers, initializer=_init_worker, initargs=(tok.to_dict(),)
        )
    finally:
        if saved is None:
            os.environ.pop("TOKENIZERS_PARALLELISM", None)
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = saved
    try:
        flight: deque[tuple[Any, int, int]] = deque()
        for text, n_in in read_chunks(files, column):
            flight.append((pool.apply_async(_encode, (text,)), len(text.encode("utf-8")), n_in))
            if len(flight) >= 2 * workers:
                job, n_text, n = flight.popleft()
                yield job.get(), n_text, n
        while flight:
            job, n_text, n = flight.popleft()
            yield job.get(), n_text, n
        pool.close()
    finally:
        pool.terminate()
        pool.join()


# -- writing ------------------------------------------------------------------------------------
def _clear(out: Path) -> None:
    """Forget a previous set: its index first (so no index ever describes other shards)."""
    (out / INDEX).unlink(missing_ok=True)
    (out / MARKER).write_text(f"{os.getpid()}\n")
    for p in out.iterdir():
        if p.name.startswith("shard-") and (p.suffix == ".bin" or ".tmp" in p.name):
            p.unlink()


class ShardWriter:
    """Appends ids to shard-NNNNNN.bin files of `cap` tokens; index.json last."""

    def __init__(self, out: Path, dtype: np.dtype, cap: int):
        self.out, self.dtype, self.cap = out, np.dtype(dtype).newbyteorder("<"), cap
        self.shards: list[tuple[str, int]] = []
        self.total, self.max_id = 0, -1
        self._file: Any = None
        self._n = 0

    def _name(self) -> str:
        return f"shard-{len(self.shards):06d}.bin"

    def write(self, ids: np.ndarray) -> None:
        if ids.size:
            self.max_id = max(self.max_id, int(ids.max()))
        ids = ids.astype(self.dtype, copy=False)
        while ids.size:
            if self._file is None:
                self._file = (self.out / f"{self._name()}.tmp").open("wb")
            take = min(self.cap - self._n, ids.size)
            self._file.write(ids[:take].tobytes())
            self._n += take
            self.total += take
            ids = ids[take:]
            if self._n == self.cap:
                self._close()

    def _close(self) -> None:
        f, name = self._file, self._name()
        f.flush()
        os.fsync(f.fileno())
        f.close()
        os.replace(self.out / f"{name}.tmp", self.out / name)
        self.shards.append((name, self._n))
        self._file, self._n = None, 0

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            (self.out / f"{self._name()}.tmp").unlink(missing_ok=True)

    def finish(self, extra: dict[str, Any]) -> None:
        if self._file is not None and self._n:
            self._close()
        index = {"format": FORMAT, "dtype": self.dtype.name, "tokens": self.total,
                 "maxTokenId": self.max_id, "headerBytes": 0, **extra,
                 "shards": [{"file": n, "tokens": c} for n, c in self.shards]}
        tmp = self.out / f"{INDEX}.tmp"
        with tmp.open("w", encoding="utf-8") as f:
            json.dump(index, f, indent=1)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        fsync(self.out)  # the shards' renames are durable before the index names them
        os.replace(tmp, self.out / INDEX)
        (self.out / MARKER).unlink(missing_ok=True)
        fsync(self.out)


def ensure_prepared(tokens: TokenData, text: TextPreprocessing, split: SplitFractions,
                    base: Path | None) -> None:
    """prepare.onFirstUse: rank 0 prepares when the index is missing, the other ranks wait at a
    barrier (a gloo group without a practical timeout: preparing may take hours)."""
    import datetime

    import torch.distributed as dist

    distributed = dist.is_available() and dist.is_initialized()
    group = (dist.new_group(backend="gloo", timeout=datetime.timedelta(days=7))
             if distributed else None)
    if (not distributed or dist.get_rank() == 0) and find_index(
            output_dir(tokens, base)) is None:
        import sys

        print(f"kubetrain: preparing token shards in {tokens.path} (prepare.onFirstUse)",
              file=sys.stderr)
        done = prepare(tokens, text, split, base)
        print(f"kubetrain: prepared {done.tokens:,} tokens in {done.shards} shards"
              f" ({done.mb_per_second:.1f} MB/s of text)", file=sys.stderr)
    if group is not None:
        dist.barrier(group=group)
