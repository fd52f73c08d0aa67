"""Fault injection: kill -9 a run at points drawn from a seeded RNG, resume each time, and
require that nothing is lost: the same losses and weights as an uninterrupted run, every step
logged once in metrics.jsonl, no traceback.

The kill points are file-system operations of the run (see tests/support/killpoint): any
operation, one on the checkpoints (mid-write: between parts, before the manifest, before the
rename, while pruning old ones, while verifying at resume), the write after a log record
(between logging and checkpointing), and the final model's files. What is on disk changes only
at such operations, so these reach every state a kill at another moment leaves behind.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

from trainer_cli import final_params, kubetrain, losses, metrics, val_losses, write_job
from trainer_jobs import job_dict

HOOK = Path(__file__).resolve().parents[1] / "support" / "killpoint"
SEED = int(os.environ.get("KUBETRAIN_KILL_SEED", "14"))
STEPS, CKPT, EVAL = 60, 10, 20
# Where the kills go: paths containing the text (under the run directory).
CLASSES = {"any": "", "checkpoint": "/checkpoints", "after a log record": "/.progress.json",
           "final model": "/.model.tmp"}
# Kills in one chain: these in a seeded random order, then the final model's.
CHAIN = ["any", "checkpoint", "checkpoint", "after a log record"]


def _job(tmp: Path) -> Path:
    spec: dict[str, Any] = {
        "dataset": {"type": "synthetic",
                    "synthetic": {"task": "classification", "samples": 2048, "features": 16,
                                  "classes": 4, "noise": 0.5}},
        # Dropout: the saved RNG streams matter for the losses to match.
        "model": {"type": "mlp", "mlp": {"hidden": [32]}, "dropout": 0.1},
        "optimizer": {"type": "adamw", "lr": 0.003},
        "training": {"maxSteps": STEPS, "globalBatchSize": 32, "logging": {"everySteps": 1},
                     "eval": {"everySteps": EVAL}},
        "checkpoint": {"everySteps": CKPT, "keepLast": 2},
    }
    return write_job(tmp / "job.yaml", job_dict(spec, name="killed"))


def _run(job: Path, run_dir: Path, log: Path, match: str = "", at: int = 0) -> Any:
    return kubetrain("run", job, "--run-dir", run_dir, "--no-progress",
                     PYTHONPATH=str(HOOK), KUBETRAIN_KILLPOINT_DIR=str(run_dir),
                     KUBETRAIN_KILLPOINT_MATCH=match, KUBETRAIN_KILLPOINT_AT=str(at),
                     KUBETRAIN_KILLPOINT_LOG=str(log))


def _events(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def _newest_checkpoint(run_dir: Path) -> int:
    d = run_dir / "checkpoints"
    done = [int(p.name.split("-")[1]) for p in d.glob("step-*") if (p / "manifest.json").is_file()]
    return max(done, default=0)


def test_kill9_at_random_points_loses_nothing(tmp_path: Path) -> None:
    job = _job(tmp_path)
    ref_dir, ref_log = tmp_path / "reference", tmp_path / "reference.log"
    r = _run(job, ref_dir, ref_log)
    assert r.returncode == 0, r.stderr
    ref_paths = [line.split(" ", 2)[2] for line in _events(ref_log)]
    per_class = {c: sum(m in p for p in ref_paths) for c, m in CLASSES.items()}
    assert all(per_class.values()), per_class

    rng = random.Random(SEED)
    chain = [*rng.sample(CHAIN, len(CHAIN)), "final model"]
    run_dir = tmp_path / "run"
    landed: list[str] = []
    for i, cls in enumerate(chain):
        # Within the operations the rest of the run has (by the reference), with a margin, so
        # the kill lands before the run ends.
        resumed = _newest_checkpoint(run_dir)
        left = per_class[cls] if cls == "final model" else int(
            0.8 * per_class[cls] * (STEPS - resumed) / STEPS)
        if left < 1:
            break  # killed after the last checkpoint: nothing left to kill but the model write
        at = rng.randint(1, left)
        log = tmp_path / f"kill-{i}.log"
        r = _run(job, run_dir, log, CLASSES[cls], at)
        assert "Traceback" not in r.stderr, r.stderr
        assert r.returncode == -9, f"kill {i} ({cls}, operation {at}) did not land: {r.stderr}"
        killed = [line for line in _events(log) if line.startswith("KILL ")]
        assert len(killed) == 1, _events(log)
        landed.append(f"{cls}: {killed[0]}")

    r = _run(job, run_dir, tmp_path / "final.log")
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    report = "\n".join(landed)
    assert any("/checkpoints/.tmp-step-" in x for x in landed), report  # one mid-write at least

    # Nothing lost: the same run as the uninterrupted one, step for step.
    assert losses(run_dir) == losses(ref_dir), report
    assert val_losses(run_dir) == val_losses(ref_dir), report
    want, got = final_params(ref_dir), final_params(run_dir)
    assert want.keys() == got.keys() and all((want[k] == got[k]).all() for k in want), report
    # metrics.jsonl: whole lines, every step logged once, every evaluation once.
    text = (run_dir / "metrics.jsonl").read_text()
    assert text.endswith("\n")
    recs = metrics(run_dir)
    assert [x["step"] for x in recs if "loss" in x] == list(range(1, STEPS + 1)), report
    assert [x["step"] for x in recs if "valLoss" in x] == list(range(EVAL, STEPS + 1, EVAL))
