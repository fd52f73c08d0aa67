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


class Parallelism(KubeModel):
    """Data parallelism under torchrun: nodes × procsPerNode processes."""

    model_config = ConfigDict(json_schema_extra=cel_rules(_procs_valid))

    strategy: Literal["auto", "none", "ddp", "fsdp"] = "auto"
    """auto: ddp when there is more than one process, else none. fsdp shards parameters,
    gradients and optimizer state (FSDP2) and needs more than one process."""
    nodes: int = Field(1, ge=1, le=10_000)
    """Machines (pods) taking part; more than 1 needs a cluster."""
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
        enforce([(_procs_valid, procs == "auto" or (isinstance(procs, int) and procs >= 1))])
        return self
