"""Deterministic names and labels of a TrainingJob's children (pure)."""

from __future__ import annotations

from dataclasses import dataclass

FIELD_MANAGER = "kubetrain-operator"

LABEL_JOB = "kubetrain.io/job-name"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_INDEX = "kubetrain.io/replica-index"
LABEL_GENERATION = "kubetrain.io/restart-generation"
# The group size a pod was made for: a running elastic job whose spec.parallelism.nodes differs
# is restarted at the new size.
LABEL_NODES = "kubetrain.io/nodes"
ANNOTATION_GENERATION = LABEL_GENERATION
# Debugging and tests: a JSON list that replaces the trainer container's command. Harmless
# to expose: whoever may create a TrainingJob already chooses the image it runs.
ANNOTATION_COMMAND = "kubetrain.io/command"
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
KUEUE_POD_GROUP_LABEL = "kueue.x-k8s.io/pod-group-name"
KUEUE_POD_GROUP_COUNT = "kueue.x-k8s.io/pod-group-total-count"

# The trainer's ServiceAccount name ends with this; the ValidatingAdmissionPolicy in
# operator/manifests/ keys on it (see docs/design-operator.md).
TRAINER_SA_SUFFIX = "-trainer"
WORKER_INFIX = "-worker-"
DNS_LABEL_MAX = 63


@dataclass(frozen=True)
class Names:
    """Every name derived from a job's name."""

    job: str

    @property
    def service(self) -> str:
        """Headless Service: the pods' DNS subdomain."""
        return self.job

    @property
    def config_map(self) -> str:
        return f"{self.job}-spec"

    @property
    def service_account(self) -> str:
        return f"{self.job}{TRAINER_SA_SUFFIX}"

    @property
    def role(self) -> str:
        return f"{self.job}{TRAINER_SA_SUFFIX}"

    def worker(self, index: int) -> str:
        """Pod name and hostname of worker `index` (stable across restarts)."""
        return f"{self.job}{WORKER_INFIX}{index}"

    def worker_dns(self, index: int) -> str:
        """Worker's stable DNS name, resolvable in its namespace before it is ready."""
        return f"{self.worker(index)}.{self.service}"


def max_job_name_length(nodes: int) -> int:
    """Longest job name whose worker hostnames still fit a DNS label."""
    return DNS_LABEL_MAX - len(WORKER_INFIX) - len(str(max(nodes - 1, 0)))


def selector(job: str) -> dict[str, str]:
    """Labels that select a job's worker pods."""
    return {LABEL_JOB: job, LABEL_COMPONENT: "worker"}


def common_labels(job: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "kubetrain",
        "app.kubernetes.io/instance": job,
        "app.kubernetes.io/managed-by": FIELD_MANAGER,
        LABEL_JOB: job,
    }


@dataclass(frozen=True)
class JobMeta:
    """The parts of a TrainingJob's metadata that rendering and status need."""

    name: str
    namespace: str
    uid: str
    generation: int = 1
    annotations: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_object(cls, obj: dict) -> JobMeta:  # type: ignore[type-arg]
        meta = obj.get("metadata", {})
        return cls(
            name=meta["name"],
            namespace=meta.get("namespace", "default"),
            uid=meta.get("uid", ""),
            generation=int(meta.get("generation", 1)),
            annotations=tuple(sorted((meta.get("annotations") or {}).items())),
        )

    def annotation(self, key: str) -> str | None:
        return dict(self.annotations).get(key)

    @property
    def names(self) -> Names:
        return Names(self.name)
