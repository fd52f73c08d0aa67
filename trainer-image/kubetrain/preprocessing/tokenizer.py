"""Text → token ids: characters of the training split (char) or UTF-8 bytes (byte)."""

from __future__ import annotations

from dataclasses import dataclass

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

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "chars": self.chars, "unk": self.unk}

    @classmethod
    def from_dict(cls, state: dict[str, object]) -> Tokenizer:
        return cls(str(state["kind"]), str(state.get("chars", "")), bool(state.get("unk", False)))
