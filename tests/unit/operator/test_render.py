"""Spec → child objects: golden files for whole objects, exact dicts for the parts that matter.

Regenerate the golden files after an intended change: UPDATE_GOLDEN=1 pytest tests/unit/operator
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from operator_builders import meta, spec

from kubetrain_operator.render import (
    render_children,
    render_role,
    render_service,
    render_worker_pod,
)

GOLDEN = Path(__file__).with_name("golden")


def golden(name: str, obj: Any) -> None:
    path = GOLDEN / f"{name}.json"
    text = json.dumps(obj, indent=2, sort_keys=True) + "\n"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.exists(), f"missing {path}: run with UPDATE_GOLDEN=1"
    assert json.loads(path.read_text()) == obj, f"{path} differs: UPDATE_GOLDEN=1 if intended"


GPU_SPEC = dict(
    resources={"gpu": 8, "cpu": "90", "memory": "1000Gi", "shmSize": "64Gi"},
    parallelism={"nodes": 4, "procsPerNode": "auto", "backend": "nccl"},
    training={"maxSteps": 100, "globalBatchSize": 64},
    queueName="team-a",
    template={
        "nodeSelector": {"gpu": "h100"},
        "tolerations": [{"key": "dedicated", "operator": "Exists"}],
        "affinity": {"podAntiAffinity": {}},
        "priorityClassName": "high",
        "labels": {"team": "a"},
        "annotations": {"note": "x"},
        "env": [{"name": "NCCL_DEBUG", "value": "INFO"}, {"name": "EXTRA", "value": "1"}],
        "volumes": [{"name": "kubetrain-run", "persistentVolumeClaim": {"claimName": "ckpt"}},
                    {"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
    },
)  # fmt: skip


def test_worker_pod_golden():
    golden("worker-pod", render_worker_pod(meta(), spec(), index=1, generation=0))


def test_gpu_worker_pod_with_overrides_golden():
    golden("worker-pod-gpu", render_worker_pod(meta(), spec(**GPU_SPEC), index=3, generation=2))


def test_children_golden():
    golden("children", render_children(meta(), spec()))


def env(pod: dict[str, Any]) -> dict[str, Any]:
    container = pod["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_torchrun_env_points_every_worker_at_worker_zero():
    pods = [render_worker_pod(meta(), spec(), i, 0) for i in range(2)]
    for i, pod in enumerate(pods):
        e = env(pod)
        assert (e["PET_NNODES"], e["PET_NPROC_PER_NODE"], e["PET_NODE_RANK"]) == ("2", "1", str(i))
        assert (e["PET_MASTER_ADDR"], e["PET_MASTER_PORT"]) == ("demo-worker-0.demo", "29500")
        assert pod["spec"]["hostname"] == f"demo-worker-{i}" and pod["spec"]["subdomain"] == "demo"


def test_user_env_overrides_defaults_and_run_volume_is_replaceable():
    pod = render_worker_pod(meta(), spec(**GPU_SPEC), 0, 0)
    e = env(pod)
    assert e["NCCL_DEBUG"] == "INFO" and e["EXTRA"] == "1" and e["PET_NPROC_PER_NODE"] == "8"
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["kubetrain-run"] == {
        "name": "kubetrain-run", "persistentVolumeClaim": {"claimName": "ckpt"}
    }
    assert volumes["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "64Gi"}


def test_gpu_resources_are_guaranteed_and_tolerated():
    pod = render_worker_pod(meta(), spec(**GPU_SPEC), 0, 0)
    amounts = {"cpu": "90", "memory": "1000Gi", "nvidia.com/gpu": "8"}
    assert pod["spec"]["containers"][0]["resources"] == {"requests": amounts, "limits": amounts}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
        "spec"]["tolerations"]


def test_kueue_labels_and_restart_generation():
    pod = render_worker_pod(meta(), spec(**GPU_SPEC), 3, 2)
    labels, annotations = pod["metadata"]["labels"], pod["metadata"]["annotations"]
    assert labels["kueue.x-k8s.io/queue-name"] == "team-a"
    assert labels["kueue.x-k8s.io/pod-group-name"] == "demo-g2"
    assert annotations["kueue.x-k8s.io/pod-group-total-count"] == "4"
    assert labels["kubetrain.io/restart-generation"] == annotations[
        "kubetrain.io/restart-generation"] == "2"
    assert labels["team"] == "a" and labels["kubetrain.io/job-name"] == "demo"


def test_pod_is_locked_down():
    pod = render_worker_pod(meta(), spec(), 0, 0)
    container = pod["spec"]["containers"][0]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True
    }
    assert pod["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert (container["terminationMessagePath"], container["terminationMessagePolicy"]) == (
        "/dev/termination-log", "FallbackToLogsOnError"
    )
    assert pod["spec"]["serviceAccountName"] == "demo-trainer"
    assert pod["spec"]["restartPolicy"] == "Never"


def test_command_annotation_replaces_the_entrypoint():
    pod = render_worker_pod(meta(**{"kubetrain.io/command": '["python", "x.py"]'}), spec(), 0, 0)
    assert pod["spec"]["containers"][0]["command"] == ["python", "x.py"]
    default = render_worker_pod(meta(), spec(), 0, 0)["spec"]["containers"][0]["command"]
    assert default == ["kubetrain", "run", "/etc/kubetrain/job.yaml"]


def test_trainer_role_is_its_own_job_status_only():
    assert render_role(meta())["rules"] == [{
        "apiGroups": ["kubetrain.io"], "resources": ["trainingjobs/status"],
        "resourceNames": ["demo"], "verbs": ["get", "patch"],
    }]  # fmt: skip


def test_headless_service_publishes_not_ready_addresses():
    svc = render_service(meta(), spec(parallelism={"masterPort": 23456}))["spec"]
    assert (svc["clusterIP"], svc["publishNotReadyAddresses"]) == ("None", True)
    assert svc["ports"][0]["port"] == 23456


@pytest.mark.parametrize("obj", render_children(meta(), spec()), ids=lambda o: o["kind"])
def test_every_child_is_owned_by_the_job(obj: dict[str, Any]):
    (owner,) = obj["metadata"]["ownerReferences"]
    assert owner == {"apiVersion": "kubetrain.io/v1alpha1", "kind": "TrainingJob", "name": "demo",
                     "uid": "uid-1", "controller": True, "blockOwnerDeletion": True}  # fmt: skip


def test_spec_config_map_holds_the_resolved_job():
    cm = render_children(meta(), spec())[3]
    doc = yaml.safe_load(cm["data"]["job.yaml"])
    assert doc["metadata"] == {"name": "demo", "namespace": "ns"}
    assert doc["spec"]["runPolicy"]["maxRestarts"] == 3  # defaults filled in
