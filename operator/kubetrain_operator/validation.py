"""What the CRD schema cannot check (pure): every problem at once, each naming its field.

A non-empty result fails the job with reason InvalidSpec; it is never retried.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import ValidationError

from kubetrain.api.errors import issues_from
from kubetrain.api.job import TrainingJob
from kubetrain.api.plan import procs_per_node, resolve_plan
from kubetrain.api.spec import TrainingJobSpec
from kubetrain.api.yamlsource import Document
from kubetrain.errors import InvalidJob
from kubetrain_operator.names import ANNOTATION_COMMAND, max_job_name_length
from kubetrain_operator.render import RUN_VOLUME, SHM_VOLUME, SPEC_DIR, SPEC_VOLUME

DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
RESERVED_ENV = re.compile(r"^(PET_|KUBETRAIN_)")
RESERVED_PATHS = (SPEC_DIR, "/dev/shm")


def parse(obj: dict[str, Any]) -> tuple[TrainingJobSpec | None, list[str]]:
    """The object's spec, or the problems that prevent reading it (the API server's
    schema is looser than the models in places: this is where the difference shows)."""
    data = {k: obj[k] for k in ("apiVersion", "kind", "spec") if k in obj}
    try:
        return TrainingJob.model_validate(data).spec, []
    except ValidationError as e:
        return None, [str(i) for i in issues_from(e, TrainingJob, Document(data, ""))]


def _names(name: str, spec: TrainingJobSpec) -> list[str]:
    problems = []
    if not DNS_1035.match(name):
        problems.append(
            "metadata.name: must start with a letter (it names the headless Service)"
        )
    # An elastic job may grow to maxNodes: its largest worker index must fit too.
    nodes = spec.parallelism.max_nodes or spec.parallelism.nodes
    limit = max_job_name_length(nodes)
    if len(name) > limit:
        problems.append(
            f"metadata.name: at most {limit} characters with {nodes} nodes "
            "(worker hostnames are <name>-worker-<i>, at most 63 characters)"
        )
    return problems


def _template(spec: TrainingJobSpec) -> list[str]:
    t, problems = spec.template, []
    for i, env in enumerate(t.env):
        if RESERVED_ENV.match(str(env.get("name", ""))):
            problems.append(
                f"spec.template.env[{i}].name: {env.get('name')} is set by the operator"
            )
    volumes = {str(v.get("name")) for v in t.volumes}
    if {SPEC_VOLUME, SHM_VOLUME} & volumes:
        problems.append(
            f"spec.template.volumes: the names {SPEC_VOLUME} and {SHM_VOLUME} are the operator's"
        )
    # (A dshm mount with hostIPC, where the pod has no dshm volume, is refused by the model.)
    known = volumes | {SPEC_VOLUME, SHM_VOLUME, RUN_VOLUME}
    for i, mount in enumerate(t.volume_mounts):
        if mount.name not in known:
            problems.append(f"spec.template.volumeMounts[{i}].name: no volume {mount.name!r}")
        if mount.mount_path.rstrip("/") in RESERVED_PATHS:
            problems.append(
                f"spec.template.volumeMounts[{i}].mountPath: {mount.mount_path} is the operator's"
            )
    for i, init in enumerate(t.init_containers or []):
        for j, mount in enumerate(init.volume_mounts or []):
            if mount.name not in known:
                problems.append(
                    f"spec.template.initContainers[{i}].volumeMounts[{j}].name: "
                    f"no volume {mount.name!r}"
                )
    return problems


def _resources(spec: TrainingJobSpec) -> list[str]:
    gpus, problems = spec.resources.gpu, []
    procs = procs_per_node(spec, gpus)
    if gpus and procs > gpus:
        problems.append(
            f"spec.parallelism.procsPerNode: {procs} processes but {gpus} GPU(s) per node"
        )
    if spec.parallelism.backend == "nccl" and not gpus:
        problems.append("spec.parallelism.backend: nccl needs GPUs (spec.resources.gpu)")
    try:
        resolve_plan(spec)
    except InvalidJob as e:
        problems.append(str(e))
    return problems


def _command(annotations: dict[str, str]) -> list[str]:
    raw = annotations.get(ANNOTATION_COMMAND)
    if raw is None:
        return []
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if not (isinstance(value, list) and value and all(isinstance(a, str) for a in value)):
        return [f"metadata.annotations[{ANNOTATION_COMMAND}]: must be a JSON list of strings"]
    return []


def warnings(spec: TrainingJobSpec) -> list[str]:
    """Runnable, but probably not what the user wants (reported as Warning events once)."""
    run_volume = next((v for v in spec.template.volumes if v.get("name") == RUN_VOLUME), None)
    # Any checkpoint.path counts as shared: a mounted volume, or a bucket (s3://), which every
    # node reaches without a ReadWriteMany volume.
    if spec.parallelism.nodes > 1 and run_volume is None and spec.checkpoint.path is None:
        return [
            f"{spec.parallelism.nodes} nodes share no checkpoint storage ({RUN_VOLUME} is an "
            "emptyDir per pod): a group restart cannot resume; set spec.checkpoint.path to an "
            "s3:// bucket prefix (no shared volume needed), or mount a ReadWriteMany volume "
            f"named {RUN_VOLUME} in spec.template.volumes or set spec.checkpoint.path on one"
        ]
    return []


def validate(name: str, annotations: dict[str, str], spec: TrainingJobSpec) -> list[str]:
    """Problems that make the job impossible to run here (empty when it can run)."""
    problems = []
    if not spec.image:
        problems.append("spec.image: required in a cluster (the trainer image to run)")
    return (
        problems + _names(name, spec) + _template(spec) + _resources(spec) + _command(annotations)
    )
