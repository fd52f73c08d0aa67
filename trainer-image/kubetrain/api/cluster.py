"""Cluster-only parts of the spec: image, resources, pod overrides, queue and run policy.

`kubetrain run` ignores them; the operator turns them into pod fields.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, model_validator

from kubetrain.api.base import KubeModel, Rule, cel_rules, enforce
from kubetrain.api.container import (
    DNS_SUBDOMAIN_PATTERN,
    QUANTITY_PATTERN,
    InitContainer,
    Quantity,
    VolumeMount,
)

# An extended resource: a domain-prefixed name (Kubernetes' qualified name with a prefix).
# No backslashes: the pattern is also a CEL string literal.
EXTENDED_RESOURCE_PATTERN = (
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
    r"/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
# Per-job ServiceAccounts end with this (kubetrain_operator.names.TRAINER_SA_SUFFIX).
_TRAINER_SA_SUFFIX = "-trainer"
# The trainer container's name and the /dev/shm volume's (kubetrain_operator.render.CONTAINER
# and SHM_VOLUME).
TRAINER_CONTAINER = "trainer"
SHM_VOLUME = "dshm"


def _quantity_rule(field: str) -> Rule:
    # int-or-string fields cannot carry a pattern in a structural schema: say it in CEL.
    return Rule(
        f"!has(self.{field}) || type(self.{field}) == int || "
        f"self.{field}.matches('{QUANTITY_PATTERN}')",
        f"{field} must be a quantity such as 8, 500m or 16Gi",
        field,
    )


_extended_names = Rule(
    f"!has(self.extended) || self.extended.all(k, k.matches('{EXTENDED_RESOURCE_PATTERN}')"
    " && k != self.gpuResource)",
    "extended: names are extended resources such as rdma/hca or example.com/fpga, other than"
    " gpuResource (request that one with gpu)",
    "extended",
)


class Resources(KubeModel):
    """Per node (pod): requests equal limits, so pods get the Guaranteed class."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            *(_quantity_rule(f) for f in ("cpu", "memory", "shmSize")), _extended_names
        )
    )

    gpu: int = Field(0, ge=0, le=64)
    """Accelerators per node, of the extended resource gpuResource; procsPerNode auto starts
    one process per accelerator."""
    gpu_resource: str = Field(
        "nvidia.com/gpu", max_length=253, pattern=EXTENDED_RESOURCE_PATTERN
    )
    """The extended resource `gpu` counts: nvidia.com/gpu, amd.com/gpu, habana.ai/gaudi,
    nvidia.com/mig-1g.10gb...; GPU nodes' taint of the same key is tolerated."""
    extended: dict[str, Annotated[int, Field(ge=1, le=1_000_000)]] = Field(
        default_factory=dict, max_length=16
    )
    """Other extended resources per node, by name (e.g. rdma/hca_shared_devices_a: 1);
    requests equal limits; procsPerNode does not count them."""
    cpu: Quantity | None = None
    """CPU per node, e.g. 8 or 7500m."""
    memory: Quantity | None = None
    """Memory per node, e.g. 64Gi."""
    shm_size: Quantity = "1Gi"
    """Size of the in-memory /dev/shm (an emptyDir of medium Memory; data loader workers and
    NCCL need more than the container's 64Mi); it counts toward the pod's memory. Not used
    with template.hostIPC (the node's /dev/shm is shared then)."""

    @model_validator(mode="after")
    def _rules(self) -> Resources:
        enforce([(_extended_names, all(
            re.match(EXTENDED_RESOURCE_PATTERN, k) and k != self.gpu_resource
            for k in self.extended
        ))])  # fmt: skip
        return self


class ObjectName(KubeModel):
    """A reference to an object of the job's namespace by name (as in a pod spec)."""

    name: str = Field(max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)


_own_account = Rule(
    f"!has(self.serviceAccountName) || !self.serviceAccountName.endsWith('{_TRAINER_SA_SUFFIX}')",
    f"serviceAccountName: names ending in {_TRAINER_SA_SUFFIX} are the per-job accounts of"
    " kubetrain (another job's credentials)",
    "serviceAccountName",
)


_INITS = "!has(self.initContainers) || self.initContainers"
_unique_inits = Rule(
    f"{_INITS}.all(c, self.initContainers.exists_one(d, d.name == c.name))",
    "names must be unique among the init containers",
    "initContainers",
)
_init_not_trainer = Rule(
    f"{_INITS}.all(c, c.name != '{TRAINER_CONTAINER}')",
    f"{TRAINER_CONTAINER} is the name of kubetrain's container",
    "initContainers",
)
_NO_HOST_IPC = "!has(self.hostIPC) || !self.hostIPC"
_shm_mount = Rule(
    f"{_NO_HOST_IPC} || self.volumeMounts.all(m, m.name != '{SHM_VOLUME}')",
    f"no volume {SHM_VOLUME} with hostIPC (the node's /dev/shm is shared then)",
    "volumeMounts",
)
_shm_init_mount = Rule(
    f"{_NO_HOST_IPC} || {_INITS}.all(c, !has(c.volumeMounts) ||"
    f" c.volumeMounts.all(m, m.name != '{SHM_VOLUME}'))",
    f"initContainers: volumeMounts: no volume {SHM_VOLUME} with hostIPC (the node's /dev/shm is"
    " shared then)",
    "initContainers",
)


class PodOverrides(KubeModel):
    """Fields merged into every worker pod."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            _own_account, _unique_inits, _init_not_trainer, _shm_mount, _shm_init_mount
        )
    )

    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, Any]] = Field(default_factory=list, max_length=64)
    """Pod tolerations, as in a pod spec."""
    affinity: dict[str, Any] | None = None
    """Pod affinity, as in a pod spec."""
    volumes: list[dict[str, Any]] = Field(default_factory=list, max_length=64)
    """Extra pod volumes, as in a pod spec."""
    volume_mounts: list[VolumeMount] = Field(default_factory=list, max_length=64)
    """Extra mounts of the trainer container, as in a container spec."""
    env: list[dict[str, Any]] = Field(default_factory=list, max_length=256)
    """Extra environment variables of the trainer container, as in a container spec."""
    priority_class_name: str | None = Field(None, max_length=253)
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    image_pull_secrets: list[ObjectName] = Field(default_factory=list, max_length=16)
    """Secrets of the job's namespace to pull the image with, as in a pod spec."""
    service_account_name: str | None = Field(None, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)
    """Run the worker pods as this ServiceAccount instead of the per-job `<job>-trainer` (for
    cloud workload identity or RBAC of your own). kubetrain lets it get and patch
    status.progress of the jobs that name it, nothing else (docs/design-operator.md)."""
    termination_grace_period_seconds: int = Field(60, ge=5, le=86_400)
    """Time a worker has from SIGTERM (suspend, eviction, preemption, restart) to save a
    checkpoint and exit before it is killed; the trainer's shutdown follows it."""
    init_containers: list[InitContainer] | None = Field(None, max_length=16)
    """Containers run in order before the trainer, as in a pod spec (e.g. to fetch data or
    wait for a service; with restartPolicy Always, a sidecar beside it). Each gets the
    trainer's security context defaults (non-root, no privilege escalation, all capabilities
    dropped) for the keys its securityContext does not set."""
    scheduler_name: str | None = Field(None, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)
    """Scheduler of the worker pods (e.g. a gang scheduler such as volcano); default: the
    cluster's default scheduler."""
    host_ipc: bool | None = Field(None, alias="hostIPC")
    """Share the node's IPC namespace (its System V IPC and its /dev/shm) with the workers, an
    alternative to resources.shmSize for NCCL's shared memory: no size limit but the node's,
    and the pod sees and can touch the IPC objects of every process on the node (namespaces
    enforcing the baseline or restricted Pod Security level refuse it).
    With it, no /dev/shm volume is mounted and resources.shmSize is not used."""

    @model_validator(mode="after")
    def _rules(self) -> PodOverrides:
        name = self.service_account_name
        inits = self.init_containers or []
        names = [c.name for c in inits]
        host_ipc = bool(self.host_ipc)
        init_mounts = [m.name for c in inits for m in c.volume_mounts or []]
        enforce([
            (_own_account, name is None or not name.endswith(_TRAINER_SA_SUFFIX)),
            (_unique_inits, len(set(names)) == len(names)),
            (_init_not_trainer, TRAINER_CONTAINER not in names),
            (_shm_mount, not host_ipc or all(m.name != SHM_VOLUME for m in self.volume_mounts)),
            (_shm_init_mount, not host_ipc or SHM_VOLUME not in init_mounts),
        ])  # fmt: skip
        return self


_no_rule_for_75 = Rule(
    "!has(self.failOnExitCodes) || !(75 in self.failOnExitCodes)",
    "failOnExitCodes: 75 is the trainer's stop after SIGTERM (a disruption), not a failure",
    "failOnExitCodes",
)


class RunPolicy(KubeModel):
    """Lifecycle of the job in a cluster."""

    model_config = ConfigDict(json_schema_extra=cel_rules(_no_rule_for_75))

    suspend: bool = False
    """Remove the pods and keep checkpoints; setting it back to false resumes."""
    active_deadline_seconds: int | None = Field(None, ge=1)
    """Fail the job (DeadlineExceeded) when it has been active this long: counted from the
    first pod creation since the job was created, resumed or admitted; time Suspended or
    Queued does not count (a suspend or a Kueue eviction starts it again)."""
    ttl_seconds_after_finished: int | None = Field(None, ge=0)
    """Delete the job this long after it succeeded or failed."""
    max_restarts: int = Field(3, ge=0, le=1000)
    """Group restarts after failures (a crash, a stall, an unexpected exit code) before the job
    fails. Restarts after disruptions (a worker stopped by SIGTERM with exit 75, evicted,
    preempted, its node lost, its pod deleted) do not count (status.disruptions)."""
    fail_on_exit_codes: list[Annotated[int, Field(ge=1, le=255)]] = Field(
        default_factory=list, max_length=32
    )
    """A worker exiting with one of these codes fails the job at once (reason ExitCodeRule), as
    2 and 3 always do; the others restart the group. A pod with a DisruptionTarget condition
    (preempted, evicted) is a disruption whatever its code."""
    restart_backoff_seconds: int = Field(10, ge=0, le=3600)
    """Delay before the first restart; doubles with each further failure (max 10 min); a
    disruption does not double it."""
    clean_pod_policy: Literal["All", "Running", "None"] = "Running"
    """Pods deleted when the job finishes: All, only those still Running, or None."""
    heartbeat_timeout_seconds: int = Field(300, ge=10)
    """A trainer heartbeat older than this restarts the group (reason Stalled)."""
    start_timeout_seconds: int = Field(600, ge=10)
    """Pods not running this long after their creation are reported (Unschedulable, image
    pull); a queued job has no pods, so time spent Queued does not count."""
    progress_interval_seconds: int = Field(10, ge=1, le=3600)
    """Least time between two progress updates the trainer writes into status."""

    @model_validator(mode="after")
    def _rules(self) -> RunPolicy:
        enforce([(_no_rule_for_75, 75 not in self.fail_on_exit_codes)])
        return self
