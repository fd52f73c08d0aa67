"""Tokenizers (char, byte) and the tokenize-once cache, memory-mapped for large corpora."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Tokenizer:
    """char: the distinct characters of the training split (plus <unk> if needed); byte: 256."""

    kind: str
    chars: str = ""
    unk: bool = False

    @property
    def vocab_size(self) -> int:
        return 256 if self.kind == "byte" else len(self.chars) + int(self.unk)

    @classmethod
    def fit(cls, kind: str, train_text: str, full_text: str) -> Tokenizer:
        if kind == "byte":
            return cls("byte")
        chars = "".join(sorted(set(train_text)))
        return cls("char", chars, unk=bool(set(full_text) - set(chars)))

    def encode(self, text: str) -> np.ndarray:
        if self.kind == "byte":
            return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.uint16)
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        table = np.full(max(max(map(ord, self.chars), default=0), int(codes.max(initial=0))) + 1,
                        len(self.chars), dtype=np.uint16)  # unknown → the <unk> id
        table[[ord(c) for c in self.chars]] = np.arange(len(self.chars), dtype=np.uint16)
        return table[codes]

    def decode(self, ids: list[int]) -> str:
        if self.kind == "byte":
            return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")
        return "".join(self.chars[i] if i < len(self.chars) else "?" for i in ids)

    def state(self) -> dict[str, object]:
        return {"kind": self.kind, "chars": self.chars, "unk": self.unk}

    @classmethod
    def from_state(cls, state: dict[str, object]) -> Tokenizer:
        return cls(str(state["kind"]), str(state.get("chars", "")), bool(state.get("unk", False)))


def cached_tokens(text: str, tokenizer: Tokenizer, cache_dir: Path | None) -> np.ndarray:
    """The token ids of text, computed once per (text, tokenizer) and memory-mapped after that."""
    if cache_dir is None:
        return tokenizer.encode(text)
    key = hashlib.sha256(text.encode("utf-8", "surrogatepass"))
    key.update(json.dumps(tokenizer.state(), sort_keys=True).encode())
    path = cache_dir / f"tokens-{key.hexdigest()[:16]}.u16"
    if not path.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tokenizer.encode(text).tofile(tmp)
        os.replace(tmp, path)  # concurrent ranks may race; the rename makes either win whole
    return np.memmap(path, dtype=np.uint16, mode="r")
