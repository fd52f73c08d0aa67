"""The words of `TrainingJob.status`: its phases, the condition types and the reasons the
operator writes. One spelling each, shared by the operator, the models and the docs.

StrEnums: a member *is* its string, so it compares equal to what the API server returns
and dumps to plain JSON.
"""

from __future__ import annotations

from enum import StrEnum


class Phase(StrEnum):
    """Where the job is in its life."""

    PENDING = "Pending"
    QUEUED = "Queued"
    """Waiting for admission by Kueue (spec.queueName): no pods, no deadline counting."""
    STARTING = "Starting"
    RUNNING = "Running"
    RESTARTING = "Restarting"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SUSPENDED = "Suspended"

    @property
    def finished(self) -> bool:
        """Succeeded or Failed: nothing of the job runs again (unless its spec is fixed)."""
        return self in (Phase.SUCCEEDED, Phase.FAILED)


class ConditionType(StrEnum):
    """The conditions the operator sets on a job."""

    RUNNING = "Running"
    RESTARTING = "Restarting"
    SUSPENDED = "Suspended"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    PODS_STARTED = "PodsStarted"
    """False while a worker pod is not running after `startTimeoutSeconds`."""
    RECONCILE_ERROR = "ReconcileError"
    """True while the API server refuses the operator's requests (quota, RBAC, webhook)."""
    ADMITTED = "Admitted"
    """Jobs with a queueName: whether Kueue admitted the job's Workload (False: Kueue's reason)."""


class Reason(StrEnum):
    """`status.reason`, a condition's reason, or an Event's: why, in one word.

    A failed pod's own reason (the kubelet's, e.g. Evicted) is passed through as it is.
    """

    # Life cycle.
    CREATED = "Created"
    PODS_STARTING = "PodsStarting"
    TRAINING = "Training"
    COMPLETED = "Completed"
    SUSPENDED = "Suspended"
    RESUMED = "Resumed"
    SPEC_UPDATED = "SpecUpdated"
    QUEUED = "Queued"
    """Waiting for Kueue before it said why (a Kueue reason such as Pending replaces it)."""
    ADMITTED = "Admitted"
    RUNNING = "Running"
    """PodsStarted turned True: every worker pod runs."""
    # The job cannot run.
    INVALID_SPEC = "InvalidSpec"
    INVALID_POD_TEMPLATE = "InvalidPodTemplate"
    DEADLINE_EXCEEDED = "DeadlineExceeded"
    BACKOFF_LIMIT_EXCEEDED = "BackoffLimitExceeded"
    EXIT_CODE_RULE = "ExitCodeRule"
    """A worker exited with a code listed in runPolicy.failOnExitCodes."""
    # A worker failed (exit codes: kubetrain.exitcodes).
    INVALID_DATA = "InvalidData"
    DIVERGED = "Diverged"
    INTERRUPTED = "Interrupted"
    OOM_KILLED = "OOMKilled"
    WORKER_KILLED = "WorkerKilled"
    WORKER_CRASHED = "WorkerCrashed"
    WORKER_FAILED = "WorkerFailed"
    EVICTED = "Evicted"
    DISRUPTED = "Disrupted"
    """The pod has a DisruptionTarget condition (preemption, eviction, taint, deletion)."""
    NODE_LOST = "NodeLost"
    POD_DELETED = "PodDeleted"
    STALLED = "Stalled"
    RESIZED = "Resized"
    """An elastic job's parallelism.nodes changed: the group restarts at the new size."""
    # A worker pod does not start (the last seven are the kubelet's waiting reasons).
    UNSCHEDULABLE = "Unschedulable"
    START_TIMEOUT = "StartTimeout"
    IMAGE_PULL_BACK_OFF = "ImagePullBackOff"
    ERR_IMAGE_PULL = "ErrImagePull"
    INVALID_IMAGE_NAME = "InvalidImageName"
    CREATE_CONTAINER_CONFIG_ERROR = "CreateContainerConfigError"
    CREATE_CONTAINER_ERROR = "CreateContainerError"
    CRASH_LOOP_BACK_OFF = "CrashLoopBackOff"
    RUN_CONTAINER_ERROR = "RunContainerError"
    # The ReconcileError condition.
    API_ERROR = "APIError"
    RECONCILED = "Reconciled"
    # Events only.
    CHECKPOINTS_NOT_SHARED = "CheckpointsNotShared"


# Waiting reasons of a worker's container that the start timeout reports as they are.
WAITING_PROBLEMS = frozenset({
    Reason.IMAGE_PULL_BACK_OFF, Reason.ERR_IMAGE_PULL, Reason.INVALID_IMAGE_NAME,
    Reason.CREATE_CONTAINER_CONFIG_ERROR, Reason.CREATE_CONTAINER_ERROR,
    Reason.CRASH_LOOP_BACK_OFF, Reason.RUN_CONTAINER_ERROR,
})  # fmt: skip

__all__ = ["WAITING_PROBLEMS", "ConditionType", "Phase", "Reason"]
