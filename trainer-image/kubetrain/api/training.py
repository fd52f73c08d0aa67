"""`spec.training`: the loop — length, batch sizes, precision, loss, eval, logging."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from kubetrain.api.base import KubeModel, Rule, cel_rules, enforce

Metric = Literal["accuracy", "perplexity", "r2", "mae", "rmse", "f1"]


class Eval(KubeModel):
    """Evaluation on the validation split."""

    every_steps: int | None = Field(None, ge=1)
    """Evaluate every N optimizer steps (and always at the end)."""
    max_batches: int | None = Field(None, ge=1)
    """Cap the batches per evaluation (the whole split when omitted)."""
    metrics: list[Metric] = Field(default_factory=list, max_length=16)
    """Metrics besides the loss."""


class EarlyStopping(KubeModel):
    """Stop when a validation metric stops improving."""

    metric: str = Field("valLoss", max_length=64)
    """valLoss or a name from eval.metrics."""
    mode: Literal["min", "max"] = "min"
    patience: int = Field(3, ge=1)
    """Evaluations without improvement before stopping."""
    min_delta: float = Field(0.0, ge=0)
    """Smallest change that counts as an improvement."""


class Logging(KubeModel):
    """What is recorded and how often."""

    every_steps: int = Field(10, ge=1)
    """Record train metrics every N steps (no host sync on the steps between)."""
    tensorboard: bool = False
    """Also write TensorBoard event files into the run directory."""


_one_length = Rule(
    "has(self.maxSteps) != has(self.epochs)",
    "set exactly one of maxSteps or epochs",
    "maxSteps",
)
_micro_fits = Rule(
    "!has(self.microBatchSize) || self.globalBatchSize % self.microBatchSize == 0",
    "globalBatchSize must be a multiple of microBatchSize",
    "microBatchSize",
)
_early_needs_eval = Rule(
    "!has(self.earlyStopping) || has(self.eval.everySteps)",
    "earlyStopping needs eval.everySteps",
    "earlyStopping",
)


class Training(KubeModel):
    """How long and how to train. Gradient accumulation is derived, never set by hand:
    globalBatchSize = microBatchSize × accumulation × world size."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(_one_length, _micro_fits, _early_needs_eval)
    )

    max_steps: int | None = Field(None, ge=1)
    """Optimizer steps to train (exclusive with epochs)."""
    epochs: int | None = Field(None, ge=1)
    """Passes over the training split (exclusive with maxSteps)."""
    global_batch_size: int = Field(32, ge=1)
    """Samples per optimizer step, summed over every rank and accumulation step."""
    micro_batch_size: int | None = Field(None, ge=1)
    """Samples per forward pass on one rank; globalBatchSize / world size when omitted."""
    precision: Literal["fp32", "bf16-mixed", "fp16-mixed"] = "fp32"
    """fp16-mixed needs a GPU; bf16-mixed runs on CPU and GPU."""
    grad_clip_norm: float | None = Field(None, gt=0)
    """Clip the global gradient norm to this value."""
    loss: Literal["auto", "mse", "cross_entropy", "bce", "huber"] = "auto"
    """auto: cross_entropy for classification and lm, mse for regression."""
    eval: Eval = Field(default_factory=Eval)
    early_stopping: EarlyStopping | None = None
    logging: Logging = Field(default_factory=Logging)
    seed: int = Field(0, ge=0)
    """Seeds model init, data order, dropout and augmentation."""
    deterministic: bool = False
    """Use deterministic algorithms (slower; bitwise repeatable on the same hardware)."""

    @model_validator(mode="after")
    def _rules(self) -> Training:
        micro = self.micro_batch_size
        enforce(
            [
                (_one_length, (self.max_steps is None) != (self.epochs is None)),
                (_micro_fits, micro is None or self.global_batch_size % micro == 0),
                (
                    _early_needs_eval,
                    self.early_stopping is None or self.eval.every_steps is not None,
                ),
            ]
        )
        return self
