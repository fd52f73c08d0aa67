"""`spec.preprocessing`: transforms fitted on the training split only and saved with the model."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from kubetrain.api.base import KubeModel, Rule, cel_rules, enforce

_constant_needs_value = Rule(
    "self.strategy != 'constant' || has(self.fillValue)",
    "strategy constant needs fillValue",
    "fillValue",
)


class MissingValues(KubeModel):
    """What to do with missing (NaN/empty) values of tabular features. Infinite values are not
    missing: they are an error naming the column and rows. A missing label is always an error."""

    model_config = ConfigDict(json_schema_extra=cel_rules(_constant_needs_value))

    strategy: Literal["drop", "mean", "median", "mode", "constant"] = "drop"
    """drop the row, or fill with a statistic of the training split, or with fillValue."""
    fill_value: float | None = None
    """The value used by strategy constant."""

    @model_validator(mode="after")
    def _rules(self) -> MissingValues:
        enforce(
            [(_constant_needs_value, self.strategy != "constant" or self.fill_value is not None)]
        )
        return self


class Outliers(KubeModel):
    """Clip extreme feature values to bounds fitted on the training split."""

    method: Literal["none", "zscore", "iqr"] = "none"
    """zscore clips to mean ± threshold·std; iqr to [Q1 − threshold·IQR, Q3 + threshold·IQR]."""
    threshold: float | None = Field(None, gt=0)
    """Defaults to 3 for zscore and 1.5 for iqr."""


class Cleaning(KubeModel):
    """Row and value cleaning of tabular data."""

    drop_duplicates: bool = False
    """Drop exact duplicate rows before splitting."""
    missing: MissingValues = Field(default_factory=MissingValues)
    outliers: Outliers = Field(default_factory=Outliers)


_pretrained_needs_path = Rule(
    "self.tokenizer != 'pretrained' || has(self.tokenizerPath)",
    "tokenizer pretrained needs tokenizerPath",
    "tokenizerPath",
)
_path_needs_pretrained = Rule(
    "!has(self.tokenizerPath) || self.tokenizer == 'pretrained'",
    "tokenizerPath is for tokenizer pretrained",
    "tokenizerPath",
)
_vocab_needs_bpe = Rule(
    "!has(self.vocabSize) || self.tokenizer == 'bpe'",
    "vocabSize is for tokenizer bpe (the other tokenizers' vocabularies are fixed)",
    "vocabSize",
)


class TextPreprocessing(KubeModel):
    """Tokenization and sequence packing for language modelling."""

    model_config = ConfigDict(json_schema_extra=cel_rules(
        _pretrained_needs_path, _path_needs_pretrained, _vocab_needs_bpe))

    tokenizer: Literal["char", "byte", "bpe", "pretrained"] = "char"
    """char: one token per distinct character of the training split; byte: 256 byte tokens;
    bpe: a byte-level BPE (Hugging Face tokenizers) trained on the training split, once
    (cached), saved as tokenizer.json in the run directory and with the model; pretrained: the
    Hugging Face tokenizer.json at tokenizerPath."""
    vocab_size: int | None = Field(None, ge=258, le=1_000_000)
    """bpe: vocabulary size to train, with the 256 byte tokens and <|endoftext|> (default
    4096)."""
    tokenizer_path: str | None = Field(None, min_length=1, max_length=4096)
    """pretrained: a tokenizer.json file or a directory holding one (a relative path is looked
    up next to the job file, then in the working directory)."""
    seq_len: int | None = Field(None, ge=2, le=1_000_000)
    """Tokens per training sequence; defaults to the model's context length."""
    packing: bool = True
    """Windows lie back to back on a grid that each epoch shifts by an offset drawn from the
    seed, so every epoch sees other window boundaries; false keeps the boundaries fixed."""

    @model_validator(mode="after")
    def _rules(self) -> TextPreprocessing:
        has_path, has_vocab = self.tokenizer_path is not None, self.vocab_size is not None
        enforce([(_pretrained_needs_path, self.tokenizer != "pretrained" or has_path),
                 (_path_needs_pretrained, not has_path or self.tokenizer == "pretrained"),
                 (_vocab_needs_bpe, not has_vocab or self.tokenizer == "bpe")])
        return self


class Augment(KubeModel):
    """Random image augmentations, applied per batch on tensors, seeded."""

    horizontal_flip: float = Field(0.0, ge=0, le=1)
    """Probability of a left-right flip."""
    crop_padding: int = Field(0, ge=0, le=64)
    """Random crop after zero padding by this many pixels (0 disables)."""
    rotation_degrees: float = Field(0.0, ge=0, le=180)
    """Rotate by a uniform angle in ±degrees."""
    scale: tuple[float, float] | None = None
    """Random zoom factor range, e.g. [0.9, 1.1]."""
    gaussian_noise: float = Field(0.0, ge=0)
    """Standard deviation of additive noise, after normalization."""


class ImagePreprocessing(KubeModel):
    """Per-channel normalization and augmentations for image arrays (N, C, H, W)."""

    mean: list[float] | None = Field(None, max_length=16)
    """Per-channel mean; fitted on the training split when omitted."""
    std: list[float] | None = Field(None, max_length=16)
    """Per-channel standard deviation; fitted on the training split when omitted."""
    augment: Augment = Field(default_factory=Augment)


class Imbalance(KubeModel):
    """Counter class imbalance in classification."""

    strategy: Literal["none", "classWeights", "oversample"] = "none"
    """classWeights weights the loss by inverse class frequency; oversample draws rare classes
    more often."""


class Preprocessing(KubeModel):
    """Transforms applied before training; all statistics come from the training split."""

    cleaning: Cleaning = Field(default_factory=Cleaning)
    normalize: Literal["zscore", "minmax", "none"] = "zscore"
    """Scaling of numeric tabular features (and regression targets for zscore)."""
    categorical: Literal["onehot", "index"] = "onehot"
    """Encoding of categorical columns."""
    text: TextPreprocessing = Field(default_factory=TextPreprocessing)
    image: ImagePreprocessing = Field(default_factory=ImagePreprocessing)
    imbalance: Imbalance = Field(default_factory=Imbalance)
