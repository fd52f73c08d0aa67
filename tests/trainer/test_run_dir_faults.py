"""The run directory under hostile conditions, through `kubetrain run` as users start it:
two runs at once, kill -9 between logging and checkpointing, a torn metrics line, a run directory
that is a file, read-only, full or deleted mid-run; and the honesty of the end-of-run summary."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mounts import fill, remount, tmpfs
from trainer_cli import (
    heartbeat_step,
    kill_launcher,
    kubetrain,
    metrics,
    start,
    wait_for,
    write_job,
)
from trainer_jobs import job_dict


def _job(tmp: Path, name: str, steps: int, ckpt: int, log: int = 5, **spec: Any) -> Path:
    base = {
        "dataset": {"type": "synthetic",
                    "synthetic": {"task": "classification", "samples": 4096, "features": 16,
                                  "classes": 4}},
        "model": {"type": "mlp", "mlp": {"hidden": [64, 64]}},
        "training": {"maxSteps": steps, "globalBatchSize": 32, "logging": {"everySteps": log},
                     "eval": {"everySteps": 50}},
        "checkpoint": {"everySteps": ckpt, "keepLast": 3},
        **spec,
    }
    return write_job(tmp / f"{name}.yaml", job_dict(base, name=name))


@contextlib.contextmanager
def _running(job: Path, run_dir: Path, *args: str) -> Iterator[subprocess.Popen[str]]:
    """`kubetrain run` in the background; killed with its process group if it still runs when
    the block ends (a failed assertion must not leave a run behind)."""
    proc = start("run", job, "--run-dir", run_dir, "--no-progress", *args)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)


def _checkpoint_steps(run_dir: Path) -> list[int]:
    d = run_dir / "checkpoints"
    if not d.is_dir():
        return []
    return sorted(int(p.name.split("-")[1]) for p in d.glob("step-*")
                  if (p / "manifest.json").is_file())


def _logged_steps(run_dir: Path) -> list[int]:
    return [r["step"] for r in metrics(run_dir) if "loss" in r]


def _one_line(stderr: str) -> str:
    """The error line; the start-up line with the parameter count is not part of the error."""
    lines = [x for x in stderr.splitlines()
             if x.strip() and not x.startswith("kubetrain: model has ")]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr and "sink failed" not in stderr, stderr
    return lines[0]


def _logged_past_checkpoint(run_dir: Path) -> bool:
    ckpts = _checkpoint_steps(run_dir)
    return bool(ckpts) and max(_logged_steps(run_dir), default=0) > ckpts[-1]


def _assert_no_step_twice(run_dir: Path, steps: int, log: int) -> None:
    text = (run_dir / "metrics.jsonl").read_text()
    assert text.endswith("\n")
    recs = [json.loads(x) for x in text.splitlines()]  # every line is whole JSON
    kinds = Counter((r["step"], "loss" in r) for r in recs)
    assert max(kinds.values()) == 1, [k for k, n in kinds.items() if n > 1]
    assert _logged_steps(run_dir) == list(range(log, steps + 1, log))


def test_second_run_on_a_run_dir_exits_2_naming_the_holder(tmp_path: Path) -> None:
    """All ranks of a 2-process run are one holder; a kill -9'd holder's lock is taken over."""
    run_dir = tmp_path / "run"
    job = _job(tmp_path, "locked", steps=1_000_000, ckpt=100_000, log=50)
    with _running(job, run_dir, "--procs", "2") as first:
        wait_for(lambda: heartbeat_step(run_dir) > 0, 240, "the 2-process run to train")
        second = kubetrain("run", job, "--run-dir", run_dir, "--no-progress")
        assert second.returncode == 2, second.stderr
        line = _one_line(second.stderr)
        assert f"run directory {run_dir} is in use" in line, line
        assert f"pid {first.pid} on host {socket.gethostname()}, started 20" in line, line
        assert first.poll() is None  # the refused run did not disturb the holder
        kill_launcher(first)
    step_at_kill = heartbeat_step(run_dir)
    with _running(job, run_dir) as third:
        wait_for(lambda: heartbeat_step(run_dir) > step_at_kill, 240, "the third run to train")
        holder = json.loads((run_dir / ".lock" / "node-0").read_text())
        assert holder["pid"] == third.pid
        os.kill(third.pid, signal.SIGTERM)
        assert third.wait(120) == 75


def test_kill_between_logging_and_checkpointing_never_logs_a_step_twice(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    steps, log = 600, 5
    job = _job(tmp_path, "dup", steps=steps, ckpt=100, log=log,
               model={"type": "mlp", "mlp": {"hidden": [256, 256]}})
    for _attempt in range(3):  # until a kill lands with steps logged past the newest checkpoint
        with _running(job, run_dir) as proc:
            wait_for(lambda p=proc: _logged_past_checkpoint(run_dir) or p.poll() is not None,
                     240, "steps logged after a checkpoint")
            assert proc.poll() is None, "the run ended before it could be killed"
            kill_launcher(proc)
        if max(_logged_steps(run_dir)) > _checkpoint_steps(run_dir)[-1]:
            break
    newest = _checkpoint_steps(run_dir)[-1]
    assert max(_logged_steps(run_dir)) > newest
    with (run_dir / "metrics.jsonl").open("a") as f:
        f.write('{"step": 99999, "loss": 0.1, "lr"')  # as a kill in the middle of a write
    r = kubetrain("run", job, "--run-dir", run_dir, "--no-progress")
    assert r.returncode == 0, r.stderr
    assert f"resuming from {run_dir / 'checkpoints'}" in r.stderr
    assert "dropped 1 torn or unreadable line" in r.stderr
    _assert_no_step_twice(run_dir, steps, log)
    png = kubetrain("plot", run_dir, "-o", tmp_path / "loss.png")
    assert png.returncode == 0, png.stderr
    assert (tmp_path / "loss.png").read_bytes()[:4] == b"\x89PNG"


def test_run_dir_that_is_a_file_or_read_only_is_one_line_exit_2(tmp_path: Path) -> None:
    job = _job(tmp_path, "bad-dir", steps=20, ckpt=10)
    f = tmp_path / "a-file"
    f.write_text("not a directory")
    log = tmp_path / "termination-log"
    r = kubetrain("run", job, "--run-dir", f, KUBETRAIN_TERMINATION_LOG=str(log))
    assert r.returncode == 2
    assert f"run directory {f} is a file, not a directory" in _one_line(r.stderr)
    assert "is a file" in log.read_text()
    with tmpfs(tmp_path / "mnt", "1m") as mnt:
        remount(mnt, "ro")
        r = kubetrain("run", job, "--run-dir", mnt / "run")
        assert r.returncode == 2
        line = _one_line(r.stderr)
        assert f"run directory {mnt / 'run'} is not writable (Read-only file system)" in line


@pytest.mark.parametrize("leave", [0, 300_000], ids=["any-write-fails", "checkpoint-fails"])
def test_disk_full_mid_run_is_one_line_exit_1_and_keeps_the_checkpoints(
        tmp_path: Path, leave: int) -> None:
    """Left room: none (the next heartbeat, metrics or checkpoint write fails), or enough for
    small writes but not for a checkpoint (3.3 MB here), so torch.save is what fails."""
    steps, log = 600, 10
    job = _job(tmp_path, "full", steps=steps, ckpt=50, log=log,
               model={"type": "mlp", "mlp": {"hidden": [512, 512]}})
    with tmpfs(tmp_path / "mnt", "16m") as mnt:
        run_dir = mnt / "run"
        with _running(job, run_dir) as proc:
            wait_for(lambda: bool(_checkpoint_steps(run_dir)) or proc.poll() is not None, 240,
                     "a first checkpoint")
            filler = fill(mnt, leave=leave)
            kept = _checkpoint_steps(run_dir)
            out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 1, out
        line = _one_line(out)
        full = rf"no space left on device writing {mnt}/\S+ \(0\.\d MiB free\)"
        assert re.search(full, line), line
        newest = run_dir / "checkpoints" / f"step-{kept[-1]:08d}"
        assert line.endswith(f"newest complete checkpoint: {newest} (the next start resumes"
                             " from it)"), line
        assert set(kept) <= set(_checkpoint_steps(run_dir))  # earlier checkpoints untouched
        assert _logged_steps(run_dir)  # what was logged before the disk filled is there
        filler.unlink()
        r = kubetrain("run", job, "--run-dir", run_dir, "--no-progress")
        assert r.returncode == 0, r.stderr
        assert f"resuming from {newest}" in r.stderr
        _assert_no_step_twice(run_dir, steps, log)


def test_run_dir_deleted_mid_run_is_one_line_exit_1(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    job = _job(tmp_path, "gone", steps=1_000_000, ckpt=100_000, log=20)
    with _running(job, run_dir) as proc:
        wait_for(lambda: heartbeat_step(run_dir) > 0 or proc.poll() is not None, 240,
                 "training to start")
        shutil.rmtree(run_dir)
        out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1, out
    line = _one_line(out)
    assert str(run_dir) in line and ("vanished" in line or "deleted" in line), line


def test_summary_is_the_steady_mean_over_the_run_and_counts_start_up(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    steps, log, batch = 300, 20, 32
    job = _job(tmp_path, "summary", steps=steps, ckpt=100, log=log)
    t0 = time.time()
    r = kubetrain("run", job, "--run-dir", run_dir)  # stdout is a pipe: plain progress lines
    elapsed = time.time() - t0
    assert r.returncode == 0, r.stderr
    final = [x for x in r.stdout.splitlines() if x.startswith(f"step {steps}/{steps}")]
    assert len(final) == 1, r.stdout

    def row(label: str) -> float:
        m = re.search(rf"{re.escape(label)}\s*│\s*([\d,.]+)", r.stdout)
        assert m, r.stdout
        return float(m.group(1).replace(",", ""))

    # The same window from the records: every logging interval after the first one.
    logs = [x for x in metrics(run_dir) if "loss" in x and "samplesPerSecond" in x]
    seconds = sum(log * x["stepTimeMs"] / 1000 for x in logs[1:])
    want = (logs[-1]["step"] - logs[0]["step"]) * batch / seconds
    assert row("samples/s (steady mean)") == pytest.approx(want, rel=0.01)
    wall, startup = row("wall time s (from launch)"), row("start-up s (launch to loop)")
    assert 0 < startup < wall <= elapsed + 0.5 and wall > 0.5 * elapsed
    ev = [x for x in metrics(run_dir) if "valLoss" in x]
    assert ev and not any("samplesPerSecond" in x or "loss" in x for x in ev)
