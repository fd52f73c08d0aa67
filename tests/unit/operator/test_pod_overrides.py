"""Pod overrides: any extended resource, imagePullSecrets, a chosen ServiceAccount, the
grace period the trainer's shutdown follows, init containers, the scheduler, and /dev/shm or
the node's IPC namespace for NCCL."""

from __future__ import annotations

import signal
import time

import pytest
from operator_builders import meta, spec
from pydantic import ValidationError

from kubetrain.trainer.signals import StopFlag
from kubetrain_operator.render import render_children, render_role_binding, render_worker_pod


def container(pod: dict) -> dict:
    return pod["spec"]["containers"][0]


def env(pod: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container(pod)["env"]}


@pytest.mark.parametrize("resource", ["amd.com/gpu", "habana.ai/gaudi", "nvidia.com/mig-1g.10gb"])
def test_any_accelerator_resource_is_requested_tolerated_and_counted(resource: str):
    s = spec(resources={"gpu": 4, "gpuResource": resource},
             parallelism={"nodes": 2, "procsPerNode": "auto", "backend": "nccl"})  # fmt: skip

    pod = render_worker_pod(meta(), s, index=0, generation=0)

    assert container(pod)["resources"] == {"requests": {resource: "4"}, "limits": {resource: "4"}}
    assert pod["spec"]["tolerations"] == [
        {"key": resource, "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert env(pod)["PET_NPROC_PER_NODE"] == "4"


def test_other_extended_resources_are_requested_beside_the_accelerators():
    s = spec(resources={"gpu": 8, "cpu": 4, "extended": {"rdma/hca_shared_devices_a": 1,
                                                         "example.com/fpga": 2}})  # fmt: skip

    requests = container(render_worker_pod(meta(), s, 0, 0))["resources"]["requests"]

    assert requests == {"cpu": "4", "nvidia.com/gpu": "8", "example.com/fpga": "2",
                        "rdma/hca_shared_devices_a": "1"}  # fmt: skip


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        ({"extended": {"fpga": 1}}, "extended: names are extended resources"),
        ({"extended": {"nvidia.com/gpu": 1}}, "other than gpuResource"),
        ({"extended": {"rdma/hca": 0}}, "greater than or equal to 1"),
        ({"gpuResource": "gpu"}, "String should match pattern"),
    ],
)
def test_bad_resource_names_are_refused(resources: dict, message: str):
    with pytest.raises(ValidationError, match=message):
        spec(resources=resources)


def test_image_pull_secrets_and_the_grace_period_reach_the_pod():
    s = spec(template={"imagePullSecrets": [{"name": "regcred"}, {"name": "mirror"}],
                       "terminationGracePeriodSeconds": 300})  # fmt: skip

    pod = render_worker_pod(meta(), s, 0, 0)

    assert pod["spec"]["imagePullSecrets"] == [{"name": "regcred"}, {"name": "mirror"}]
    assert pod["spec"]["terminationGracePeriodSeconds"] == 300
    # torchrun would SIGKILL its workers 30 s after SIGTERM unless told: it gets the same time.
    assert env(pod)["PET_SHUTDOWN_TIMEOUT"] == "300"
    assert env(pod)["KUBETRAIN_GRACE_SECONDS"] == "300"


def test_defaults_keep_60_seconds_no_pull_secrets_and_the_per_job_account():
    pod = render_worker_pod(meta(), spec(), 0, 0)

    assert pod["spec"]["terminationGracePeriodSeconds"] == 60
    assert "imagePullSecrets" not in pod["spec"]
    assert pod["spec"]["serviceAccountName"] == "demo-trainer"
    subjects = render_role_binding(meta(), spec())["subjects"]
    assert subjects == [{"kind": "ServiceAccount", "name": "demo-trainer", "namespace": "ns"}]


def test_a_chosen_account_runs_the_pods_and_may_report_this_jobs_progress():
    s = spec(template={"serviceAccountName": "s3-reader"})

    pod = render_worker_pod(meta(), s, 0, 0)
    children = {c["kind"]: c for c in render_children(meta(), s)}

    assert pod["spec"]["serviceAccountName"] == "s3-reader"
    assert pod["spec"]["automountServiceAccountToken"] is True
    assert [x["name"] for x in children["RoleBinding"]["subjects"]] == ["demo-trainer", "s3-reader"]
    # The Role is unchanged: get/patch of this one job's status.
    (rule,) = children["Role"]["rules"]
    assert (rule["resources"], rule["resourceNames"]) == (["trainingjobs/status"], ["demo"])


@pytest.mark.parametrize("name", ["other-trainer", "demo-trainer"])
def test_another_jobs_account_cannot_be_chosen(name: str):
    with pytest.raises(ValidationError, match="per-job accounts of kubetrain"):
        spec(template={"serviceAccountName": name})


@pytest.mark.parametrize("grace", [0, 4, 86_401])
def test_grace_period_bounds(grace: int):
    with pytest.raises(ValidationError, match="terminationGracePeriodSeconds"):
        spec(template={"terminationGracePeriodSeconds": grace})


def test_the_trainer_knows_its_checkpoint_deadline():
    flag = StopFlag({"KUBETRAIN_GRACE_SECONDS": "90"})
    before = time.monotonic()

    flag._handle(signal.SIGTERM, None)

    assert flag()
    assert flag.deadline is not None and before + 90 <= flag.deadline <= time.monotonic() + 90
    local = StopFlag({})
    local._handle(signal.SIGTERM, None)
    assert local() and local.deadline is None


def test_torchrun_takes_its_shutdown_timeout_from_the_pod_env(monkeypatch: pytest.MonkeyPatch):
    """torchrun SIGKILLs its workers `shutdown_timeout` after a SIGTERM (30 s by default): the
    PET_SHUTDOWN_TIMEOUT the operator sets must reach it, or a long checkpoint is cut short."""
    from torch.distributed.run import get_args_parser

    monkeypatch.setenv("PET_SHUTDOWN_TIMEOUT", "300")
    assert get_args_parser().parse_args(["train.py"]).shutdown_timeout == 300
    monkeypatch.delenv("PET_SHUTDOWN_TIMEOUT")
    assert get_args_parser().parse_args(["train.py"]).shutdown_timeout in (None, 30)


def shm(pod: dict) -> tuple[list[dict], list[dict]]:
    """The pod's /dev/shm volumes and the trainer's mounts of them."""
    mounts = [m for m in container(pod)["volumeMounts"] if m["mountPath"] == "/dev/shm"]
    names = {m["name"] for m in mounts}
    return [v for v in pod["spec"]["volumes"] if v["name"] in names], mounts


def test_init_containers_run_first_without_privileges_unless_they_say_so():
    fetch = {"name": "fetch", "image": "busybox:1.36", "command": ["sh", "-c", "true"]}
    root = {"name": "chown", "image": "busybox:1.36",
            "securityContext": {"runAsNonRoot": False, "runAsUser": 0}}  # fmt: skip
    s = spec(template={"initContainers": [fetch, root]})

    pod = render_worker_pod(meta(), s, 0, 0)

    first, second = pod["spec"]["initContainers"]
    assert {k: first[k] for k in fetch} == fetch
    assert first["securityContext"] == container(pod)["securityContext"] == {
        "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, "runAsNonRoot": True
    }  # fmt: skip
    # The keys it sets are its own; the defaults it does not set still apply.
    assert second["securityContext"] == {
        "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": False, "runAsUser": 0,
    }  # fmt: skip
    # The spec is not changed by rendering (it is rendered again for every pod).
    assert [c.to_yaml_dict() for c in s.template.init_containers or []] == [fetch, root]
    assert pod["spec"]["containers"][0]["name"] == "trainer"


def test_scheduler_name_reaches_the_pod():
    pod = render_worker_pod(meta(), spec(template={"schedulerName": "volcano"}), 0, 0)

    assert pod["spec"]["schedulerName"] == "volcano"


def test_defaults_add_no_init_containers_scheduler_or_host_ipc_and_a_1gi_shm():
    pod = render_worker_pod(meta(), spec(), 0, 0)

    assert not {"initContainers", "schedulerName", "hostIPC"} & set(pod["spec"])
    volumes, mounts = shm(pod)
    assert [v["emptyDir"] for v in volumes] == [{"medium": "Memory", "sizeLimit": "1Gi"}]
    assert len(mounts) == 1


def test_shm_size_sizes_the_in_memory_dev_shm():
    pod = render_worker_pod(meta(), spec(resources={"shmSize": "8Gi"}), 0, 0)

    volumes, mounts = shm(pod)
    assert [v["emptyDir"] for v in volumes] == [{"medium": "Memory", "sizeLimit": "8Gi"}]
    assert [m["name"] for m in mounts] == [v["name"] for v in volumes]


def test_host_ipc_shares_the_nodes_dev_shm_instead_of_a_volume():
    pod = render_worker_pod(meta(), spec(template={"hostIPC": True}), 0, 0)

    assert pod["spec"]["hostIPC"] is True
    # A volume at /dev/shm would hide the node's, which hostIPC is asked for.
    assert shm(pod) == ([], [])
    assert [v["name"] for v in pod["spec"]["volumes"]] == ["kubetrain-spec", "kubetrain-run"]


@pytest.mark.parametrize(
    ("template", "field"),
    [
        ({"schedulerName": "Not_A_Name"}, "schedulerName"),
        ({"initContainers": [{"name": f"c{i}", "image": "i"} for i in range(17)]},
         "initContainers"),
        ({"hostIPC": "sometimes"}, "hostIPC\n  Input should be a valid boolean"),
    ],
)
def test_bad_overrides_are_refused_naming_the_field(template: dict, field: str):
    with pytest.raises(ValidationError, match=field):
        spec(template=template)
