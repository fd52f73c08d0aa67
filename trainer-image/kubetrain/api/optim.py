"""`spec.optimizer` and `spec.scheduler`."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, Field, model_validator

from kubetrain.api.base import KubeModel, Rule, cel_rules, enforce

Beta = Annotated[float, Field(ge=0, lt=1)]

_nesterov = Rule(
    "!self.nesterov || (self.type == 'sgd' && self.momentum > 0.0)",
    "nesterov needs type sgd and momentum > 0",
    "nesterov",
)
_momentum = Rule(
    "self.momentum == 0.0 || self.type == 'sgd'",
    "momentum applies to sgd only (adam and adamw use betas)",
    "momentum",
)


class Optimizer(KubeModel):
    """The optimizer; weight decay skips biases, norms and embeddings by default."""

    model_config = ConfigDict(json_schema_extra=cel_rules(_nesterov, _momentum))

    type: Literal["sgd", "adam", "adamw"] = "adamw"
    lr: float = Field(1e-3, gt=0, le=10)
    """Peak learning rate (reached after warmup)."""
    weight_decay: float = Field(0.0, ge=0, le=10)
    """L2 penalty (decoupled for adamw)."""
    l1: float = Field(0.0, ge=0)
    """L1 penalty added to the loss for the decayed parameters."""
    betas: tuple[Beta, Beta] = (0.9, 0.999)
    """Adam moment decay rates."""
    eps: float = Field(1e-8, gt=0)
    momentum: float = Field(0.0, ge=0, lt=1)
    """SGD momentum."""
    nesterov: bool = False
    """SGD Nesterov momentum."""
    no_decay: list[str] = Field(
        default_factory=lambda: ["*bias", "*norm*", "*ln_*", "*bn*", "*embed*", "*wte*", "*wpe*"],
        max_length=256,
    )
    """Parameter name patterns (fnmatch) excluded from weight decay and l1."""

    @model_validator(mode="after")
    def _rules(self) -> Optimizer:
        enforce(
            [
                (_nesterov, not self.nesterov or (self.type == "sgd" and self.momentum > 0)),
                (_momentum, self.momentum == 0 or self.type == "sgd"),
            ]
        )
        return self


_one_warmup = Rule(
    "!(has(self.warmupSteps) && has(self.warmupRatio))",
    "set warmupSteps or warmupRatio, not both",
    "warmupRatio",
)
_step_size = Rule(
    "self.type != 'step' || has(self.stepSize)",
    "type step needs stepSize",
    "stepSize",
)


class Scheduler(KubeModel):
    """Learning-rate schedule: linear warmup, then the decay named by type."""

    model_config = ConfigDict(json_schema_extra=cel_rules(_one_warmup, _step_size))

    type: Literal["constant", "linear", "cosine", "step", "exponential", "plateau"] = "constant"
    warmup_steps: int | None = Field(None, ge=0)
    """Steps of linear warmup from 0 to lr."""
    warmup_ratio: float | None = Field(None, ge=0, lt=1)
    """Warmup as a fraction of the total steps."""
    min_lr_ratio: float = Field(0.0, ge=0, le=1)
    """Floor of the decay as a fraction of lr (linear, cosine, exponential, plateau)."""
    step_size: int | None = Field(None, ge=1)
    """type step: multiply the lr by gamma every stepSize steps."""
    gamma: float = Field(0.1, gt=0, le=1)
    """Decay factor of step and exponential (per step) and plateau (per reduction)."""
    patience: int = Field(2, ge=0)
    """type plateau: evaluations without improvement of the validation loss before reducing."""

    @model_validator(mode="after")
    def _rules(self) -> Scheduler:
        enforce(
            [
                (_one_warmup, self.warmup_steps is None or self.warmup_ratio is None),
                (_step_size, self.type != "step" or self.step_size is not None),
            ]
        )
        return self
