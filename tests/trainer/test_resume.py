"""Distributed runs and the resume contract: DDP ≡ one process, kill -9 / SIGTERM / 2→1 resume,
corrupt checkpoints skipped, a crashed rank ends the run (FSDP's resume: test_resume_fsdp.py).

Every run trains the same small job; an uninterrupted run is the reference.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
from pathlib import Path
from typing import Any

import pytest
import torch
from trainer_cli import (
    final_params,
    kill_launcher,
    kubetrain,
    logged_step,
    losses,
    start,
    wait_for,
    write_job,
)
from trainer_jobs import job_dict

STEPS = 300
CKPT = 20


def _job(tmp: Path, name: str, dropout: float = 0.0, **spec: Any) -> Path:
    base = {
        "dataset": {"type": "synthetic",
                    "synthetic": {"task": "classification", "samples": 4096, "features": 16,
                                  "classes": 4, "noise": 0.5}},
        "model": {"type": "mlp", "mlp": {"hidden": [64, 64]}, "dropout": dropout},
        "optimizer": {"type": "adamw", "lr": 0.003, "weightDecay": 0.01},
        "scheduler": {"type": "cosine", "warmupSteps": 10},
        "training": {"maxSteps": STEPS, "globalBatchSize": 32, "microBatchSize": 8,
                     "logging": {"everySteps": 1}, "gradClipNorm": 1.0},
        "checkpoint": {"everySteps": CKPT, "keepLast": 2},
        **spec,
    }
    return write_job(tmp / f"{name}.yaml", job_dict(base, name=name))


def _assert_same_run(got: Path, want: Path, *, exact: bool, after: int = 0) -> None:
    a, b = losses(got), losses(want)
    steps = [s for s in b if s > after]
    assert len(steps) >= STEPS - after - 1 and all(s in a for s in steps)
    for s in steps:
        if exact:
            assert a[s] == b[s], f"step {s}: {a[s]} != {b[s]}"
        else:
            assert a[s] == pytest.approx(b[s], rel=1e-5, abs=1e-6), f"step {s}"
    pa, pb = final_params(got), final_params(want)
    for k in pb:
        if exact:
            assert torch.equal(pa[k], pb[k]), k
        else:
            torch.testing.assert_close(pa[k], pb[k], rtol=1e-4, atol=1e-5, msg=k)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("resume")


@pytest.fixture(scope="module")
def reference_2proc(work: Path) -> Path:
    """2 processes, dropout on (so every rank's RNG state matters), never interrupted."""
    run_dir = work / "ref2"
    r = kubetrain("run", _job(work, "ref", dropout=0.1), "--procs", "2", "--run-dir", run_dir,
                  "--no-progress")
    assert r.returncode == 0, r.stderr
    return run_dir


@pytest.fixture(scope="module")
def reference_1proc(work: Path) -> Path:
    run_dir = work / "ref1"
    r = kubetrain("run", _job(work, "plain"), "--run-dir", run_dir, "--no-progress")
    assert r.returncode == 0, r.stderr
    return run_dir


def test_kill9_then_resume_continues_the_same_run(work: Path, reference_2proc: Path) -> None:
    run_dir = work / "killed"
    job = _job(work, "ref", dropout=0.1)
    proc = start("run", job, "--procs", "2", "--run-dir", run_dir, "--no-progress")
    # After a checkpoint and some further steps: kill every process of the run at once.
    wait_for(lambda: logged_step(run_dir) >= 2 * CKPT + 3, 120, "steps after a checkpoint")
    kill_launcher(proc)
    assert logged_step(run_dir) < STEPS
    r = kubetrain("run", job, "--procs", "2", "--run-dir", run_dir, "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "resuming from" in r.stderr
    _assert_same_run(run_dir, reference_2proc, exact=True)


def test_sigterm_checkpoints_exits_75_and_resumes(work: Path, reference_2proc: Path) -> None:
    run_dir = work / "terminated"
    job = _job(work, "ref", dropout=0.1)
    proc = start("run", job, "--procs", "2", "--run-dir", run_dir, "--no-progress")
    wait_for(lambda: logged_step(run_dir) >= 7, 120, "training to start")
    proc.send_signal(signal.SIGTERM)  # to the entrypoint only, as the kubelet does
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 75, out
    stopped = logged_step(run_dir)
    assert (run_dir / "checkpoints" / f"step-{stopped:08d}" / "manifest.json").is_file()
    r = kubetrain("run", job, "--procs", "2", "--run-dir", run_dir, "--no-progress")
    assert r.returncode == 0, r.stderr
    _assert_same_run(run_dir, reference_2proc, exact=True)


def test_ddp_matches_one_process_and_resumes_with_another_world_size(
        work: Path, reference_1proc: Path) -> None:
    run_dir = work / "two-then-one"
    job = _job(work, "plain")
    proc = start("run", job, "--procs", "2", "--run-dir", run_dir, "--no-progress")
    wait_for(lambda: logged_step(run_dir) >= 2 * CKPT + 3, 120, "steps after a checkpoint")
    kill_launcher(proc)
    two = losses(run_dir)
    one = losses(reference_1proc)
    # Same global batch, same data order: the 2-process curve is the 1-process curve.
    assert len(two) > 2 * CKPT
    for s, v in two.items():
        assert v == pytest.approx(one[s], rel=1e-5, abs=1e-6), f"step {s}"
    r = kubetrain("run", job, "--procs", "1", "--run-dir", run_dir, "--no-progress")
    assert r.returncode == 0, r.stderr
    _assert_same_run(run_dir, reference_1proc, exact=False)


@pytest.mark.parametrize("damage", ["truncated", "garbage of the same size"])
def test_a_corrupt_newest_checkpoint_is_skipped(work: Path, reference_1proc: Path,
                                                damage: str) -> None:
    run_dir = work / f"corrupt-{damage.split()[0]}"
    shutil.copytree(reference_1proc / "checkpoints", run_dir / "checkpoints")
    newest, older = sorted((run_dir / "checkpoints").glob("step-*"))[::-1][:2]
    target = newest / "optim.pt"
    if damage == "truncated":  # caught by the manifest's sizes
        with target.open("r+b") as f:
            f.truncate(100)
    else:  # caught when loading
        target.write_bytes(b"\0" * target.stat().st_size)
    job = _job(work, "plain", training={"maxSteps": STEPS + 5})
    r = kubetrain("run", job, "--run-dir", run_dir, "--no-progress")
    assert r.returncode == 0, r.stderr
    assert f"skipping checkpoint {newest}" in r.stderr and f"resuming from {older}" in r.stderr


def _children(pid: int) -> list[int]:
    kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(k) for k in kids]


def test_a_crashed_rank_ends_the_run(work: Path) -> None:
    run_dir = work / "crash"
    job = _job(work, "crash", parallelism={"timeoutSeconds": 30},
               training={"maxSteps": 100_000, "globalBatchSize": 32, "microBatchSize": 8,
                         "logging": {"everySteps": 1}})
    proc = start("run", job, "--procs", "2", "--run-dir", run_dir, "--no-progress")
    wait_for(lambda: logged_step(run_dir) >= 5, 120, "training to start")
    torchrun = _children(proc.pid)[0]
    workers = _children(torchrun)
    assert len(workers) == 2


    os.kill(workers[-1], signal.SIGKILL)
    out, _ = proc.communicate(timeout=30)  # well within parallelism.timeoutSeconds
    assert proc.returncode == 1, out


def test_a_hung_rank_fails_the_group_after_the_collective_timeout(work: Path) -> None:
    run_dir = work / "hang"
    job = _job(work, "hang", parallelism={"timeoutSeconds": 10},
               training={"maxSteps": 100_000, "globalBatchSize": 32, "microBatchSize": 8,
                         "logging": {"everySteps": 1}})
    proc = start("run", job, "--procs", "2", "--run-dir", run_dir, "--no-progress")
    wait_for(lambda: logged_step(run_dir) >= 5, 120, "training to start")
    workers = _children(_children(proc.pid)[0])
    os.kill(workers[-1], signal.SIGSTOP)  # frozen, not dead: only the timeout can tell
    try:
        out, _ = proc.communicate(timeout=90)
    finally:
        for pid in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert proc.returncode == 1, out
