"""`spec.parallelism`: how many processes on how many nodes, and how they talk."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from kubetrain.api.base import KubeModel, Rule, cel_rules, enforce

_procs_valid = Rule(
    "type(self.procsPerNode) == int ? self.procsPerNode >= 1 : self.procsPerNode == 'auto'",
    "procsPerNode must be a positive integer or auto",
    "procsPerNode",
)
_nodes_in_range = Rule(
    "(!has(self.minNodes) || self.minNodes <= self.nodes)"
    " && (!has(self.maxNodes) || self.nodes <= self.maxNodes)",
    "nodes must lie within minNodes and maxNodes",
    "nodes",
)


class Parallelism(KubeModel):
    """Data parallelism under torchrun: nodes × procsPerNode processes."""

    model_config = ConfigDict(json_schema_extra=cel_rules(_procs_valid, _nodes_in_range))

    strategy: Literal["auto", "none", "ddp", "fsdp"] = "auto"
    """auto: ddp when there is more than one process, else none. fsdp shards parameters,
    gradients and optimizer state (FSDP2) and needs more than one process."""
    nodes: int = Field(1, ge=1, le=10_000)
    """Machines (pods) taking part; more than 1 needs a cluster. Fixed, unless minNodes or
    maxNodes is set: then it may be changed on a running job, within them."""
    min_nodes: int | None = Field(None, ge=1, le=10_000)
    """Elastic size: the fewest nodes `nodes` may be changed to. Changing `nodes` checkpoints
    the group (SIGTERM), restarts it at the new size and resumes (status.disruptions counts it);
    globalBatchSize must stay divisible by the new world size. With `queueName`, Kueue may
    admit the job with fewer nodes than `nodes`, down to this (partial admission)."""
    max_nodes: int | None = Field(None, ge=1, le=10_000)
    """Elastic size: the most nodes `nodes` may be changed to."""
    procs_per_node: int | Literal["auto"] = "auto"
    """Processes per node; auto is one per GPU, or 1 on a machine without GPUs."""
    backend: Literal["auto", "nccl", "gloo"] = "auto"
    """auto: nccl on GPUs, gloo on CPUs."""
    timeout_seconds: int = Field(1800, ge=10, le=86_400)
    """Collective timeout: a rank that stops answering fails the group after this long."""
    master_port: int = Field(29500, ge=1024, le=65_535)
    """Rendezvous port on rank 0's node."""

    @model_validator(mode="after")
    def _rules(self) -> Parallelism:
        procs = self.procs_per_node
        enforce([
            (_procs_valid, procs == "auto" or (isinstance(procs, int) and procs >= 1)),
            (_nodes_in_range, (self.min_nodes is None or self.min_nodes <= self.nodes)
             and (self.max_nodes is None or self.nodes <= self.max_nodes)),
        ])  # fmt: skip
        return self
