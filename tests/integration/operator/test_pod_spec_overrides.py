"""Pod overrides on the real API server: init containers, the scheduler, /dev/shm and hostIPC
reach the worker pods the API server accepts, and an init container runs before the trainer."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes import client
from operator_helpers import Jobs, Operator, standin_job, until

pytestmark = pytest.mark.timeout(120)


def security(container: client.V1Container) -> tuple[object, ...]:
    ctx = container.security_context
    drop = ctx.capabilities.drop if ctx.capabilities else None
    return ctx.allow_privilege_escalation, drop, ctx.run_as_non_root, ctx.run_as_user


def shm(pod: client.V1Pod) -> tuple[list[client.V1Volume], list[client.V1VolumeMount]]:
    """The pod's /dev/shm volumes and the trainer's mounts of them."""
    mounts = [m for m in pod.spec.containers[0].volume_mounts if m.mount_path == "/dev/shm"]
    names = {m.name for m in mounts}
    return [v for v in pod.spec.volumes if v.name in names], mounts


def test_init_container_runs_first_and_shm_is_sized(
    operator: Operator, jobs: Jobs, tmp_path: Path, trainer_image: str
):
    """The default scheduler (the real nodes run the pods): the init container (the trainer
    image's python) writes a file the trainer's run directory volume holds, then the trainer
    runs to the end."""
    run = tmp_path / "run"
    run.mkdir()
    write = "import os, sys; open(sys.argv[1] + '/' + os.environ['HOSTNAME'], 'w').write('x')"
    init = {"name": "prepare", "image": trainer_image,
            "command": ["python", "-c", write, "/prepared"],
            "volumeMounts": [{"name": "kubetrain-run", "mountPath": "/prepared"}]}  # fmt: skip
    jobs.create(standin_job("prepared", run, "ok", "20", resources={"shmSize": "256Mi"},
                            template={"initContainers": [init]}))  # fmt: skip

    status = jobs.wait_phase("prepared", ("Succeeded", "Failed"), 90)

    assert status["phase"] == "Succeeded", status
    pods = jobs.pods("prepared")
    assert len(pods) == 2
    for pod in pods:
        (prepare,) = pod.spec.init_containers
        assert prepare.name == "prepare"
        # The trainer's defaults, as the trainer container has them.
        assert security(prepare) == security(pod.spec.containers[0]) == (False, ["ALL"], True, None)
        (done,) = pod.status.init_container_statuses
        assert done.state.terminated.exit_code == 0
        trainer = pod.status.container_statuses[0].state.terminated
        assert done.state.terminated.finished_at <= trainer.started_at
        volumes, mounts = shm(pod)
        assert [(v.empty_dir.medium, v.empty_dir.size_limit) for v in volumes] == [
            ("Memory", "256Mi")
        ]
        assert len(mounts) == 1
    assert sorted(p.name for p in run.iterdir() if p.name.startswith("prepared-worker")) == [
        "prepared-worker-0", "prepared-worker-1"
    ]  # fmt: skip


def test_scheduler_name_and_host_ipc_reach_the_pods(
    operator: Operator, jobs: Jobs, tmp_path: Path, trainer_image: str
):
    """A scheduler that does not run here: the pods are created as asked and wait for it."""
    run = tmp_path / "run"
    run.mkdir()
    init = {"name": "chown", "image": trainer_image, "command": ["true"],
            "securityContext": {"runAsNonRoot": False, "runAsUser": 0}}  # fmt: skip
    template = {"schedulerName": "gang-scheduler", "hostIPC": True, "initContainers": [init]}
    jobs.create(standin_job("ganged", run, "ok", "20", template=template))

    pods = until(lambda: p if len(p := jobs.pods("ganged")) == 2 else None, 60, "2 pods")

    for pod in pods:
        assert pod.spec.scheduler_name == "gang-scheduler"
        assert pod.spec.host_ipc is True
        assert pod.spec.node_name is None  # kube-scheduler leaves another's pods alone
        # The node's /dev/shm is the one shared: no volume hides it.
        assert shm(pod) == ([], [])
        (chown,) = pod.spec.init_containers
        # Its own keys win; the defaults it does not set still apply.
        assert security(chown) == (False, ["ALL"], False, 0)
