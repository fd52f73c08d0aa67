"""Assemble the splits a run trains on: read, clean, split, fit preprocessing, transform."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from kubetrain.api.spec import TrainingJobSpec
from kubetrain.data.checks import (
    check_finite_column,
    check_missing_labels,
    check_regression_labels,
    check_text_column,
)
from kubetrain.data.instruct import build_model_tokenized, uses_model_tokenizer
from kubetrain.data.samples import Samples, TensorSamples, TokenWindows
from kubetrain.data.shapes import DataShapes
from kubetrain.data.shards import ShardSet, ShardStream
from kubetrain.data.sources import Arrays, Table, Text, TokenStream, load_source
from kubetrain.data.splits import SplitIndices, contiguous_ranges, split_indices
from kubetrain.data.text import cached_bpe, cached_tokens
from kubetrain.errors import InvalidJob
from kubetrain.preprocessing.arrays import ArrayScale
from kubetrain.preprocessing.image import ChannelStats
from kubetrain.preprocessing.state import (
    ArrayState,
    PreprocessingState,
    TabularState,
    TextState,
    TokensState,
)
from kubetrain.preprocessing.tabular import FeatureState, rows_to_keep
from kubetrain.preprocessing.target import TargetState
from kubetrain.preprocessing.tokenizer import Tokenizer, read_tokenizer_file


@dataclass
class DataBundle:
    """The three splits, the shapes the model needs and the fitted preprocessing state."""

    train: Samples
    val: Samples
    test: Samples
    shapes: DataShapes
    state: PreprocessingState
    class_counts: list[int] | None = None

    @property
    def target(self) -> TargetState | None:
        return getattr(self.state, "target", None)

    @property
    def tokenizer(self) -> Tokenizer | None:
        return self.state.tokenizer if isinstance(self.state, TextState) else None

    @property
    def target_scale(self) -> float:
        """Regression targets' scale, so metrics read in the label's own units (else 1)."""
        t = self.target
        return t.scale if t is not None and t.task == "regression" else 1.0


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
               state: PreprocessingState | None = None) -> DataBundle:
    """Every split, preprocessed with `state` when given (resume, eval) or fitted on train."""
    if uses_model_tokenizer(spec):  # an hf model's tokenizer reads the data (data/instruct.py)
        return build_model_tokenized(spec, base, state)
    if spec.dataset.type == "tokens":
        return _shards(spec, cache_dir, base, state)
    raw = load_source(spec.dataset, base=base)
    if isinstance(raw, Text | TokenStream):
        return _tokens(spec, raw, cache_dir, base, state)
    if isinstance(raw, Table):
        return _table(spec, raw, _expect(state, TabularState))
    return _arrays(spec, raw, _expect(state, ArrayState))


S = TypeVar("S", TextState, TokensState, TabularState, ArrayState)


def _expect(state: PreprocessingState | None, kind: type[S]) -> S | None:
    """The saved state, which must be of the kind this data produces."""
    if state is not None and not isinstance(state, kind):
        raise InvalidJob(f"the saved preprocessing is for {state.kind} data, but the dataset now"
                         f" yields {kind.kind} data; use a new run directory")
    return state


def _tokens(spec: TrainingJobSpec, raw: Text | TokenStream, cache_dir: Path | None,
            base: Path | None, state: PreprocessingState | None) -> DataBundle:
    if isinstance(raw, Text):
        cut = contiguous_ranges(len(raw.text), spec.dataset.split)
        text_state = _expect(state, TextState) or TextState(
            _fit_tokenizer(spec, raw.text[cut[0]], raw.text, cache_dir, base))
        tokens = cached_tokens(raw.text, text_state.tokenizer, cache_dir)
        vocab = text_state.tokenizer.vocab_size
        state = text_state
    else:
        tokens, vocab = raw.tokens, raw.vocab_size
        state = _expect(state, TokensState) or TokensState(vocab)
    return _windows(spec, tokens, vocab, state)


def _fit_tokenizer(spec: TrainingJobSpec, train_text: str, full_text: str,
                   cache_dir: Path | None, base: Path | None) -> Tokenizer:
    """preprocessing.text's tokenizer, fitted on the training text only (bpe: trained once and
    cached in the run directory)."""
    text_spec = spec.preprocessing.text
    if text_spec.tokenizer == "bpe":
        return cached_bpe(train_text, text_spec.vocab_size, cache_dir)
    if text_spec.tokenizer == "pretrained":
        return _pretrained(spec, base)
    return Tokenizer.fit(text_spec.tokenizer, train_text, full_text)


def _pretrained(spec: TrainingJobSpec, base: Path | None) -> Tokenizer:
    from kubetrain.data.uri import local_path

    where = spec.preprocessing.text.tokenizer_path
    assert where is not None
    return Tokenizer("pretrained", hf_json=read_tokenizer_file(local_path(where, base=base),
                                                               where))


def _shards(spec: TrainingJobSpec, cache_dir: Path | None, base: Path | None,
            state: PreprocessingState | None) -> DataBundle:
    """Token shards (memory-mapped), prepared first when prepare.onFirstUse says so. The
    tokenizer is the index's (else a pretrained one of the spec, for decoding)."""
    src = spec.dataset.tokens
    assert src is not None
    if src.prepare is not None and src.prepare.on_first_use:
        from kubetrain.data.prepare import ensure_prepared

        ensure_prepared(src, spec.preprocessing.text, spec.dataset.split, base)
    shards = load_source(spec.dataset, base=base)
    assert isinstance(shards, ShardSet)
    tok = shards.tokenizer
    if tok is None and spec.preprocessing.text.tokenizer == "pretrained":
        tok = _pretrained(spec, base)
    found: PreprocessingState = TextState(tok) if tok is not None else TokensState(
        shards.vocab_size)
    if state is not None and state != found:
        raise InvalidJob(f"{src.path}: the shards' tokenizer differs from the one this run was"
                         " trained with (were they prepared again?); use a new run directory")
    return _windows(spec, shards.stream(), shards.vocab_size, found)


def _windows(spec: TrainingJobSpec, tokens: np.ndarray | ShardStream, vocab: int,
             state: PreprocessingState) -> DataBundle:
    text_spec = spec.preprocessing.text
    gpt = spec.model.gpt
    seq_len = text_spec.seq_len or (gpt.context if gpt else 64)
    train_r, val_r, test_r = contiguous_ranges(len(tokens), spec.dataset.split)
    need = 2 * (seq_len + 1)
    if train_r.stop - train_r.start < need:
        raise InvalidJob(
            f"the training text has {train_r.stop - train_r.start} tokens, fewer than two windows"
            f" of the context ({seq_len} + 1 tokens); use more text or a shorter context"
        )
    if spec.dataset.split.val > 0 and val_r.stop - val_r.start < seq_len + 2:
        raise InvalidJob(f"the validation text has {val_r.stop - val_r.start} tokens, shorter than"
                         f" the context ({seq_len} + 1 tokens); raise split.val or shorten it")
    seed = spec.training.seed
    return DataBundle(
        TokenWindows(tokens[train_r], seq_len, text_spec.packing, seed),  # type: ignore[arg-type]
        TokenWindows(tokens[val_r], seq_len),  # type: ignore[arg-type]
        TokenWindows(tokens[test_r], seq_len),  # type: ignore[arg-type]
        DataShapes("lm", (seq_len,), vocab, seq_len),
        state,
    )


def _table(spec: TrainingJobSpec, raw: Table, state: TabularState | None) -> DataBundle:
    cols = spec.dataset.source.columns  # type: ignore[union-attr]
    check_table(raw, cols.label, cols.categorical, spec.training.loss)
    label = raw.columns.pop(cols.label)
    prep = spec.preprocessing
    keep = rows_to_keep(raw.columns, prep)
    features = {k: v[keep] for k, v in raw.columns.items()}
    label = label[keep]
    if len(label) == 0:
        raise InvalidJob("no rows left after removing rows with missing values")
    task = state.target.task if state else infer_task(spec, label)
    what = f"label column {cols.label!r}"
    parts = split_indices(len(label), spec.dataset.split,
                          label if task == "classification" else None)
    if state is None:
        state = TabularState(
            FeatureState.fit(features, parts.train, prep, cols.categorical),
            TargetState.fit(task, label[parts.train], prep.normalize == "zscore", what))
    x = state.features.transform(features)
    splits = [_tensor_samples(x[idx], state.target.transform(label[idx], what, name))
              for idx, name in _named(parts)]
    return _bundle(splits, state.target, (x.shape[1],), state)


def _arrays(spec: TrainingJobSpec, raw: Arrays, state: ArrayState | None) -> DataBundle:
    x, y = raw.x, raw.y
    task = state.target.task if state else infer_task(spec, y)
    src = spec.dataset.source
    key = getattr(src, "labels_key", "y")
    what = f"{src.path}: labels {key!r}" if hasattr(src, "path") else "the labels"
    if task == "regression":
        check_regression_labels(y, what, key)
    parts = split_indices(len(y), spec.dataset.split, y if task == "classification" else None)
    image = x.ndim == 4
    if not image:
        x = x.reshape(len(x), -1)  # statistics from the raw values, inputs as float32
    if state is None:
        prep = spec.preprocessing
        state = ArrayState(TargetState.fit(task, y[parts.train], prep.normalize == "zscore",
                                           what))
        if image:
            state.image = ChannelStats.fit(x[parts.train], prep.image)
        else:
            state.scale = ArrayScale.fit(x[parts.train], prep.normalize)
    if state.image is not None:
        x = state.image.transform(x)
    else:
        x = x.astype(np.float32)
        if state.scale is not None:
            x = state.scale.transform(x)
    splits = [_tensor_samples(x[idx], state.target.transform(y[idx], what, name))
              for idx, name in _named(parts)]
    return _bundle(splits, state.target, tuple(x.shape[1:]), state)


def check_table(raw: Table, label: str, categorical: list[str], loss: str | None) -> None:
    """Before any row is dropped (so rows are numbered as in the file): no column mixing numbers
    and text unless declared categorical, no infinite number (NaN is a missing value)."""
    check_missing_labels(label, raw.columns[label], raw.where, source=raw.source)
    for name, values in raw.columns.items():
        is_label = name == label
        if values.dtype == object:
            if name not in categorical or is_label:
                check_text_column(name, values, raw.where, label=is_label, loss=loss,
                                  source=raw.source)
        elif name not in categorical or is_label:
            check_finite_column(name, values, raw.where, label=is_label, source=raw.source)


def _named(parts: SplitIndices) -> list[tuple[np.ndarray, str]]:
    return [(parts.train, "training"), (parts.val, "val"), (parts.test, "test")]


def _tensor_samples(x: np.ndarray, y: np.ndarray) -> TensorSamples:
    return TensorSamples(torch.from_numpy(np.ascontiguousarray(x)),
                         torch.from_numpy(np.ascontiguousarray(y)))


def _bundle(splits: list[TensorSamples], target: TargetState, input_shape: tuple[int, ...],
            state: PreprocessingState) -> DataBundle:
    outputs = target.num_classes if target.task == "classification" else 1
    counts = None
    if target.task == "classification":
        counts = torch.bincount(splits[0].y, minlength=outputs).tolist()
    shapes = DataShapes(target.task, input_shape, outputs)
    return DataBundle(*splits, shapes, state, counts)
