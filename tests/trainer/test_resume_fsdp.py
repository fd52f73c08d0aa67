"""FSDP2 resumes at any world size (issue 13, elastic size): a run stopped at 2 processes goes on
at 3, one written sharded goes on in a single process, and one written by a single process goes on
sharded — each to the same losses and weights as the uninterrupted run. (Resuming at the same
size is the case of no resharding; test_hf.py resumes FSDP2 LoRA at the same size.)

Exact here means what it means for DDP (test_resume.py): the global batch and the data order do
not depend on the world size, so only float summation order changes (how many micro-batches one
process accumulates, how many ranks a reduce-scatter adds). Measured: at most ~2e-7 relative on the
loss (one float32 ulp), hence DDP's tolerances (rel 1e-5 on losses, rtol 1e-4 on final weights).
"""

from __future__ import annotations

import shutil
import signal
from pathlib import Path

import pytest
import torch
from trainer_cli import final_params, kubetrain, logged_step, losses, start, wait_for, write_job
from trainer_jobs import job_dict

STEPS, CKPT = 30, 10


def _spec(strategy: str) -> dict[str, object]:
    # globalBatchSize 24 = microBatchSize 4 × {1, 2, 3} ranks × {6, 3, 2} accumulation steps.
    return {
        "dataset": {"type": "synthetic",
                    "synthetic": {"task": "lm", "samples": 512, "seqLen": 16, "vocabSize": 32}},
        "model": {"type": "gpt", "gpt": {"layers": 2, "heads": 2, "width": 32, "context": 16}},
        "optimizer": {"type": "adamw", "lr": 0.003, "weightDecay": 0.01},
        "scheduler": {"type": "cosine", "warmupSteps": 5},
        "training": {"maxSteps": STEPS, "globalBatchSize": 24, "microBatchSize": 4,
                     "logging": {"everySteps": 1}, "gradClipNorm": 1.0},
        "parallelism": {"strategy": strategy, "procsPerNode": 2},
        "checkpoint": {"everySteps": CKPT},
    }


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("resume-fsdp")


@pytest.fixture(scope="module")
def fsdp_job(work: Path) -> Path:
    return write_job(work / "fsdp.yaml", job_dict(_spec("fsdp"), "fsdp"))


@pytest.fixture(scope="module")
def plain_job(work: Path) -> Path:
    """The same job without FSDP: what a single process runs (fsdp needs two or more)."""
    return write_job(work / "plain.yaml", job_dict(_spec("auto"), "fsdp"))


@pytest.fixture(scope="module")
def reference(work: Path, fsdp_job: Path) -> Path:
    """FSDP over 2 processes, never interrupted."""
    run_dir = work / "reference"
    r = kubetrain("run", fsdp_job, "--run-dir", run_dir, "--no-progress")
    assert r.returncode == 0, r.stderr
    curve = losses(run_dir)
    assert curve[STEPS] < curve[1] - 0.3  # it learns the Markov chain
    assert (run_dir / "checkpoints" / f"step-{2 * CKPT:08d}" / "dcp").is_dir()
    return run_dir


def _resume_from(run_dir: Path, source: Path, step: int) -> None:
    """A fresh run directory holding only `source`'s checkpoint of `step`."""
    name = f"step-{step:08d}"
    shutil.copytree(source / "checkpoints" / name, run_dir / "checkpoints" / name)


def _assert_continues(got: Path, want: Path, after: int) -> None:
    a, b = losses(got), losses(want)
    assert min(s for s in a if s > after) == after + 1  # went on from the saved step
    for s in range(after + 1, STEPS + 1):
        assert a[s] == pytest.approx(b[s], rel=1e-5, abs=1e-6), f"step {s}: {a[s]} vs {b[s]}"
    pa, pb = final_params(got), final_params(want)
    assert pa.keys() == pb.keys()
    for k in pb:
        torch.testing.assert_close(pa[k], pb[k], rtol=1e-4, atol=1e-5, msg=k)


def test_fsdp_stopped_at_two_processes_resumes_at_three(
        work: Path, fsdp_job: Path, reference: Path) -> None:
    """The elastic resize path: SIGTERM → checkpoint → exit 75, then the group at a new size."""
    run_dir = work / "two-then-three"
    proc = start("run", fsdp_job, "--run-dir", run_dir, "--no-progress")
    wait_for(lambda: logged_step(run_dir) >= 3, 120, "training to start")
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 75, out
    stopped = logged_step(run_dir)
    assert stopped < STEPS
    assert (run_dir / "checkpoints" / f"step-{stopped:08d}" / "dcp").is_dir()
    r = kubetrain("run", fsdp_job, "--procs", "3", "--run-dir", run_dir, "--no-progress")
    assert r.returncode == 0, r.stderr
    assert f"at step {stopped}" in r.stderr
    _assert_continues(run_dir, reference, stopped)


@pytest.fixture(scope="module")
def one_process(work: Path, plain_job: Path, reference: Path) -> Path:
    """The sharded step-10 checkpoint, resumed by a single process without FSDP."""
    run_dir = work / "sharded-then-one"
    _resume_from(run_dir, reference, CKPT)
    r = kubetrain("run", plain_job, "--procs", "1", "--run-dir", run_dir, "--no-progress")
    assert r.returncode == 0, r.stderr
    return run_dir


def test_a_sharded_checkpoint_resumes_in_one_process(one_process: Path,
                                                     reference: Path) -> None:
    _assert_continues(one_process, reference, CKPT)
    assert (one_process / "checkpoints" / f"step-{2 * CKPT:08d}" / "model.pt").is_file()


def test_a_one_process_checkpoint_resumes_sharded(work: Path, fsdp_job: Path, one_process: Path,
                                                  reference: Path) -> None:
    run_dir = work / "one-then-sharded"
    _resume_from(run_dir, one_process, 2 * CKPT)
    r = kubetrain("run", fsdp_job, "--run-dir", run_dir, "--no-progress")
    assert r.returncode == 0, r.stderr
    _assert_continues(run_dir, reference, 2 * CKPT)
    assert (run_dir / "checkpoints" / f"step-{STEPS:08d}" / "dcp").is_dir()
