"""Assemble the splits a run trains on: read, clean, split, fit preprocessing, transform."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kubetrain.api.spec import TrainingJobSpec
from kubetrain.data.errors import DataError
from kubetrain.data.shapes import DataShapes
from kubetrain.data.sources import Arrays, Table, Text, TokenStream, load_source
from kubetrain.data.splitdata import Split, TensorSplit, TokenSplit
from kubetrain.data.splits import contiguous_ranges, split_indices
from kubetrain.data.text import Tokenizer, cached_tokens
from kubetrain.preprocessing.image import fit_channel_stats, normalize_images
from kubetrain.preprocessing.tabular import FeatureState, rows_to_keep
from kubetrain.preprocessing.target import TargetState


@dataclass
class DataBundle:
    """The three splits, the shapes the model needs and the fitted preprocessing state."""

    train: Split
    val: Split
    test: Split
    shapes: DataShapes
    state: dict[str, Any]
    """JSON-serialisable preprocessing state (saved next to the model)."""
    class_counts: list[int] | None = None

    @property
    def target(self) -> TargetState | None:
        t = self.state.get("target")
        return TargetState(**t) if t else None

    @property
    def tokenizer(self) -> Tokenizer | None:
        t = self.state.get("tokenizer")
        return Tokenizer.from_state(t) if t else None


def infer_task(spec: TrainingJobSpec, labels: np.ndarray) -> str:
    """classification or regression for tabular and array data."""
    loss = spec.training.loss
    if loss in ("cross_entropy", "bce"):
        return "classification"
    if loss in ("mse", "huber"):
        return "regression"
    metrics = set(spec.training.eval.metrics)
    if labels.dtype == object or labels.dtype.kind in "iub" or metrics & {"accuracy", "f1"}:
        return "classification"
    return "regression"


def build_data(spec: TrainingJobSpec, *, cache_dir: Path | None = None, base: Path | None = None,
               state: dict[str, Any] | None = None) -> DataBundle:
    """Every split, preprocessed with `state` when given (resume, eval) or fitted on train."""
    raw = load_source(spec.dataset, base=base)
    if isinstance(raw, Text | TokenStream):
        return _tokens(spec, raw, cache_dir, state)
    if isinstance(raw, Table):
        return _table(spec, raw, state)
    return _arrays(spec, raw, state)


def _tokens(spec: TrainingJobSpec, raw: Text | TokenStream, cache_dir: Path | None,
            state: dict[str, Any] | None) -> DataBundle:
    text_spec = spec.preprocessing.text
    gpt = spec.model.gpt
    seq_len = text_spec.seq_len or (gpt.context if gpt else 64)
    if isinstance(raw, Text):
        cut = contiguous_ranges(len(raw.text), spec.dataset.split)
        if state is None:
            tok = Tokenizer.fit(text_spec.tokenizer, raw.text[cut[0]], raw.text)
            state = {"kind": "text", "tokenizer": tok.state()}
        tok = Tokenizer.from_state(state["tokenizer"])
        tokens = cached_tokens(raw.text, tok, cache_dir)
        vocab = tok.vocab_size
    else:
        tokens, vocab = raw.tokens, raw.vocab_size
        state = state or {"kind": "tokens", "vocabSize": vocab}
    train_r, val_r, test_r = contiguous_ranges(len(tokens), spec.dataset.split)
    need = 2 * (seq_len + 1)
    if train_r.stop - train_r.start < need:
        raise DataError(
            f"the training text has {train_r.stop - train_r.start} tokens, fewer than two windows"
            f" of the context ({seq_len} + 1 tokens); use more text or a shorter context"
        )
    if spec.dataset.split.val > 0 and val_r.stop - val_r.start < seq_len + 2:
        raise DataError(f"the validation text has {val_r.stop - val_r.start} tokens, shorter than"
                        f" the context ({seq_len} + 1 tokens); raise split.val or shorten it")
    seed = spec.training.seed
    return DataBundle(
        TokenSplit(tokens[train_r], seq_len, text_spec.packing, seed),
        TokenSplit(tokens[val_r], seq_len),
        TokenSplit(tokens[test_r], seq_len),
        DataShapes("lm", (seq_len,), vocab, seq_len),
        state,
    )


def _table(spec: TrainingJobSpec, raw: Table, state: dict[str, Any] | None) -> DataBundle:
    cols = spec.dataset.source.columns  # type: ignore[union-attr]
    label = raw.columns.pop(cols.label)
    prep = spec.preprocessing
    keep = rows_to_keep(raw.columns, prep)
    features = {k: v[keep] for k, v in raw.columns.items()}
    label = label[keep]
    if len(label) == 0:
        raise DataError("no rows left after removing rows with missing values")
    task = state["target"]["task"] if state else infer_task(spec, label)
    parts = split_indices(len(label), spec.dataset.split,
                          label if task == "classification" else None)
    if state is None:
        fs = FeatureState.fit(features, parts.train, prep, cols.categorical)
        target = TargetState.fit(task, label[parts.train], prep.normalize == "zscore", cols.label)
        state = {"kind": "tabular", "features": fs.state(), "target": target.state()}
    fs = FeatureState.from_state(state["features"])
    target = TargetState(**state["target"])
    x = fs.transform(features)
    splits = [_tensor_split(x[idx], target.transform(label[idx], cols.label, name))
              for idx, name in zip(parts.__dict__.values(), ("training", "val", "test"),
                                   strict=True)]
    return _bundle(splits, target, (x.shape[1],), state)


def _arrays(spec: TrainingJobSpec, raw: Arrays, state: dict[str, Any] | None) -> DataBundle:
    x, y = raw.x, raw.y
    task = state["target"]["task"] if state else infer_task(spec, y)
    parts = split_indices(len(y), spec.dataset.split, y if task == "classification" else None)
    image = x.ndim == 4
    if state is None:
        prep = spec.preprocessing
        target = TargetState.fit(task, y[parts.train], prep.normalize == "zscore", "labels")
        state = {"kind": "arrays", "target": target.state()}
        if image:
            mean, std = fit_channel_stats(x[parts.train], prep.image)
            state["image"] = {"mean": mean, "std": std}
        elif prep.normalize != "none":
            flat = x[parts.train].reshape(len(parts.train), -1).astype(np.float64)
            if prep.normalize == "zscore":
                shift, scale = flat.mean(0), flat.std(0)
            else:
                shift, scale = flat.min(0), flat.max(0) - flat.min(0)
            state["scale"] = {"shift": shift.tolist(), "scale": np.where(scale > 0, scale, 1.0)
                              .tolist()}
    target = TargetState(**state["target"])
    if image:
        x = normalize_images(x, state["image"]["mean"], state["image"]["std"])
    else:
        x = x.reshape(len(x), -1).astype(np.float32)
        if "scale" in state:
            x = ((x - np.asarray(state["scale"]["shift"])) / np.asarray(state["scale"]["scale"])
                 ).astype(np.float32)
    splits = [_tensor_split(x[idx], target.transform(y[idx], "labels", name))
              for idx, name in zip(parts.__dict__.values(), ("training", "val", "test"),
                                   strict=True)]
    return _bundle(splits, target, tuple(x.shape[1:]), state)


def _tensor_split(x: np.ndarray, y: np.ndarray) -> TensorSplit:
    return TensorSplit(torch.from_numpy(np.ascontiguousarray(x)),
                       torch.from_numpy(np.ascontiguousarray(y)))


def _bundle(splits: list[TensorSplit], target: TargetState, input_shape: tuple[int, ...],
            state: dict[str, Any]) -> DataBundle:
    outputs = target.num_classes if target.task == "classification" else 1
    counts = None
    if target.task == "classification":
        counts = torch.bincount(splits[0].y, minlength=outputs).tolist()
    shapes = DataShapes(target.task, input_shape, outputs)
    return DataBundle(*splits, shapes, state, counts)
