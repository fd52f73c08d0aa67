"""Text → token ids: characters of the training split (char), UTF-8 bytes (byte), a byte-level
BPE trained on the training split (bpe) or a Hugging Face tokenizer.json (pretrained).

bpe and pretrained go through the Hugging Face `tokenizers` library; their whole definition
(the tokenizer.json text) is part of the state, so a checkpoint or a model directory decodes
exactly as training encoded.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kubetrain.errors import InvalidJob

HF_KINDS = ("bpe", "pretrained")
END_OF_TEXT = "<|endoftext|>"
DEFAULT_BPE_VOCAB = 4096
PIECE_CHARS = 1 << 16
"""Text is encoded in pieces of about this many characters, cut after a new line, so that the
library's batch encoding spreads a long text over every core (the same cut everywhere)."""


def token_dtype(vocab_size: int) -> np.dtype:
    """The narrowest unsigned type that holds every id (uint16 up to 65,536 tokens)."""
    return np.dtype(np.uint16 if vocab_size <= 1 << 16 else np.uint32)


def pieces(text: str, size: int = PIECE_CHARS) -> Iterator[str]:
    """`text` cut into consecutive pieces of at least `size` characters, each ending with a new
    line where the text has one (the last piece takes the rest)."""
    start, n = 0, len(text)
    while start < n:
        cut = text.find("\n", start + size)
        stop = n if cut < 0 else cut + 1
        yield text[start:stop]
        start = stop


def train_bpe(texts: Iterable[str], vocab_size: int) -> str:
    """A byte-level BPE (GPT-2 style) trained on `texts`; its tokenizer.json text."""
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers, trainers

    tok = HFTokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[END_OF_TEXT],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(texts, trainer)
    return tok.to_str()


def read_tokenizer_file(path: Path, shown: str | None = None) -> str:
    """The text of a tokenizer.json (a directory means its tokenizer.json), checked to parse."""
    shown = shown or str(path)
    file = path / "tokenizer.json" if path.is_dir() else path
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidJob(f"{shown}: no tokenizer.json in this directory") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidJob(f"{shown}: cannot read the tokenizer file: {e}") from None
    _parse(text, shown)
    return text


def _parse(text: str, shown: str) -> Any:
    from tokenizers import Tokenizer as HFTokenizer

    try:
        return HFTokenizer.from_str(text)
    except Exception as e:  # the library raises a bare Exception for any malformed file
        why = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise InvalidJob(f"{shown}: not a tokenizer.json the tokenizers library can read"
                         f" ({why})") from None


@dataclass
class Tokenizer:
    """char: the distinct characters of the training split (plus <unk> if needed); byte: 256;
    bpe / pretrained: a Hugging Face tokenizer, kept as its tokenizer.json text."""

    kind: str
    chars: str = ""
    unk: bool = False
    hf_json: str = ""
    _hf: Any = field(default=None, init=False, repr=False, compare=False)

    @property
    def hf(self) -> Any:
        if self._hf is None:
            self._hf = _parse(self.hf_json, f"the {self.kind} tokenizer")
        return self._hf

    @property
    def vocab_size(self) -> int:
        if self.kind in HF_KINDS:
            return int(self.hf.get_vocab_size(with_added_tokens=True))
        return 256 if self.kind == "byte" else len(self.chars) + int(self.unk)

    @property
    def dtype(self) -> np.dtype:
        return token_dtype(self.vocab_size)

    @classmethod
    def fit(cls, kind: str, train_text: str, full_text: str, *, vocab_size: int | None = None,
            hf_json: str | None = None) -> Tokenizer:
        """The tokenizer of `kind` fitted on the training text only (bpe: trained on it;
        pretrained: `hf_json` as given)."""
        if kind == "byte":
            return cls("byte")
        if kind == "pretrained":
            assert hf_json is not None
            return cls("pretrained", hf_json=hf_json)
        if kind == "bpe":
            return cls("bpe", hf_json=hf_json or train_bpe(
                pieces(train_text), vocab_size or DEFAULT_BPE_VOCAB))
        chars = "".join(sorted(set(train_text)))
        return cls("char", chars, unk=bool(set(full_text) - set(chars)))

    def encode(self, text: str) -> np.ndarray:
        if self.kind in HF_KINDS:
            parts = list(pieces(text))
            if not parts:
                return np.zeros(0, self.dtype)
            ids = [e.ids for e in self.hf.encode_batch(parts, add_special_tokens=False)]
            return np.fromiter((i for seq in ids for i in seq), dtype=self.dtype,
                               count=sum(map(len, ids)))
        if self.kind == "byte":
            return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.uint16)
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        table = np.full(max(max(map(ord, self.chars), default=0), int(codes.max(initial=0))) + 1,
                        len(self.chars), dtype=np.uint16)  # unknown → the <unk> id
        table[[ord(c) for c in self.chars]] = np.arange(len(self.chars), dtype=np.uint16)
        return table[codes]

    def decode(self, ids: list[int]) -> str:
        if self.kind in HF_KINDS:
            return str(self.hf.decode(ids, skip_special_tokens=False))
        if self.kind == "byte":
            return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")
        return "".join(self.chars[i] if i < len(self.chars) else "?" for i in ids)

    def knows(self, text: str) -> list[str]:
        """Characters of `text` this tokenizer cannot encode (char without <unk> only)."""
        if self.kind != "char" or self.unk:
            return []
        return sorted(set(text) - set(self.chars))

    def to_dict(self) -> dict[str, object]:
        if self.kind in HF_KINDS:
            return {"kind": self.kind, "tokenizerJson": self.hf_json}
        return {"kind": self.kind, "chars": self.chars, "unk": self.unk}

    @classmethod
    def from_dict(cls, state: dict[str, object]) -> Tokenizer:
        kind = str(state["kind"])
        if kind in HF_KINDS:
            tok = cls(kind, hf_json=str(state["tokenizerJson"]))
            tok.hf  # noqa: B018 - parse now: a damaged state is reported where it is read
            return tok
        if kind not in ("char", "byte"):
            raise ValueError(f"unknown tokenizer kind {kind!r}")
        return cls(kind, str(state.get("chars", "")), bool(state.get("unk", False)))
