"""`TrainingJob.spec`: one object for the CRD, `kubetrain run` and the trainer."""

from __future__ import annotations

from pydantic import ConfigDict, Field, model_validator

from kubetrain.api.base import KubeModel, Rule, cel_rules, enforce
from kubetrain.api.checkpoint import Checkpoint
from kubetrain.api.cluster import PodOverrides, Resources, RunPolicy
from kubetrain.api.data import Dataset
from kubetrain.api.model import ModelSpec
from kubetrain.api.optim import Optimizer, Scheduler
from kubetrain.api.parallel import Parallelism
from kubetrain.api.preprocessing import Preprocessing
from kubetrain.api.training import Training

# World size when procsPerNode is a number; the rules below hold trivially for 'auto',
# which is only known on the node (and checked again by the trainer).
_WORLD = "self.parallelism.nodes * self.parallelism.procsPerNode"
_PROCS_UNKNOWN = "type(self.parallelism.procsPerNode) != int"

_batch_divides = Rule(
    f"{_PROCS_UNKNOWN} || self.training.globalBatchSize % ((has(self.training.microBatchSize)"
    f" ? self.training.microBatchSize : 1) * {_WORLD}) == 0",
    "training.globalBatchSize must be a multiple of microBatchSize × world size"
    " (nodes × procsPerNode)",
    "training.globalBatchSize",
)
_fsdp_needs_many = Rule(
    f"self.parallelism.strategy != 'fsdp' || {_PROCS_UNKNOWN} || {_WORLD} > 1",
    "parallelism.strategy fsdp needs more than one process (nodes × procsPerNode > 1)",
    "parallelism.strategy",
)
_gpt_needs_tokens = Rule(
    "!has(self.model.type) || self.model.type != 'gpt' || self.dataset.type == 'text' ||"
    " self.dataset.type == 'tokens' ||"
    " (self.dataset.type == 'synthetic' && has(self.dataset.synthetic)"
    " && self.dataset.synthetic.task == 'lm')",
    "model gpt needs token data: dataset type text or tokens, or synthetic with task lm",
    "model.type",
)
_best_needs_eval = Rule(
    "!has(self.checkpoint.saveBest) || has(self.training.eval.everySteps)",
    "checkpoint.saveBest needs training.eval.everySteps",
    "checkpoint.saveBest",
)
# An elastic job (minNodes or maxNodes set) may change nodes (and its bounds); nothing else of
# parallelism. Fields with defaults are always present on the server.
_SAME_PARALLELISM = " && ".join(
    f"self.parallelism.{f} == oldSelf.parallelism.{f}"
    for f in ("strategy", "procsPerNode", "backend", "timeoutSeconds", "masterPort")
)
_immutable = Rule(
    "self.model == oldSelf.model && self.dataset == oldSelf.dataset"
    " && self.training == oldSelf.training && (self.parallelism == oldSelf.parallelism"
    " || ((has(oldSelf.parallelism.minNodes) || has(oldSelf.parallelism.maxNodes))"
    f" && {_SAME_PARALLELISM}))",
    "model, dataset, training and parallelism are immutable (but parallelism.nodes of an"
    " elastic job, within minNodes and maxNodes): create a new TrainingJob",
    "",
)  # a transition rule: the API server checks it on update only; nothing to check locally


class TrainingJobSpec(KubeModel):
    """What to train and how: data, model, optimization, parallelism, checkpoints, and (in a
    cluster) image, resources and run policy."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            _batch_divides, _fsdp_needs_many, _gpt_needs_tokens, _best_needs_eval, _immutable
        )
    )

    dataset: Dataset
    preprocessing: Preprocessing = Field(default_factory=Preprocessing)
    model: ModelSpec
    optimizer: Optimizer = Field(default_factory=Optimizer)
    scheduler: Scheduler = Field(default_factory=Scheduler)
    training: Training
    parallelism: Parallelism = Field(default_factory=Parallelism)
    checkpoint: Checkpoint = Field(default_factory=Checkpoint)
    image: str | None = Field(None, max_length=1024)
    """Trainer image (cluster only; required there)."""
    resources: Resources = Field(default_factory=Resources)
    template: PodOverrides = Field(default_factory=PodOverrides)
    queue_name: str | None = Field(None, max_length=253)
    """Kueue LocalQueue: the job waits (phase Queued, no pods) until Kueue admits its Workload;
    an eviction by Kueue requeues it without using maxRestarts; an elastic job (minNodes) may be
    admitted, and then runs, with fewer nodes (docs/cluster.md, Kueue)."""
    run_policy: RunPolicy = Field(default_factory=RunPolicy)

    @model_validator(mode="after")
    def _rules(self) -> TrainingJobSpec:
        procs = self.parallelism.procs_per_node
        world = self.parallelism.nodes * procs if isinstance(procs, int) else None
        micro = self.training.micro_batch_size or 1
        ds = self.dataset
        enforce(
            [
                (
                    _batch_divides,
                    world is None or self.training.global_batch_size % (micro * world) == 0,
                ),
                (
                    _fsdp_needs_many,
                    self.parallelism.strategy != "fsdp" or world is None or world > 1,
                ),
                (
                    _gpt_needs_tokens,
                    self.model.type != "gpt"
                    or ds.type in ("text", "tokens")
                    or (ds.type == "synthetic" and ds.source.task == "lm"),  # type: ignore[union-attr]
                ),
                (
                    _best_needs_eval,
                    self.checkpoint.save_best is None or self.training.eval.every_steps is not None,
                ),
            ]
        )
        return self
