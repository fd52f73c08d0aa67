"""The tokenize-once caches: a trained BPE and a corpus's token ids on disk (memory-mapped)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from kubetrain.preprocessing.tokenizer import DEFAULT_BPE_VOCAB, Tokenizer, pieces, train_bpe


def _publish(path: Path, data: bytes) -> None:
    """Write `path` whole or not at all (concurrent ranks may race; the rename makes either win
    whole)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def cached_bpe(train_text: str, vocab_size: int | None, cache_dir: Path | None) -> Tokenizer:
    """A BPE trained on the training text, once per (text, vocabulary size)."""
    vocab = vocab_size or DEFAULT_BPE_VOCAB
    if cache_dir is None:
        return Tokenizer("bpe", hf_json=train_bpe(pieces(train_text), vocab))
    key = hashlib.sha256(train_text.encode("utf-8", "surrogatepass"))
    key.update(f"bpe:{vocab}".encode())
    path = cache_dir / f"tokenizer-{key.hexdigest()[:16]}.json"
    if not path.exists():
        _publish(path, train_bpe(pieces(train_text), vocab).encode())
    return Tokenizer("bpe", hf_json=path.read_text(encoding="utf-8"))


def cached_tokens(text: str, tokenizer: Tokenizer, cache_dir: Path | None) -> np.ndarray:
    """The token ids of text, computed once per (text, tokenizer) and memory-mapped after that."""
    if cache_dir is None:
        return tokenizer.encode(text)
    key = hashlib.sha256(text.encode("utf-8", "surrogatepass"))
    key.update(json.dumps(tokenizer.to_dict(), sort_keys=True).encode())
    dtype = tokenizer.dtype
    suffix = "u16" if dtype == np.uint16 else "u32"
    path = cache_dir / f"tokens-{key.hexdigest()[:16]}.{suffix}"
    if not path.exists():
        _publish(path, tokenizer.encode(text).astype(dtype).tobytes())
    if path.stat().st_size == 0:
        return np.zeros(0, dtype)
    return np.memmap(path, dtype=dtype, mode="r")


def write_tokenizer_file(directory: Path, tokenizer: Tokenizer | None) -> Path | None:
    """`directory`/tokenizer.json for a bpe or pretrained tokenizer (what other tools load)."""
    if tokenizer is None or not tokenizer.hf_json:
        return None
    path = directory / "tokenizer.json"
    if not path.exists() or path.read_text(encoding="utf-8") != tokenizer.hf_json:
        _publish(path, tokenizer.hf_json.encode())
    return path
