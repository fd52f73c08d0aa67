"""`kubetrain run` end to end on real data, plus plot/eval/sample on what it leaves behind."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from trainer_cli import ROOT, kubetrain, last_metric, val_losses, write_job
from trainer_jobs import SHAKESPEARE, job_dict

SHAKESPEARE_PATH = ROOT / SHAKESPEARE


@pytest.fixture(scope="module")
def example_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("example-data")
    import subprocess
    import sys

    subprocess.run([sys.executable, str(ROOT / "examples/data/make_examples.py"), str(out)],
                   check=True)
    return out


def test_char_gpt_on_tiny_shakespeare_learns(tmp_path: Path) -> None:
    if not SHAKESPEARE_PATH.is_file():
        pytest.skip(f"Tiny Shakespeare not found at {SHAKESPEARE_PATH} (../shared/data absent)")
    run_dir = tmp_path / "run"
    job = write_job(tmp_path / "gpt.yaml", job_dict({
        "dataset": {"type": "text", "text": {"path": str(SHAKESPEARE_PATH)},
                    "split": {"val": 0.1}},
        "model": {"type": "gpt", "gpt": {"layers": 2, "heads": 2, "width": 64, "context": 32}},
        "optimizer": {"lr": 0.003},
        "scheduler": {"type": "cosine", "warmupSteps": 20, "minLrRatio": 0.1},
        "training": {"maxSteps": 240, "globalBatchSize": 16, "gradClipNorm": 1.0,
                     "eval": {"everySteps": 40, "maxBatches": 20, "metrics": ["perplexity"]},
                     "logging": {"everySteps": 20}},
    }, name="gpt-short"))
    r = kubetrain("run", job, "--run-dir", run_dir)
    assert r.returncode == 0, r.stderr
    val = val_losses(run_dir)
    curve = [val[s] for s in sorted(val)]
    assert len(curve) == 6 and curve[0] < 3.3, val  # uniform guessing is ln 65 = 4.17
    assert all(b < a + 0.02 for a, b in itertools.pairwise(curve)), val
    assert curve[-1] < 2.6 and curve[-1] < curve[0] - 0.3, val
    assert "summary" in r.stdout and "tokens/s" in r.stdout
    progress = json.loads((run_dir / "progress.json").read_text())
    assert progress["step"] == 240 and progress["tokensPerSecond"] > 0
    assert progress["metrics"]["perplexity"] < 12
    sample = kubetrain("sample", run_dir, "--prompt", "ROMEO:", "--tokens", "40")
    assert sample.returncode == 0 and sample.stdout.startswith("ROMEO:")
    assert len(sample.stdout.strip()) >= 40
    png = kubetrain("plot", run_dir, "-o", tmp_path / "loss.png")
    assert png.returncode == 0 and (tmp_path / "loss.png").read_bytes()[:4] == b"\x89PNG"


def test_csv_regression_reaches_r2(tmp_path: Path, example_data: Path) -> None:
    run_dir = tmp_path / "run"
    r = kubetrain("run", "examples/tabular-regression.yaml", "--run-dir", run_dir,
                  "--set", f"spec.dataset.tabular.path={example_data / 'regression.csv'}",
                  "--set", "spec.training.epochs=60", "--no-progress")
    assert r.returncode == 0, r.stderr
    assert last_metric(run_dir, "r2") >= 0.95
    ev = kubetrain("eval", run_dir, "--json")
    assert ev.returncode == 0, ev.stderr
    result = json.loads(ev.stdout)
    assert result["split"] == "test" and result["r2"] >= 0.95 and result["rmse"] < 0.3


def test_csv_classification_reaches_its_accuracy(tmp_path: Path, example_data: Path) -> None:
    run_dir = tmp_path / "run"
    r = kubetrain("run", "examples/tabular-classification.yaml", "--run-dir", run_dir,
                  "--set", f"spec.dataset.tabular.path={example_data / 'classification.csv'}",
                  "--set", "spec.training.logging.tensorboard=true", "--no-progress")
    assert r.returncode == 0, r.stderr
    # Class centres 2-3 σ apart plus a 70%-informative colour: about 95% is reachable.
    assert last_metric(run_dir, "accuracy") >= 0.92
    ev = json.loads(kubetrain("eval", run_dir, "--json").stdout)
    assert ev["accuracy"] >= 0.9 and ev["samples"] > 250
    assert list((run_dir / "tb").glob("events.out.tfevents.*"))
    prep = json.loads((run_dir / "model" / "preprocessing.json").read_text())
    assert prep["features"]["categorical"]["color"] == ["blue", "green", "red"]


def test_run_dir_layout(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    job = write_job(tmp_path / "j.yaml", job_dict({"checkpoint": {"everySteps": 5}}))
    r = kubetrain("run", job, "--run-dir", run_dir)
    assert r.returncode == 0, r.stderr
    for name in ("job.yaml", "plan.json", "metrics.jsonl", "progress.json", "heartbeat.json",
                 "model/model.pt", "model/preprocessing.json", "model/job.yaml",
                 "checkpoints/step-00000005/manifest.json", "checkpoints/step-00000010"):
        assert (run_dir / name).exists(), name
    plan = json.loads((run_dir / "plan.json").read_text())
    assert plan["worldSize"] == 1 and plan["totalSteps"] == 10
    from kubetrain.trainer.run_dir import load_trained

    trained = load_trained(run_dir)
    assert trained.shapes.num_outputs == 3 and not trained.model.training


def test_early_stopping_and_save_best(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    job = write_job(tmp_path / "j.yaml", job_dict({
        "training": {"maxSteps": 200, "eval": {"everySteps": 2, "metrics": ["accuracy"]},
                     # An improvement must beat the best by 10 nats: the second eval cannot.
                     "earlyStopping": {"metric": "valLoss", "patience": 1, "minDelta": 10.0}},
        "checkpoint": {"saveBest": {"metric": "accuracy", "mode": "max"}},
    }))
    r = kubetrain("run", job, "--run-dir", run_dir, "--no-progress")
    assert r.returncode == 0, r.stderr
    meta = json.loads((run_dir / "model" / "meta.json").read_text())
    assert meta["reason"] == "early_stopped" and meta["steps"] == 4
    assert (run_dir / "checkpoints" / "best" / "manifest.json").is_file()
