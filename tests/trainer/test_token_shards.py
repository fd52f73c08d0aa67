"""Token shards through the real CLI: one job file prepares (rank 0 of 2, prepare.onFirstUse)
and trains a BPE GPT on shards whose windows cross shard boundaries; kill -9 → resume gives the
identical losses; prefetch threads change nothing but the data wait, which they cut on a slow
source; `kubetrain prepare` and `sample` decode with the run's tokenizer."""

from __future__ import annotations

import contextlib
import io
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from trainer_cli import (
    final_params,
    kill_launcher,
    kubetrain,
    logged_step,
    losses,
    metrics,
    restored_signals,
    start,
    wait_for,
    write_job,
)
from trainer_jobs import job_dict

STEPS = 120
CKPT = 20
CORPUS = "".join(f"{w} the {v} and then {i % 97} more words said the {w}.\n"
                 for i, (w, v) in enumerate(zip(["king", "queen", "fool", "lord"] * 3000,
                                                ["sang", "wept", "ran", "slept", "spoke"] * 2400,
                                                strict=False)))


def _job(tmp: Path, name: str, workers: int = 2, steps: int = STEPS) -> Path:
    (tmp / "corpus.txt").write_text(CORPUS)
    spec = {
        "dataset": {"type": "tokens",
                    "tokens": {"path": "shards", "prepare": {
                        "path": "corpus.txt", "shardTokens": 4096, "onFirstUse": True}},
                    "split": {"val": 0.1}, "loader": {"numWorkers": workers}},
        "preprocessing": {"text": {"tokenizer": "bpe", "vocabSize": 300}},
        "model": {"type": "gpt", "gpt": {"layers": 1, "heads": 2, "width": 32, "context": 32},
                  "dropout": 0.1},
        "optimizer": {"type": "adamw", "lr": 0.003},
        "training": {"maxSteps": steps, "globalBatchSize": 8, "microBatchSize": 2,
                     "logging": {"everySteps": 1}},
        "checkpoint": {"everySteps": CKPT, "keepLast": 2},
    }
    return write_job(tmp / f"{name}.yaml", job_dict(spec, name=name))


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("shards")


@pytest.fixture(scope="module")
def reference(work: Path) -> Path:
    """Two processes; the first start prepares the shards (rank 0) while rank 1 waits."""
    run_dir = work / "ref"
    r = kubetrain("run", _job(work, "ref"), "--procs", "2", "--run-dir", run_dir,
                  "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "preparing token shards" in r.stderr
    return run_dir


def test_one_job_prepares_then_trains_across_shard_boundaries(work: Path,
                                                              reference: Path) -> None:
    index = json.loads((work / "shards" / "index.json").read_text())
    assert len(index["shards"]) >= 5 and index["vocabSize"] == 300
    assert not (work / "shards" / ".preparing").exists()
    tok = (work / "shards" / "tokenizer.json").read_text()
    assert (reference / "tokenizer.json").read_text() == tok
    assert (reference / "model" / "tokenizer.json").read_text() == tok
    steps = losses(reference)
    assert len(steps) == STEPS and steps[STEPS] < steps[1] - 1.0  # it learns


def test_kill9_then_resume_gives_identical_losses(work: Path, reference: Path) -> None:
    run_dir = work / "killed"
    job = _job(work, "ref")
    proc = start("run", job, "--procs", "2", "--run-dir", run_dir, "--no-progress")
    wait_for(lambda: logged_step(run_dir) >= 2 * CKPT + 3, 180, "steps after a checkpoint")
    kill_launcher(proc)
    assert logged_step(run_dir) < STEPS
    r = kubetrain("run", job, "--procs", "2", "--run-dir", run_dir, "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "resuming from" in r.stderr and "preparing" not in r.stderr
    a, b = losses(run_dir), losses(reference)
    assert set(a) == set(b)
    for s in b:
        assert a[s] == b[s], f"step {s}: {a[s]} != {b[s]}"
    pa, pb = final_params(run_dir), final_params(reference)
    assert all(torch.equal(pa[k], pb[k]) for k in pb)


def test_prefetch_changes_no_loss(work: Path, reference: Path) -> None:
    run_dir = work / "in-place"
    r = kubetrain("run", _job(work, "ref", workers=0), "--procs", "2", "--run-dir", run_dir,
                  "--no-progress")
    assert r.returncode == 0, r.stderr
    assert losses(run_dir) == losses(reference)


def test_sample_decodes_with_the_runs_tokenizer(reference: Path) -> None:
    r = kubetrain("sample", reference, "--prompt", "the king", "--tokens", "20")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("the king") and len(r.stdout) > len("the king") + 10
    r = kubetrain("sample", reference, "--tokens", "100001")
    assert r.returncode == 2 and "at most 100,000" in r.stderr


SLOW = 0.05
"""Seconds per gathered micro-batch of the slow source (a network volume, say)."""


def _data_wait_ms(tmp: Path, workers: int, monkeypatch: pytest.MonkeyPatch) -> float:
    """Mean milliseconds per step spent waiting for data (dataWaitFraction × step time)."""
    from kubetrain.cli.main import main
    from kubetrain.data.shards import ShardStream

    gather = ShardStream.__getitem__

    def slow(self: ShardStream, key: Any) -> Any:
        if not isinstance(key, slice):
            time.sleep(SLOW)
        return gather(self, key)

    monkeypatch.setattr(ShardStream, "__getitem__", slow)
    run_dir = tmp / f"wait-{workers}"
    job = _job(tmp, f"wait{workers}", workers=workers, steps=25)
    with restored_signals(), contextlib.redirect_stderr(io.StringIO()):
        assert main(["run", str(job), "--run-dir", str(run_dir), "--no-progress"]) == 0
    waits = [r["dataWaitFraction"] * r["stepTimeMs"] for r in metrics(run_dir)
             if "dataWaitFraction" in r and r["step"] > 5]
    return float(np.mean(waits))


def test_prefetch_cuts_the_data_wait_on_a_slow_source(
        work: Path, reference: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    for name in ("KUBETRAIN_RUN_DIR", "KUBETRAIN_RUN_STARTED", "KUBETRAIN_TERMINATION_LOG"):
        monkeypatch.delenv(name, raising=False)
    in_place = _data_wait_ms(work, 0, monkeypatch)
    ahead = _data_wait_ms(work, 8, monkeypatch)
    micro_batches = 4  # globalBatchSize 8 / microBatchSize 2, one process
    assert in_place >= 0.9 * micro_batches * SLOW * 1000, in_place  # every gather waited for
    assert ahead < in_place / 3, (ahead, in_place)  # gathered while the model computed


def test_prepare_cli_reports_its_throughput(work: Path, reference: Path) -> None:
    job = _job(work, "prep")
    r = kubetrain("prepare", job, "--set", "spec.dataset.tokens.path=shards-cli",
                  "--workers", "2", "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "MB/s with 2 worker(s)" in r.stdout and "tokens in" in r.stdout
    a = json.loads((work / "shards" / "index.json").read_text())
    b = json.loads((work / "shards-cli" / "index.json").read_text())
    assert a["shards"] == b["shards"]  # the same tokens, by the CLI or on first use
    r = kubetrain("prepare", job, "--workers", "0")
    assert r.returncode == 2 and "--workers 0" in r.stderr
