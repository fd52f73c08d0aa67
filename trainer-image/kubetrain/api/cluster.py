"""Cluster-only parts of the spec: image, resources, pod overrides, queue and run policy.

`kubetrain run` ignores them; the operator turns them into pod fields.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, StringConstraints

from kubetrain.api.base import KubeModel, Rule, cel_rules

# Kubernetes' own pattern for resource.Quantity.
QUANTITY_PATTERN = r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
Quantity = int | Annotated[str, StringConstraints(pattern=QUANTITY_PATTERN, max_length=64)]


def _quantity_rule(field: str) -> Rule:
    # int-or-string fields cannot carry a pattern in a structural schema: say it in CEL.
    return Rule(
        f"!has(self.{field}) || type(self.{field}) == int || "
        f"self.{field}.matches('{QUANTITY_PATTERN}')",
        f"{field} must be a quantity such as 8, 500m or 16Gi",
        field,
    )


class Resources(KubeModel):
    """Per node (pod): requests equal limits, so pods get the Guaranteed class."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(*(_quantity_rule(f) for f in ("cpu", "memory", "shmSize")))
    )

    gpu: int = Field(0, ge=0, le=64)
    """GPUs (nvidia.com/gpu) per node; procsPerNode auto starts one process per GPU."""
    cpu: Quantity | None = None
    """CPU per node, e.g. 8 or 7500m."""
    memory: Quantity | None = None
    """Memory per node, e.g. 64Gi."""
    shm_size: Quantity = "1Gi"
    """Size of the in-memory /dev/shm (data loader workers and NCCL need more than the
    container default)."""


class PodOverrides(KubeModel):
    """Fields merged into every worker pod."""

    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, Any]] = Field(default_factory=list, max_length=64)
    """Pod tolerations, as in a pod spec."""
    affinity: dict[str, Any] | None = None
    """Pod affinity, as in a pod spec."""
    volumes: list[dict[str, Any]] = Field(default_factory=list, max_length=64)
    """Extra pod volumes, as in a pod spec."""
    volume_mounts: list[dict[str, Any]] = Field(default_factory=list, max_length=64)
    """Extra mounts of the trainer container."""
    env: list[dict[str, Any]] = Field(default_factory=list, max_length=256)
    """Extra environment variables of the trainer container, as in a container spec."""
    priority_class_name: str | None = Field(None, max_length=253)
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class RunPolicy(KubeModel):
    """Lifecycle of the job in a cluster."""

    suspend: bool = False
    """Remove the pods and keep checkpoints; setting it back to false resumes."""
    active_deadline_seconds: int | None = Field(None, ge=1)
    """Fail the job (DeadlineExceeded) when it has run this long."""
    ttl_seconds_after_finished: int | None = Field(None, ge=0)
    """Delete the job this long after it succeeded or failed."""
    max_restarts: int = Field(3, ge=0, le=1000)
    """Group restarts (from the latest checkpoint) before the job fails."""
    restart_backoff_seconds: int = Field(10, ge=0, le=3600)
    """Delay before the first restart; doubles with each further restart (max 10 min)."""
    clean_pod_policy: Literal["All", "Running", "None"] = "Running"
    """Pods deleted when the job finishes: All, only those still Running, or None."""
    heartbeat_timeout_seconds: int = Field(300, ge=10)
    """A trainer heartbeat older than this restarts the group (reason Stalled)."""
    start_timeout_seconds: int = Field(600, ge=10)
    """Pods not running this long after creation are reported (Unschedulable, image pull)."""
    progress_interval_seconds: int = Field(10, ge=1, le=3600)
    """Least time between two progress updates the trainer writes into status."""
