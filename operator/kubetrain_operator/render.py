"""Spec → desired child objects (pure: returns dicts, calls nothing).

Children of a TrainingJob `J` in its namespace, all owned by it:
  Service `J` (headless), ConfigMap `J-spec`, ServiceAccount/Role/RoleBinding `J-trainer`,
  and worker pods `J-worker-<i>` for i in 0..nodes-1 (re-created on a group restart with
  the next restart generation).
"""

from __future__ import annotations

import copy
import json
from typing import Any

from kubetrain.api.job import API_VERSION, GROUP, KIND, PLURAL
from kubetrain.api.plan import procs_per_node
from kubetrain.api.spec import TrainingJobSpec
from kubetrain.api.yamlsource import dump_yaml
from kubetrain_operator.names import (
    ANNOTATION_COMMAND,
    ANNOTATION_GENERATION,
    FIELD_MANAGER,
    KUEUE_POD_GROUP_COUNT,
    KUEUE_POD_GROUP_LABEL,
    KUEUE_QUEUE_LABEL,
    LABEL_COMPONENT,
    LABEL_GENERATION,
    LABEL_INDEX,
    LABEL_NODES,
    JobMeta,
    common_labels,
    selector,
)

Obj = dict[str, Any]

SPEC_DIR = "/etc/kubetrain"
SPEC_FILE = "job.yaml"
RUN_DIR = "/var/lib/kubetrain"
TERMINATION_LOG = "/dev/termination-log"
SPEC_VOLUME, SHM_VOLUME, RUN_VOLUME = "kubetrain-spec", "dshm", "kubetrain-run"
CONTAINER = "trainer"
DEFAULT_COMMAND = ["kubetrain", "run", f"{SPEC_DIR}/{SPEC_FILE}"]
# The trainer images run as this user (issue 7's Dockerfile creates it).
TRAINER_UID = 1000
# The trainer's shutdown follows the pod's grace period (spec.template.
# terminationGracePeriodSeconds): torchrun's own (30 s unless told) would kill a checkpoint
# half-way; the trainer learns the deadline from KUBETRAIN_GRACE_SECONDS.
GRACE_ENV = "KUBETRAIN_GRACE_SECONDS"
TORCHRUN_SHUTDOWN_ENV = "PET_SHUTDOWN_TIMEOUT"
# Defaults the user's template.env may override (by name).
NCCL_DEFAULTS = {
    "NCCL_DEBUG": "WARN",
    # Abort collectives on a peer's failure instead of hanging until the timeout.
    "TORCH_NCCL_ASYNC_ERROR_HANDLING": "1",
    "PYTHONUNBUFFERED": "1",
}


def owner_reference(meta: JobMeta) -> Obj:
    """Makes the job the controller of a child, so deleting the job deletes it (GC)."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": meta.name,
        "uid": meta.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _metadata(meta: JobMeta, name: str, labels: dict[str, str] | None = None) -> Obj:
    return {
        "name": name,
        "namespace": meta.namespace,
        "labels": labels or common_labels(meta.name),
        "ownerReferences": [owner_reference(meta)],
    }


def render_service(meta: JobMeta, spec: TrainingJobSpec) -> Obj:
    """Headless Service: gives each worker `<pod>.<job>` as a DNS name before it is ready."""
    port = spec.parallelism.master_port
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(meta, meta.names.service),
        "spec": {
            "clusterIP": "None",
            # Rendezvous happens before any worker is Ready.
            "publishNotReadyAddresses": True,
            "selector": selector(meta.name),
            "ports": [{"name": "rendezvous", "port": port, "targetPort": port, "protocol": "TCP"}],
        },
    }


def resolved_job_document(meta: JobMeta, spec: TrainingJobSpec) -> str:
    """The TrainingJob as the trainer reads it: every default filled in."""
    doc = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": meta.name, "namespace": meta.namespace},
        "spec": spec.to_yaml_dict(),
    }
    # Quoted where go-yaml would read a string as something else ('y' is true to it), as
    # `kubetrain run` reads the file the way the API server does.
    return dump_yaml([doc])


def render_spec_config_map(meta: JobMeta, spec: TrainingJobSpec) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(meta, meta.names.config_map),
        "data": {SPEC_FILE: resolved_job_document(meta, spec)},
    }


def render_service_account(meta: JobMeta) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _metadata(meta, meta.names.service_account),
    }


def render_role(meta: JobMeta) -> Obj:
    """The trainer may read and patch its own job's status, nothing else.

    RBAC cannot restrict fields; the ValidatingAdmissionPolicy in operator/manifests/
    limits these patches to `status.progress`.
    """
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _metadata(meta, meta.names.role),
        "rules": [
            {
                "apiGroups": [GROUP],
                "resources": [f"{PLURAL}/status"],
                "resourceNames": [meta.name],
                "verbs": ["get", "patch"],
            }
        ],
    }


def render_role_binding(meta: JobMeta, spec: TrainingJobSpec | None = None) -> Obj:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _metadata(meta, meta.names.role),
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": meta.names.role,
        },
        "subjects": [
            {"kind": "ServiceAccount", "name": name, "namespace": meta.namespace}
            for name in _trainer_accounts(meta, spec)
        ],
    }


def _trainer_accounts(meta: JobMeta, spec: TrainingJobSpec | None) -> list[str]:
    """Who may report the job's progress: its own account, and the user's account the pods
    run as when the spec names one (docs/design-operator.md, "Progress and its
    credentials")."""
    user = spec.template.service_account_name if spec is not None else None
    return [meta.names.service_account, *([user] if user else [])]


def pod_service_account(meta: JobMeta, spec: TrainingJobSpec) -> str:
    return spec.template.service_account_name or meta.names.service_account


def render_children(meta: JobMeta, spec: TrainingJobSpec) -> list[Obj]:
    """Everything but the pods, in the order they must exist (pods refer to them)."""
    return [
        render_service_account(meta),
        render_role(meta),
        render_role_binding(meta, spec),
        render_spec_config_map(meta, spec),
        render_service(meta, spec),
    ]


def _env(meta: JobMeta, spec: TrainingJobSpec, index: int, generation: int) -> list[Obj]:
    names = meta.names
    ours = {
        # torchrun reads PET_* as defaults of its options.
        "PET_NNODES": str(spec.parallelism.nodes),
        "PET_NPROC_PER_NODE": str(procs_per_node(spec, spec.resources.gpu)),
        "PET_NODE_RANK": str(index),
        "PET_MASTER_ADDR": names.worker_dns(0),
        "PET_MASTER_PORT": str(spec.parallelism.master_port),
        "KUBETRAIN_JOB_NAME": meta.name,
        "KUBETRAIN_JOB_NAMESPACE": meta.namespace,
        "KUBETRAIN_RESTART_GENERATION": str(generation),
        "KUBETRAIN_RUN_DIR": RUN_DIR,
        "KUBETRAIN_TERMINATION_LOG": TERMINATION_LOG,
        GRACE_ENV: str(spec.template.termination_grace_period_seconds),
        TORCHRUN_SHUTDOWN_ENV: str(spec.template.termination_grace_period_seconds),
    }
    env: list[Obj] = [{"name": k, "value": v} for k, v in ours.items()]
    pod_name = {"fieldRef": {"fieldPath": "metadata.name"}}
    env.append({"name": "KUBETRAIN_POD_NAME", "valueFrom": pod_name})
    user = {e["name"]: e for e in spec.template.env}
    env += [user.pop(k, {"name": k, "value": v}) for k, v in NCCL_DEFAULTS.items()]
    return env + list(user.values())


def run_subpath(meta: JobMeta) -> str:
    """Where a job's run directory lives on the kubetrain-run volume."""
    return f"{meta.name}-{meta.uid}" if meta.uid else meta.name


def _volumes(meta: JobMeta, spec: TrainingJobSpec) -> tuple[list[Obj], list[Obj]]:
    """Our volumes, then the user's; a user volume named like the run volume replaces it
    (that is how a PersistentVolumeClaim keeps checkpoints across group restarts)."""
    user = {v["name"]: v for v in spec.template.volumes}
    shm = str(spec.resources.shm_size)
    # With hostIPC the runtime gives the container the node's /dev/shm; a volume there would
    # hide it and NCCL's shared memory would no longer be the node's.
    own_shm = not spec.template.host_ipc
    shm_volume = {"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": shm}}
    volumes = [
        {"name": SPEC_VOLUME, "configMap": {"name": meta.names.config_map}},
        *([shm_volume] if own_shm else []),
        user.pop(RUN_VOLUME, {"name": RUN_VOLUME, "emptyDir": {}}),
        *user.values(),
    ]
    mounts = [
        {"name": SPEC_VOLUME, "mountPath": SPEC_DIR, "readOnly": True},
        *([{"name": SHM_VOLUME, "mountPath": "/dev/shm"}] if own_shm else []),
        # One directory per TrainingJob object on the volume: group restarts and suspend keep
        # the same UID and resume; a new job of the same name starts a new run.
        {"name": RUN_VOLUME, "mountPath": RUN_DIR, "subPath": run_subpath(meta)},
        *(m.to_yaml_dict() for m in spec.template.volume_mounts),
    ]
    return volumes, mounts


def _resources(spec: TrainingJobSpec) -> Obj:
    """Requests equal limits: the Guaranteed QoS class, never evicted first."""
    r = spec.resources
    amounts = {
        k: str(v) for k, v in (("cpu", r.cpu), ("memory", r.memory)) if v is not None
    }
    if r.gpu:
        amounts[r.gpu_resource] = str(r.gpu)
    amounts.update((name, str(count)) for name, count in sorted(r.extended.items()))
    return {"requests": dict(amounts), "limits": dict(amounts)} if amounts else {}


def _command(meta: JobMeta) -> list[str]:
    override = meta.annotation(ANNOTATION_COMMAND)
    return list(json.loads(override)) if override else list(DEFAULT_COMMAND)


def _pod_labels(meta: JobMeta, spec: TrainingJobSpec, index: int, generation: int) -> Obj:
    labels = {
        **spec.template.labels,
        **common_labels(meta.name),
        LABEL_COMPONENT: "worker",
        LABEL_INDEX: str(index),
        LABEL_GENERATION: str(generation),
        LABEL_NODES: str(spec.parallelism.nodes),
    }
    if spec.queue_name:
        labels[KUEUE_QUEUE_LABEL] = spec.queue_name
        # Kueue's plain-pod integration admits the group as one workload (all or nothing).
        labels[KUEUE_POD_GROUP_LABEL] = f"{meta.name}-g{generation}"
    return labels


# Every container of a worker pod runs without privileges unless its spec says otherwise.
CONTAINER_SECURITY: Obj = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
}


def _init_container(user: Obj) -> Obj:
    """A user's init container with our security defaults under the keys it does not set (a
    key it sets, e.g. runAsUser or capabilities, is its own)."""
    security = {**CONTAINER_SECURITY, **(user.get("securityContext") or {})}
    return {**copy.deepcopy(user), "securityContext": copy.deepcopy(security)}


def render_worker_pod(meta: JobMeta, spec: TrainingJobSpec, index: int, generation: int) -> Obj:
    """Worker `index` of restart generation `generation`."""
    names = meta.names
    volumes, mounts = _volumes(meta, spec)
    annotations = {**spec.template.annotations, ANNOTATION_GENERATION: str(generation)}
    if spec.queue_name:
        annotations[KUEUE_POD_GROUP_COUNT] = str(spec.parallelism.nodes)
    container: Obj = {
        "name": CONTAINER,
        "image": spec.image or "",
        "command": _command(meta),
        "env": _env(meta, spec, index, generation),
        "ports": [{"name": "rendezvous", "containerPort": spec.parallelism.master_port}],
        "volumeMounts": mounts,
        "terminationMessagePath": TERMINATION_LOG,
        # A crash before the trainer writes its reason still leaves the log's tail.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": copy.deepcopy(CONTAINER_SECURITY),
    }
    resources = _resources(spec)
    if resources:
        container["resources"] = resources
    pod_spec: Obj = {
        "restartPolicy": "Never",  # the operator restarts the whole group, never one pod
        "hostname": names.worker(index),
        "subdomain": names.service,
        "serviceAccountName": pod_service_account(meta, spec),
        # The trainer reports progress with this token (its Role: its own job's status).
        "automountServiceAccountToken": True,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": spec.template.termination_grace_period_seconds,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": TRAINER_UID,
            "runAsGroup": TRAINER_UID,
            "fsGroup": TRAINER_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": volumes,
    }
    t = spec.template
    if t.node_selector:
        pod_spec["nodeSelector"] = dict(t.node_selector)
    tolerations = list(t.tolerations)
    if spec.resources.gpu:
        # GPU nodes are commonly tainted (key: the resource name) so only GPU pods land there.
        key = spec.resources.gpu_resource
        gpu_toleration = {"key": key, "operator": "Exists", "effect": "NoSchedule"}
        if gpu_toleration not in tolerations:
            tolerations.append(gpu_toleration)
    if tolerations:
        pod_spec["tolerations"] = tolerations
    if t.affinity:
        pod_spec["affinity"] = t.affinity
    if t.priority_class_name:
        pod_spec["priorityClassName"] = t.priority_class_name
    if t.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": s.name} for s in t.image_pull_secrets]
    if t.init_containers:
        pod_spec["initContainers"] = [_init_container(c.to_yaml_dict()) for c in t.init_containers]
    if t.scheduler_name:
        pod_spec["schedulerName"] = t.scheduler_name
    if t.host_ipc:
        pod_spec["hostIPC"] = True
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            **_metadata(meta, names.worker(index), _pod_labels(meta, spec, index, generation)),
            "annotations": annotations,
        },
        "spec": pod_spec,
    }


__all__ = [
    "FIELD_MANAGER",
    "owner_reference",
    "render_children",
    "render_role",
    "render_role_binding",
    "render_service",
    "render_service_account",
    "render_spec_config_map",
    "render_worker_pod",
    "resolved_job_document",
]
