"""`spec.model`: an architecture from the registry or a user factory, and how to initialise it."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from kubetrain.api.base import KubeModel, Rule, TaggedUnion, cel_rules, enforce


class LinearArgs(KubeModel):
    """A single linear layer (linear or logistic regression)."""

    bias: bool = True


class MLPArgs(KubeModel):
    """A multi-layer perceptron."""

    hidden: list[int] = Field(default_factory=lambda: [128, 128], max_length=64)
    """Width of each hidden layer."""
    activation: Literal["relu", "gelu", "tanh", "silu"] = "relu"
    norm: Literal["none", "layer", "batch"] = "none"


class CNNArgs(KubeModel):
    """A small residual CNN for images (N, C, H, W)."""

    channels: list[int] = Field(default_factory=lambda: [32, 64, 128], min_length=1, max_length=8)
    """Channels of each stage; every stage after the first halves the resolution."""
    blocks_per_stage: int = Field(1, ge=1, le=16)
    """Residual blocks per stage."""


class GPTArgs(KubeModel):
    """A decoder-only transformer with causal attention and tied embeddings."""

    layers: int = Field(4, ge=1, le=256)
    heads: int = Field(4, ge=1, le=256)
    width: int = Field(128, ge=8, le=65_536)
    """Embedding width; must be divisible by heads."""
    context: int = Field(64, ge=2, le=1_000_000)
    """Maximum sequence length."""
    vocab_size: int | None = Field(None, ge=2, le=10_000_000)
    """Defaults to the tokenizer's vocabulary."""
    bias: bool = False
    """Biases in linear layers and norms."""
    tie_weights: bool = True
    """Share the token embedding with the output projection."""


class InitFrom(KubeModel):
    """Start from trained weights (fine-tuning)."""

    path: str = Field(min_length=1, max_length=4096)
    """A run directory, a checkpoint directory or a model file."""
    freeze: list[str] = Field(default_factory=list, max_length=256)
    """Parameter name patterns (fnmatch, e.g. 'blocks.0.*') that are not trained."""
    strict: bool = True
    """Require every parameter to be present in the file."""


_ARCHS = ("linear", "mlp", "cnn", "gpt")
_arch = TaggedUnion("type", _ARCHS)
_type_or_import = Rule(
    "has(self.type) != has(self.__import__)",
    "set exactly one of type or import",
    "type",
)
_args_need_import = Rule(
    "!has(self.args) || has(self.__import__)",
    "args are passed to an import factory only; registry models take their own block",
    "args",
)
_gpt_heads = Rule(
    "!has(self.gpt) || self.gpt.width % self.gpt.heads == 0",
    "gpt.width must be divisible by gpt.heads",
    "gpt.width",
)


class ModelSpec(KubeModel):
    """The network: `type` from the registry (with its block), or `import` of a factory."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(_type_or_import, _args_need_import, _gpt_heads, *_arch.rules)
    )

    type: Literal["linear", "mlp", "cnn", "gpt"] | None = None
    """A registry architecture; its options go in the block of the same name."""
    import_: str | None = Field(
        None, alias="import", pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$", max_length=512
    )
    """A factory 'package.module:function' called with args (and the dataset's shapes)."""
    args: dict[str, Any] | None = None
    """Keyword arguments for the import factory."""
    linear: LinearArgs | None = None
    mlp: MLPArgs | None = None
    cnn: CNNArgs | None = None
    gpt: GPTArgs | None = None
    dropout: float = Field(0.0, ge=0, lt=1)
    """Dropout probability, where the architecture has dropout."""
    init_from: InitFrom | None = None
    compile: bool = False
    """Compile the model with torch.compile (compile time is reported apart)."""
    activation_checkpointing: bool = False
    """Recompute activations in the backward pass to save memory (gpt blocks, cnn stages)."""

    @model_validator(mode="after")
    def _rules(self) -> ModelSpec:
        enforce(
            [
                (_type_or_import, (self.type is None) != (self.import_ is None)),
                (_args_need_import, self.args is None or self.import_ is not None),
                (_gpt_heads, self.gpt is None or self.gpt.width % self.gpt.heads == 0),
                *_arch.checks(self),
            ]
        )
        return self

    @property
    def args_block(self) -> KubeModel | None:
        """The options of the registry architecture (defaults when the block is omitted)."""
        if self.type is None:
            return None
        default = {"linear": LinearArgs, "mlp": MLPArgs, "cnn": CNNArgs, "gpt": GPTArgs}[self.type]
        return getattr(self, self.type) or default()
