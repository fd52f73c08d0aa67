"""Launch: torchrun's PET_* environment wins over the spec; the most specific exit code wins."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubetrain.errors import InvalidJob
from kubetrain.exitcodes import ExitCode
from kubetrain.trainer.launch import (
    report_exit,
    topology,
    torchrun_command,
    worst_exit,
)

ROOT = Path(__file__).resolve().parents[2]


def test_local_topology_comes_from_the_spec() -> None:
    top = topology(1, 2, 29511, env={})
    assert (top.nnodes, top.nproc_per_node, top.node_rank, top.master_addr) == (
        1, 2, 0, "127.0.0.1")
    assert top.master_port != topology(1, 2, 29511, env={}).master_port  # a free port each time
    cmd = torchrun_command(top, ["run", "job.yaml"])
    assert cmd[1:3] == ["-m", "torch.distributed.run"] and "--nproc-per-node=2" in cmd
    assert cmd[-3:] == ["kubetrain", "run", "job.yaml"]


def test_pod_topology_comes_from_pet_variables() -> None:
    env = {"PET_NNODES": "4", "PET_NPROC_PER_NODE": "8", "PET_NODE_RANK": "3",
           "PET_MASTER_ADDR": "job-worker-0.job", "PET_MASTER_PORT": "29500"}
    top = topology(4, 1, 1234, env=env)
    assert (top.nnodes, top.nproc_per_node, top.node_rank, top.master_addr, top.master_port) == (
        4, 8, 3, "job-worker-0.job", 29500)
    assert top.world == 32


def test_many_nodes_need_a_cluster() -> None:
    with pytest.raises(InvalidJob, match="needs a cluster"):
        topology(2, 1, 29500, env={})
    with pytest.raises(InvalidJob, match=r"PET_NNODES=3 but parallelism\.nodes is 2"):
        topology(2, 1, 29500, env={"PET_NNODES": "3"})


def test_the_most_specific_exit_code_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBETRAIN_EXIT_DIR", str(tmp_path))
    assert worst_exit(tmp_path, 0) == (ExitCode.SUCCEEDED, "")
    assert worst_exit(tmp_path, 1) == (ExitCode.CRASHED, "")  # a rank died before reporting
    report_exit(0, ExitCode.INTERRUPTED, "")
    report_exit(1, ExitCode.INTERRUPTED, "")
    assert worst_exit(tmp_path, 1)[0] == ExitCode.INTERRUPTED
    report_exit(1, ExitCode.DIVERGED, "the training loss became nan at step 7")
    assert worst_exit(tmp_path, 1) == (ExitCode.DIVERGED, "the training loss became nan at step 7")


def test_nodes_sharing_a_run_directory_keep_separate_exit_reports(tmp_path) -> None:
    from kubetrain.trainer.launch import Topology, exit_dir

    dirs = {exit_dir(tmp_path, Topology(2, 1, rank, "master", 29500)) for rank in (0, 1)}
    assert len(dirs) == 2 and all(d.parent == tmp_path / ".exit" for d in dirs)


def test_an_in_process_run_leaves_the_callers_environment_alone(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                ) -> None:
    """A stale launch time in a long-lived caller (a test runner, a notebook) would make every
    later run's summary count start-up from that first run."""
    import os

    from kubetrain.cli.main import main
    from kubetrain.reporting.launch_time import STARTED_ENV

    monkeypatch.delenv(STARTED_ENV, raising=False)
    code = main(["run", str(ROOT / "examples" / "quickstart.yaml"), "--run-dir",
                 str(tmp_path / "run"), "--no-progress", "--set", "spec.training.maxSteps=2"])
    assert code == 0
    assert STARTED_ENV not in os.environ
