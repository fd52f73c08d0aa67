"""Data for Hugging Face models, tokenized with the model's own tokenizer.

- instruct: JSON Lines of prompt/response pairs or chat messages (rendered with the tokenizer's
  chat template); loss on response tokens only (label -100 elsewhere), truncation to maxLength,
  padding per batch or packing into full sequences;
- text for an hf model from a directory, when the dataset names no tokenizer of its own;
- tabular rows for an hf sequence classifier: each row rendered as "name: value; ..." text.

Targets are shifted here (y[t] is the token after x[t]), as TokenWindows does for text, so the
loop's loss needs no knowledge of Hugging Face's label convention.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kubetrain.api.data import InstructData
from kubetrain.api.spec import TrainingJobSpec
from kubetrain.data.shapes import DataShapes
from kubetrain.data.splits import contiguous_ranges, split_indices
from kubetrain.errors import InvalidJob
from kubetrain.metrics.losses import IGNORE
from kubetrain.preprocessing.state import ArrayState, PreprocessingState, TokensState
from kubetrain.preprocessing.target import TargetState

DEFAULT_MAX_LENGTH = 2048


def uses_model_tokenizer(spec: TrainingJobSpec) -> bool:
    """True when the data must be tokenized with the hf model's tokenizer (built here)."""
    hf = spec.model.hf
    if spec.dataset.type == "instruct":
        return True
    if hf is None:
        return False
    if spec.dataset.type == "tabular":
        return hf.task == "sequenceClassification"
    # Text: the model's tokenizer (its embeddings are indexed by it), unless the dataset trains
    # or names a subword tokenizer of its own (bpe, pretrained). char and byte are the text
    # defaults for the registry gpt, not a choice for a model that comes with a tokenizer.
    return (spec.dataset.type == "text" and (hf.path is not None or hf.tokenizer is not None)
            and spec.preprocessing.text.tokenizer not in ("bpe", "pretrained"))


def build_model_tokenized(spec: TrainingJobSpec, base: Path | None,
                          state: PreprocessingState | None) -> Any:
    """The DataBundle of a job whose data the model's tokenizer reads."""
    from kubetrain.data.build import DataBundle
    from kubetrain.models.hf import tokenizer_for

    hf = spec.model.hf
    if hf is None:
        raise InvalidJob("dataset type instruct needs model type hf (its tokenizer reads the"
                         " examples)")
    tok = tokenizer_for(hf, base)
    vocab = len(tok)
    if spec.dataset.type == "tabular":
        return _rows_as_text(spec, tok, base, state)
    if state is not None and not isinstance(state, TokensState):
        raise InvalidJob(f"the saved preprocessing is for {state.kind} data, but the dataset now"
                         " yields tokens; use a new run directory")
    length = max_length(spec, base)
    if spec.dataset.type == "text":
        from kubetrain.data.samples import TokenWindows
        from kubetrain.data.sources import read_text

        text = read_text(spec.dataset.text, base=base).text  # type: ignore[arg-type]
        ids = np.asarray(tok(text, add_special_tokens=False)["input_ids"], dtype=np.int64)
        tr, va, te = contiguous_ranges(len(ids), spec.dataset.split)
        if tr.stop - tr.start < 2 * (length + 1):
            raise InvalidJob(f"the training text has {tr.stop - tr.start} tokens, fewer than two"
                             f" windows of {length} + 1; use more text or a shorter seqLen")
        packing = spec.preprocessing.text.packing
        return DataBundle(TokenWindows(ids[tr], length, packing, spec.training.seed),
                          TokenWindows(ids[va], length), TokenWindows(ids[te], length),
                          DataShapes("lm", (length,), vocab, length), TokensState(vocab))
    src: InstructData = spec.dataset.instruct  # type: ignore[assignment]
    records = read_jsonl(src, base)
    check_chat_template(src, records[0][1], tok)
    pairs = [encode(src, tok, rec, where) for where, rec in records]
    kept = [(x, y) for x, y in (truncate(src, x, y, length) for x, y in pairs if len(x) > 0)
            if (y != IGNORE).any()]
    dropped = len(pairs) - len(kept)
    if dropped:
        print(f"kubetrain: {dropped} of {len(pairs)} examples have no {src.loss_on} token within"
              f" maxLength {length} and are left out", file=sys.stderr)
    if not kept:
        raise InvalidJob(f"dataset.instruct.path {src.path}: no example has a response token"
                         f" within maxLength {length}")
    parts = split_indices(len(kept), spec.dataset.split)
    make = ((lambda idx: PackedSequences.pack([kept[i] for i in idx], length))
            if src.packing else (lambda idx: PaddedSequences([kept[i] for i in idx], pad_id(tok))))
    return DataBundle(make(parts.train), make(parts.val), make(parts.test),
                      DataShapes("lm", (length,), vocab, length), TokensState(vocab))


def max_length(spec: TrainingJobSpec, base: Path | None) -> int:
    """maxLength (instruct) or seqLen (text), else the model's context, at most 2048."""
    given = (spec.dataset.instruct.max_length if spec.dataset.instruct is not None
             else spec.preprocessing.text.seq_len)
    if given:
        return given
    from kubetrain.models.hf_source import load_config

    cfg = load_config(spec.model.hf, base)  # type: ignore[arg-type]
    for k, v in (spec.model.hf.config or {}).items():  # type: ignore[union-attr]
        setattr(cfg, k, v)
    return min(getattr(cfg, "max_position_embeddings", None) or DEFAULT_MAX_LENGTH,
               DEFAULT_MAX_LENGTH)


def pad_id(tok: Any) -> int:
    return int(tok.pad_token_id if tok.pad_token_id is not None else
               (tok.eos_token_id if tok.eos_token_id is not None else 0))


# -- reading and encoding ------------------------------------------------------------------
def read_jsonl(src: InstructData, base: Path | None) -> list[tuple[str, dict[str, Any]]]:
    """(where, record) per line: a .jsonl file or every .jsonl of a directory."""
    from kubetrain.data.uri import local_path

    path = local_path(src.path, base=base)
    files = [path] if path.is_file() else sorted(path.rglob("*.jsonl"))
    if not files:
        raise InvalidJob(f"dataset.instruct.path {src.path}: no .jsonl files there")
    out = []
    for f in files:
        for n, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            where = f"{f.name}:{n}"
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise InvalidJob(f"dataset.instruct.path {where}: not JSON ({e.msg})") from None
            if not isinstance(rec, dict):
                raise InvalidJob(f"dataset.instruct.path {where}: not a JSON object")
            out.append((where, rec))
    if not out:
        raise InvalidJob(f"dataset.instruct.path {src.path}: no examples (empty file?)")
    return out


def is_chat(src: InstructData, first: dict[str, Any]) -> bool:
    return src.format == "messages" or (src.format == "auto" and src.messages_field in first)


def check_chat_template(src: InstructData, first: dict[str, Any], tok: Any) -> None:
    if is_chat(src, first) and not getattr(tok, "chat_template", None):
        raise InvalidJob("dataset.instruct: the examples are chat messages but the tokenizer has"
                         " no chat template (tokenizer_config.json chat_template); add one, or"
                         " write prompt/response fields and set format promptResponse")


def encode(src: InstructData, tok: Any, rec: dict[str, Any], where: str
           ) -> tuple[np.ndarray, np.ndarray]:
    """(token ids, labels) of one example; labels are IGNORE where no loss is taken."""
    if is_chat(src, rec):
        ids, labels = _encode_chat(src, tok, rec, where)
    else:
        ids, labels = _encode_pair(src, tok, rec, where)
    return np.asarray(ids, dtype=np.int64), np.asarray(labels, dtype=np.int64)


def _text_field(rec: dict[str, Any], name: str, where: str, field: str) -> str:
    if name not in rec:
        raise InvalidJob(f"dataset.instruct.path {where}: no field {name!r} (fields:"
                         f" {', '.join(rec)}); set dataset.instruct.{field}")
    if not isinstance(rec[name], str):
        raise InvalidJob(f"dataset.instruct.path {where}: field {name!r} is not a string")
    return rec[name]


def _encode_pair(src: InstructData, tok: Any, rec: dict[str, Any], where: str
                 ) -> tuple[list[int], list[int]]:
    prompt = _text_field(rec, src.prompt_field, where, "promptField")
    response = _text_field(rec, src.response_field, where, "responseField")
    bos = [tok.bos_token_id] if tok.bos_token_id is not None else []
    eos = [tok.eos_token_id] if tok.eos_token_id is not None else []
    p = bos + tok(prompt, add_special_tokens=False)["input_ids"]
    r = tok(response, add_special_tokens=False)["input_ids"] + eos
    return p + r, ([IGNORE] * len(p) if src.loss_on == "response" else p) + r


def _encode_chat(src: InstructData, tok: Any, rec: dict[str, Any], where: str
                 ) -> tuple[list[int], list[int]]:
    msgs = rec.get(src.messages_field)
    if not (isinstance(msgs, list) and msgs and all(
            isinstance(m, dict) and isinstance(m.get("role"), str)
            and isinstance(m.get("content"), str) for m in msgs)):
        raise InvalidJob(f"dataset.instruct.path {where}: {src.messages_field!r} must be a"
                         " non-empty list of {role, content} strings")

    def render(ms: list[dict[str, Any]], gen: bool = False) -> str:
        return str(tok.apply_chat_template(ms, tokenize=False, add_generation_prompt=gen))

    text = render(msgs)
    spans = []
    for k, m in enumerate(msgs):
        if m["role"] != "assistant":
            continue
        before, upto = render(msgs[:k], gen=True), render(msgs[:k + 1])
        if not (text.startswith(before) and text.startswith(upto)):
            raise InvalidJob(f"dataset.instruct.path {where}: the chat template does not render"
                             " a conversation as the concatenation of its turns, so the"
                             " assistant's tokens cannot be found; use loss_on all")
        spans.append((len(before), len(upto)))
    if src.loss_on == "response" and not spans:
        raise InvalidJob(f"dataset.instruct.path {where}: no assistant message to learn from")
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc["input_ids"])
    if src.loss_on == "all":
        return ids, ids
    labels = [i if any(a <= start < b for a, b in spans) else IGNORE
              for i, (start, _) in zip(ids, enc["offset_mapping"], strict=True)]
    return ids, labels


def truncate(src: InstructData, ids: np.ndarray, labels: np.ndarray, length: int
             ) -> tuple[np.ndarray, np.ndarray]:
    """Shift (x[t] predicts y[t]) and cut to `length` inputs; (empty, empty) when dropped."""
    if len(ids) > length + 1:
        if src.truncation == "drop":
            return ids[:0], labels[:0]
        keep = slice(0, length + 1) if src.truncation == "keepStart" else slice(-(length + 1),
                                                                                None)
        ids, labels = ids[keep], labels[keep]
    return ids[:-1], labels[1:]


# -- samples -------------------------------------------------------------------------------
@dataclass
class PaddedSequences:
    """Examples of different lengths; a batch is right-padded to its longest (targets IGNORE)."""

    examples: list[tuple[np.ndarray, np.ndarray]]
    pad: int

    def __post_init__(self) -> None:
        self.targets = np.array([int((y != IGNORE).sum()) for _, y in self.examples],
                                dtype=np.int64)

    def __len__(self) -> int:
        return len(self.examples)

    def batch(self, idx: np.ndarray, epoch: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        rows = [self.examples[i] for i in idx]
        t = max(len(x) for x, _ in rows)
        x = np.full((len(rows), t), self.pad, dtype=np.int64)
        y = np.full((len(rows), t), IGNORE, dtype=np.int64)
        for r, (xi, yi) in enumerate(rows):
            x[r, :len(xi)], y[r, :len(yi)] = xi, yi
        return torch.from_numpy(x), torch.from_numpy(y)

    def target_count(self, idx: np.ndarray) -> int:
        """Targets that carry loss in these samples (the loss's normaliser)."""
        return int(self.targets[idx].sum())

    def to(self, device: torch.device) -> PaddedSequences:
        return self


@dataclass
class PackedSequences:
    """Examples laid end to end and cut into sequences of exactly seq_len tokens."""

    x: np.ndarray
    y: np.ndarray
    seq_len: int

    @classmethod
    def pack(cls, examples: list[tuple[np.ndarray, np.ndarray]], seq_len: int
             ) -> PackedSequences:
        if not examples:
            return cls(np.zeros((0, seq_len), np.int64), np.zeros((0, seq_len), np.int64),
                       seq_len)
        xs, ys = np.concatenate([x for x, _ in examples]), np.concatenate([y for _, y in examples])
        n = -(-len(xs) // seq_len)
        pad = n * seq_len - len(xs)
        xs = np.concatenate([xs, np.zeros(pad, np.int64)]).reshape(n, seq_len)
        ys = np.concatenate([ys, np.full(pad, IGNORE, np.int64)]).reshape(n, seq_len)
        return cls(xs, ys, seq_len)

    def __post_init__(self) -> None:
        self.targets = (self.y != IGNORE).sum(1)

    def __len__(self) -> int:
        return len(self.x)

    def batch(self, idx: np.ndarray, epoch: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(self.x[idx]), torch.from_numpy(self.y[idx])

    def target_count(self, idx: np.ndarray) -> int:
        return int(self.targets[idx].sum())

    def to(self, device: torch.device) -> PackedSequences:
        return self


# -- rows as text (sequence classification) ------------------------------------------------
def _rows_as_text(spec: TrainingJobSpec, tok: Any, base: Path | None,
                  state: PreprocessingState | None) -> Any:
    """Each row's features as 'name: value; ...' text, the label as a class index. The saved
    state is the label vocabulary (ArrayState holds a TargetState and nothing else here)."""
    from kubetrain.data.build import DataBundle, check_table
    from kubetrain.data.sources import read_table

    if state is not None and not isinstance(state, ArrayState):
        raise InvalidJob(f"the saved preprocessing is for {state.kind} data; use a new run"
                         " directory")
    src = spec.dataset.tabular
    raw = read_table(src, base=base)  # type: ignore[arg-type]
    cols = src.columns  # type: ignore[union-attr]
    check_table(raw, cols.label, list(raw.columns), spec.training.loss)
    labels = raw.columns.pop(cols.label)
    names = list(raw.columns)
    texts = ["; ".join(f"{k}: {_cell(raw.columns[k][i])}" for k in names)
             for i in range(len(labels))]
    parts = split_indices(len(labels), spec.dataset.split,
                          labels if spec.dataset.split.stratify else None)
    what = f"label column {cols.label!r}"
    target = state.target if state is not None else TargetState.fit(
        "classification", labels[parts.train], False, what)
    length = spec.preprocessing.text.seq_len or 128
    pad = pad_id(tok)
    enc = tok(texts, add_special_tokens=True, truncation=True, max_length=length)["input_ids"]
    splits = []
    for idx, name in ((parts.train, "training"), (parts.val, "val"), (parts.test, "test")):
        y = target.transform(labels[idx], what, name)
        rows = [enc[i] for i in idx]
        x = np.full((len(rows), max((len(r) for r in rows), default=1)), pad, dtype=np.int64)
        for r, ids in enumerate(rows):
            x[r, :len(ids)] = ids
        from kubetrain.data.samples import TensorSamples

        splits.append(TensorSamples(torch.from_numpy(x), torch.from_numpy(y)))
    counts = torch.bincount(splits[0].y, minlength=target.num_classes).tolist()
    shapes = DataShapes("classification", (splits[0].x.shape[1],), target.num_classes)
    return DataBundle(*splits, shapes, ArrayState(target), counts)


def _cell(v: object) -> str:
    if isinstance(v, float):
        return "" if v != v else f"{v:g}"  # NaN: missing
    return "" if v is None else str(v)
