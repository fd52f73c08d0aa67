"""The tokenize-once cache: a corpus's token ids on disk, memory-mapped for large corpora."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from kubetrain.preprocessing.tokenizer import Tokenizer


def cached_tokens(text: str, tokenizer: Tokenizer, cache_dir: Path | None) -> np.ndarray:
    """The token ids of text, computed once per (text, tokenizer) and memory-mapped after that."""
    if cache_dir is None:
        return tokenizer.encode(text)
    key = hashlib.sha256(text.encode("utf-8", "surrogatepass"))
    key.update(json.dumps(tokenizer.to_dict(), sort_keys=True).encode())
    path = cache_dir / f"tokens-{key.hexdigest()[:16]}.u16"
    if not path.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tokenizer.encode(text).tofile(tmp)
        os.replace(tmp, path)  # concurrent ranks may race; the rename makes either win whole
    return np.memmap(path, dtype=np.uint16, mode="r")
