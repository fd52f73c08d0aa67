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


class LoRAArgs(KubeModel):
    """Low-rank adapters (peft LoRA): the base weights stay frozen, only the adapters train."""

    rank: int = Field(8, ge=1, le=4096)
    """Rank r of each adapter (A: r × in, B: out × r)."""
    alpha: float = Field(16.0, gt=0)
    """Scaling numerator: the adapter's output is multiplied by alpha / rank."""
    dropout: float = Field(0.05, ge=0, lt=1)
    """Dropout on the adapter's input."""
    target_modules: list[str] | None = Field(None, min_length=1, max_length=256)
    """Names of the linear layers that get adapters (the last part of the module name, e.g.
    q_proj, v_proj); peft's default for the architecture when omitted."""
    trainable: list[str] = Field(default_factory=list, max_length=256)
    """Further modules trained in full and saved with the adapters (peft modules_to_save, e.g.
    lm_head); a sequence classifier's head is always trained."""


class HFArgs(KubeModel):
    """A Hugging Face transformers model: from a model directory, or built from a config."""

    path: str | None = Field(None, min_length=1, max_length=4096)
    """A model directory (config.json + weights, as save_pretrained writes it; relative paths
    are looked up next to the job file, then in the working directory), a bucket prefix
    (s3://bucket/dir/, gs://...: copied once into the data cache), or hf://org/name, read
    from the local Hugging Face cache (huggingface_hub; downloads when the hub is reachable)."""
    architecture: str | None = Field(None, min_length=1, max_length=128)
    """A transformers model type (llama, gpt2, qwen2, mistral, ...) to build with random weights
    (pretraining from scratch); sizes go in config."""
    config: dict[str, Any] | None = None
    """config.json fields (snake_case as in transformers, e.g. hidden_size, num_hidden_layers)
    that override the directory's config, or size the architecture."""
    task: Literal["causalLM", "sequenceClassification"] = "causalLM"
    """causalLM: next-token prediction; sequenceClassification: a label per sequence (the
    classification head is new when the directory holds a causal LM)."""
    tokenizer: str | None = Field(None, min_length=1, max_length=4096)
    """A tokenizer directory; defaults to path. With architecture, a text dataset's own
    tokenizer (preprocessing.text) is used when this is omitted."""
    freeze: list[str] = Field(default_factory=list, max_length=256)
    """Parameter name patterns (fnmatch, e.g. 'model.layers.0.*', 'model.embed_tokens.*') that
    are not trained (full fine-tuning)."""
    lora: LoRAArgs | None = None
    """Train low-rank adapters instead of the full model."""


class InitFrom(KubeModel):
    """Start from trained weights (fine-tuning)."""

    path: str = Field(min_length=1, max_length=4096)
    """A run directory, a checkpoint directory or a model file."""
    freeze: list[str] = Field(default_factory=list, max_length=256)
    """Parameter name patterns (fnmatch, e.g. 'blocks.0.*') that are not trained."""
    strict: bool = True
    """Require every parameter to be present in the file."""


_ARCHS = ("linear", "mlp", "cnn", "gpt", "hf")
_arch = TaggedUnion("type", _ARCHS, required=("hf",))
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
_hf_source = Rule(
    "!has(self.hf) || has(self.hf.path) != has(self.hf.architecture)",
    "set exactly one of hf.path or hf.architecture",
    "hf.path",
)
_hf_lora_freeze = Rule(
    "!has(self.hf) || !has(self.hf.lora) || !has(self.hf.freeze) || size(self.hf.freeze) == 0",
    "hf.freeze is for full fine-tuning; with hf.lora the base is frozen already",
    "hf.freeze",
)
_gpt_heads = Rule(
    "!has(self.gpt) || self.gpt.width % self.gpt.heads == 0",
    "gpt.width must be divisible by gpt.heads",
    "gpt.width",
)


class ModelSpec(KubeModel):
    """The network: `type` from the registry (with its block), or `import` of a factory."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(_type_or_import, _args_need_import, _gpt_heads, _hf_source,
                                      _hf_lora_freeze, *_arch.rules)
    )

    type: Literal["linear", "mlp", "cnn", "gpt", "hf"] | None = None
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
    hf: HFArgs | None = None
    dropout: float = Field(0.0, ge=0, lt=1)
    """Dropout probability, where the architecture has dropout."""
    init_from: InitFrom | None = None
    compile: bool = False
    """Compile the model with torch.compile (compile time is reported apart)."""
    activation_checkpointing: bool = False
    """Recompute activations in the backward pass to save memory (gpt blocks, cnn stages, hf
    decoder layers)."""

    @model_validator(mode="after")
    def _rules(self) -> ModelSpec:
        enforce(
            [
                (_type_or_import, (self.type is None) != (self.import_ is None)),
                (_args_need_import, self.args is None or self.import_ is not None),
                (_gpt_heads, self.gpt is None or self.gpt.width % self.gpt.heads == 0),
                (_hf_source, self.hf is None or (self.hf.path is None)
                 != (self.hf.architecture is None)),
                (_hf_lora_freeze, self.hf is None or self.hf.lora is None or not self.hf.freeze),
                *_arch.checks(self),
            ]
        )
        return self

    @property
    def args_block(self) -> KubeModel | None:
        """The options of the registry architecture (defaults when the block is omitted)."""
        if self.type is None:
            return None
        if self.type == "hf":
            return self.hf
        default = {"linear": LinearArgs, "mlp": MLPArgs, "cnn": CNNArgs, "gpt": GPTArgs}[self.type]
        return getattr(self, self.type) or default()
