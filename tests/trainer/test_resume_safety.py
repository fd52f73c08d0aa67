"""What a resume refuses, through the real CLI: a checkpoint of another job (exit 2, one line
naming the change), a directory whose every checkpoint is damaged (exit 2, not a silent
restart from step 0), and weights that diverged (nothing saved, exit 3; a saner rerun resumes
from the last good checkpoint)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from trainer_cli import kubetrain, losses, write_job
from trainer_jobs import job_dict


def _job(tmp: Path, name: str, **spec: Any) -> Path:
    base = {"training": {"maxSteps": 10, "globalBatchSize": 16, "logging": {"everySteps": 5}},
            "checkpoint": {"everySteps": 5, "keepLast": 5}}
    for key, value in spec.items():
        base[key] = {**base.get(key, {}), **value}
    return write_job(tmp / f"{name}.yaml", job_dict(base, name=name))


def _run(job: Path, run_dir: Path) -> Any:
    return kubetrain("run", job, "--run-dir", run_dir, "--no-progress")


def _one_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("kubetrain run:")]
    assert len(lines) == 1, stderr
    return lines[0]


def test_a_changed_model_or_optimizer_is_named_not_a_traceback(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    assert _run(_job(tmp_path, "a"), run_dir).returncode == 0
    changed = _job(tmp_path, "a", model={"mlp": {"hidden": [32]}},
                   optimizer={"type": "sgd", "lr": 0.1}, training={"maxSteps": 20})
    r = _run(changed, run_dir)
    assert r.returncode == 2
    line = _one_line(r.stderr)
    assert "spec.model.mlp.hidden [16] → [32]" in line
    assert "spec.optimizer.type adamw → sgd" in line and "resume: never" in line
    # A longer run of the same job is no change: it resumes.
    r = _run(_job(tmp_path, "a", training={"maxSteps": 15}), run_dir)
    assert r.returncode == 0, r.stderr
    assert "resuming from" in r.stderr and max(losses(run_dir)) == 15


def test_every_checkpoint_damaged_stops_instead_of_starting_over(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    job = _job(tmp_path, "b")
    assert _run(job, run_dir).returncode == 0
    for ckpt in (run_dir / "checkpoints").glob("step-*"):
        with (ckpt / "loop.pt").open("r+b") as f:
            f.truncate(3)
    r = _run(_job(tmp_path, "b", training={"maxSteps": 20}), run_dir)
    assert r.returncode == 2
    assert "is unusable" in _one_line(r.stderr)


def test_diverged_weights_are_never_saved(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    regression = {"dataset": {"type": "synthetic", "synthetic": {"task": "regression"}}}
    sane = {"type": "sgd", "lr": 0.01, "momentum": 0.9}
    assert _run(_job(tmp_path, "c", **regression, optimizer=sane), run_dir).returncode == 0
    # lr 10 with momentum makes least squares blow up within a few steps. Logging only at
    # the end, so the loss check cannot see the divergence before a checkpoint does.
    wild = _job(tmp_path, "c", **regression, optimizer={**sane, "lr": 10.0},
                training={"maxSteps": 60, "logging": {"everySteps": 1000}})
    r = _run(wild, run_dir)
    assert r.returncode == 3, r.stderr
    line = _one_line(r.stderr)
    assert "NaN or infinite" in line and "were not saved" in line
    kept = sorted((run_dir / "checkpoints").glob("step-*"))
    assert kept and str(kept[-1]) in line
    for ckpt in kept:
        weights = torch.load(ckpt / "model.pt", weights_only=True)
        assert all(torch.isfinite(w).all() for w in weights.values()), ckpt
    # The advised fix works: a saner lr resumes from the last good checkpoint and finishes.
    r = _run(_job(tmp_path, "c", **regression, optimizer=sane,
                  training={"maxSteps": 60}), run_dir)
    assert r.returncode == 0, r.stderr
    assert f"resuming from {kept[-1]}" in r.stderr
