"""`spec.dataset`: where samples come from, how they are split and loaded."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from kubetrain.api.base import KubeModel, Rule, TaggedUnion, cel_rules, enforce


class SyntheticData(KubeModel):
    """Generated data with a known answer, for smoke tests and benchmarks."""

    task: Literal["classification", "regression", "lm"] = "classification"
    """classification: labels from a random linear teacher; regression: a noisy linear
    function; lm: token sequences from a random order-1 Markov chain."""
    samples: int = Field(4096, ge=1, le=100_000_000)
    """Number of samples (sequences for lm)."""
    features: int = Field(16, ge=1, le=1_000_000)
    """Input features (classification, regression)."""
    classes: int = Field(2, ge=2, le=100_000)
    """Number of classes (classification)."""
    seq_len: int = Field(64, ge=2, le=1_000_000)
    """Tokens per sequence (lm)."""
    vocab_size: int = Field(256, ge=2, le=10_000_000)
    """Vocabulary size (lm)."""
    noise: float = Field(0.1, ge=0)
    """Standard deviation of label noise (regression) or logit noise (classification)."""
    seed: int = Field(0, ge=0)
    """Seed of the generator; the same seed gives the same data everywhere."""


class TabularColumns(KubeModel):
    """Which columns are inputs and which is the label."""

    label: str = Field(min_length=1, max_length=253)
    """The label column."""
    features: list[str] | None = Field(None, max_length=10_000)
    """Input columns; all columns but the label when omitted."""
    categorical: list[str] = Field(default_factory=list, max_length=10_000)
    """Input columns to encode as categories (see preprocessing.categorical). Columns of text are
    categories anyway; a column that mixes numbers and text is an error (naming the rows) unless
    it is listed here."""


class TabularData(KubeModel):
    """Rows and columns from CSV, Parquet or JSON Lines, read with a columnar reader."""

    path: str = Field(min_length=1, max_length=4096)
    """A local file or directory, or a URI: file://, s3://, gs://, http(s):// (copied into a local
    cache first; docs/object-storage.md). A relative path is looked up next to the job file,
    then in the working directory."""
    format: Literal["auto", "csv", "parquet", "jsonl"] = "auto"
    """File format; auto picks it from the file extension."""
    columns: TabularColumns


class TextData(KubeModel):
    """A text file or a directory of .txt files, for language modelling."""

    path: str = Field(min_length=1, max_length=4096)
    """A local file or directory, or a URI: file://, s3://, gs://, http(s):// (copied into a local
    cache first; docs/object-storage.md). A relative path is looked up next to the job file,
    then in the working directory. Empty text is an error."""
    encoding: str = Field("utf-8", max_length=32)
    """Text encoding of the files."""


class TokenPrepare(KubeModel):
    """The raw corpus `kubetrain prepare` turns into token shards (with preprocessing.text's
    tokenizer), streaming, on every core."""

    path: str = Field(min_length=1, max_length=4096)
    """A file or a directory of them: text (.txt), JSON Lines (.jsonl) or Parquet (.parquet). A
    relative path is looked up next to the job file, then in the working directory."""
    format: Literal["auto", "text", "jsonl", "parquet"] = "auto"
    """File format; auto picks it from each file's extension."""
    text_column: str = Field("text", min_length=1, max_length=253)
    """The column (Parquet) or key (JSON Lines) holding each document's text. Documents are
    joined with a blank line; text files are concatenated as they are."""
    shard_tokens: int = Field(100_000_000, ge=1024, le=2_000_000_000)
    """Tokens per shard file (the last shard holds the rest)."""
    on_first_use: bool = False
    """Prepare when `kubetrain run` finds no index.json at tokens.path (rank 0 prepares, the
    other ranks wait), so one job file does everything; false: run `kubetrain prepare` first."""


class TokenData(KubeModel):
    """Pre-tokenized shards: flat little-endian uint16/uint32 files (the nanoGPT / llm.c
    layout), memory-mapped, never read whole; windows run across shard boundaries."""

    path: str = Field(min_length=1, max_length=4096)
    """A directory holding index.json and its shards (what `kubetrain prepare` writes), an
    index .json file, or a directory or glob (e.g. data/*.bin) of flat token files without an
    index (then dtype and vocabSize below describe them). A relative path is looked up next to
    the job file, then in the working directory."""
    dtype: Literal["uint16", "uint32"] = "uint16"
    """Token type of flat files without an index (an index names its own)."""
    vocab_size: int | None = Field(None, ge=2, le=10_000_000)
    """Vocabulary of flat files without an index (an index names its own); every token id
    must be below it."""
    prepare: TokenPrepare | None = None
    """Where the shards come from: the raw corpus for `kubetrain prepare`."""


class ArrayData(KubeModel):
    """NumPy arrays: an .npz with inputs and labels, or an .npy of inputs plus one of labels."""

    path: str = Field(min_length=1, max_length=4096)
    """An .npz or .npy file (a relative path is looked up next to the job file, then in the
    working directory). Inputs are real numbers, one row per sample, and are not cleaned: NaN
    or infinite values are an error naming the samples. Labels are one class (index or name) or
    one number per sample, shape (N,) or (N, 1); one-hot labels are an error."""
    inputs_key: str = Field("x", max_length=253)
    """Array name of the inputs inside an .npz."""
    labels_key: str = Field("y", max_length=253)
    """Array name of the labels inside an .npz."""
    labels_path: str | None = Field(None, max_length=4096)
    """The labels' .npy file, when path is an .npy of inputs."""


class InstructData(KubeModel):
    """Instruction or chat examples in JSON Lines, tokenized with the model's tokenizer, for
    fine-tuning a causal LM (model type hf)."""

    path: str = Field(min_length=1, max_length=4096)
    """A .jsonl file or a directory of them (a relative path is looked up next to the job file,
    then in the working directory); one JSON object per line."""
    format: Literal["auto", "promptResponse", "messages"] = "auto"
    """promptResponse: a prompt and a response field; messages: a list of {role, content}
    rendered with the tokenizer's chat template; auto: messages when the first line has it."""
    prompt_field: str = Field("prompt", min_length=1, max_length=253)
    response_field: str = Field("response", min_length=1, max_length=253)
    messages_field: str = Field("messages", min_length=1, max_length=253)
    loss_on: Literal["response", "all"] = "response"
    """response: only response (assistant) tokens are predicted, prompt tokens are masked
    (label -100); all: every token."""
    max_length: int | None = Field(None, ge=2, le=1_000_000)
    """Tokens per example (per packed sequence with packing); defaults to the model's context
    (max_position_embeddings), at most 2048."""
    truncation: Literal["keepStart", "keepEnd", "drop"] = "keepStart"
    """An example longer than maxLength: keep its first (keepStart) or last tokens, or drop it."""
    packing: bool = False
    """Concatenate examples into sequences of exactly maxLength tokens (no padding; each token
    still predicts only within its own example, but attends to earlier examples of the same
    sequence); false pads each batch to its longest example."""


_split_sum = Rule("self.val + self.test < 1.0", "val + test must leave data to train on", "val")


class SplitFractions(KubeModel):
    """Held-out fractions, drawn reproducibly from the seed."""

    model_config = ConfigDict(json_schema_extra=cel_rules(_split_sum))

    val: float = Field(0.1, ge=0, lt=1)
    """Fraction of samples for validation."""
    test: float = Field(0.0, ge=0, lt=1)
    """Fraction of samples for the test split (kubetrain eval)."""
    seed: int = Field(0, ge=0)
    """Seed of the shuffle that assigns samples to splits."""
    stratify: bool = False
    """Keep class proportions equal across splits (classification)."""

    @model_validator(mode="after")
    def _rules(self) -> SplitFractions:
        enforce([(_split_sum, self.val + self.test < 1.0)])
        return self


class Loader(KubeModel):
    """How batches are fed to the model."""

    num_workers: int = Field(0, ge=0, le=64)
    """Background threads per rank that gather the next training batches while the model
    computes (0: gathered in the training step; the data-wait fraction in the metrics shows
    what that costs). Batches are a pure function of the step, so the result is the same."""
    pin_memory: bool = False
    """Page-lock host batches for faster copies to the GPU."""
    shuffle: bool = True
    """Reshuffle the training split every epoch (seeded)."""
    drop_last: bool = True
    """Drop the last incomplete batch of an epoch."""
    prefetch_factor: int = Field(2, ge=1, le=64)
    """Micro-batches gathered ahead per loader worker (with numWorkers > 0)."""


_SOURCES = ("synthetic", "tabular", "text", "arrays", "instruct", "tokens")
_source = TaggedUnion("type", _SOURCES, required=_SOURCES[1:])


class Dataset(KubeModel):
    """The data source (`type` and the block of that name), split and loader."""

    model_config = ConfigDict(json_schema_extra=cel_rules(*_source.rules))

    type: Literal["synthetic", "tabular", "text", "arrays", "instruct", "tokens"]
    """Which source block below is used."""
    synthetic: SyntheticData | None = None
    tabular: TabularData | None = None
    text: TextData | None = None
    arrays: ArrayData | None = None
    instruct: InstructData | None = None
    tokens: TokenData | None = None
    split: SplitFractions = Field(default_factory=SplitFractions)
    loader: Loader = Field(default_factory=Loader)

    @model_validator(mode="after")
    def _rules(self) -> Dataset:
        enforce(_source.checks(self))
        return self

    @property
    def source(self) -> (SyntheticData | TabularData | TextData | ArrayData | InstructData
                         | TokenData):
        """The block named by `type` (synthetic defaults apply when it is omitted)."""
        return getattr(self, self.type) or SyntheticData()
