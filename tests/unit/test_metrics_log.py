"""metrics.jsonl: torn lines, resumes without duplicate steps, disk full, record contents."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from mounts import fill, tmpfs

from kubetrain.api.status import CheckpointRef
from kubetrain.reporting.files import RunDirSink
from kubetrain.reporting.metrics_log import MetricsLog, read_records
from kubetrain.reporting.reporter import Reporter
from kubetrain.trainer.run_dir_faults import RunDirFault


def lines(path: Path) -> list[dict[str, object]]:
    text = path.read_text()
    assert text == "" or text.endswith("\n")
    return [json.loads(x) for x in text.splitlines()]


def test_torn_last_line_is_dropped_and_never_swallows_the_next(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 5, "loss": 1.0}\n{"step": 10, "lo')  # kill mid-write
    log = MetricsLog(path)
    log.start(10)
    log.append({"step": 15, "loss": 0.5})
    log.close()
    assert lines(path) == [{"step": 5, "loss": 1.0}, {"step": 15, "loss": 0.5}]


def test_unreadable_lines_in_the_middle_are_dropped(tmp_path: Path) -> None:
    data = b'{"step": 1}\ngarbage\n[1, 2]\n{"step": "x"}\n\n{"step": 2}\n'
    records, dropped = read_records(data)
    assert records == [{"step": 1}, {"step": 2}] and dropped == 3


def test_resume_drops_records_after_the_resume_step(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps({"step": s, "loss": s}) + "\n" for s in range(5, 50, 5)))
    log = MetricsLog(path)
    log.start(20)  # the checkpoint it resumed from
    log.append({"step": 25, "loss": -1})
    log.close()
    assert [(r["step"], r["loss"]) for r in lines(path)] == [
        (5, 5), (10, 10), (15, 15), (20, 20), (25, -1)]


def test_without_a_start_step_the_first_record_supersedes_later_ones(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps({"step": s}) + "\n" for s in (5, 10, 10, 15)))
    log = MetricsLog(path)
    log.append({"step": 10, "new": True})
    log.append({"step": 15, "new": True})
    log.close()
    assert lines(path) == [{"step": 5}, {"step": 10, "new": True}, {"step": 15, "new": True}]


def test_fresh_start_replaces_an_old_runs_records(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 5}\n{"step": 10}\n')
    log = MetricsLog(path)
    log.start(0)
    log.append({"step": 10, "new": True})
    log.close()
    assert lines(path) == [{"step": 10, "new": True}]


def test_disk_full_leaves_no_half_line(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "mnt", "64k") as mnt:
        path = mnt / "metrics.jsonl"
        log = MetricsLog(path)
        log.append({"step": 1})
        fill(mnt, leave=100)  # room for part of the next record only
        with pytest.raises(OSError, match="No space left"):
            log.append({"step": 2, "padding": "x" * 8000})
        log.close()
        assert lines(path) == [{"step": 1}]


def test_reporter_writes_a_log_and_an_eval_record_without_repeating_fields(
        tmp_path: Path) -> None:
    r = Reporter([RunDirSink(tmp_path)], total_steps=10, global_batch=4, train_samples=40)
    r.log(5, 0.5, {"lr": 0.1}, samples_per_second=100.0, tokens_per_second=None,
          step_time_ms=40.0, warmup_seconds=0.1)
    r.evaluated(5, 0.7, {"accuracy": 0.5})
    r.checkpointed(CheckpointRef(step=5, path="x"))  # no new event: no new line
    r.finish(5)
    log, ev = lines(tmp_path / "metrics.jsonl")
    assert log["step"] == 5 and log["loss"] == 0.5 and log["lr"] == 0.1
    assert log["samplesPerSecond"] == 100.0 and log["stepTimeMs"] == 40.0
    assert "valLoss" not in log and "accuracy" not in log
    assert ev["step"] == 5 and ev["valLoss"] == 0.7 and ev["accuracy"] == 0.5
    assert not {"loss", "lr", "samplesPerSecond", "stepTimeMs", "tokensPerSecond"} & set(ev)
    assert json.loads((tmp_path / "heartbeat.json").read_text())["step"] == 5
    assert json.loads((tmp_path / "progress.json").read_text())["lastCheckpoint"]["step"] == 5


def test_reporter_start_reaches_the_run_dir_sink(tmp_path: Path) -> None:
    (tmp_path / "metrics.jsonl").write_text('{"step": 5}\n{"step": 10}\n{"step": 15}\n')
    r = Reporter([RunDirSink(tmp_path)], total_steps=20, global_batch=4, train_samples=40)
    r.start(10)
    r.log(20, 0.5, {}, samples_per_second=None, tokens_per_second=None, step_time_ms=None,
          warmup_seconds=None)
    r.finish(20)
    assert [x["step"] for x in lines(tmp_path / "metrics.jsonl")] == [5, 10, 20]


def test_summary_rates_are_the_steady_mean_not_the_last_interval() -> None:
    r = Reporter([], total_steps=60, global_batch=10, train_samples=1000)

    def log(step: int, sps: float) -> None:
        r.log(step, 1.0, {}, samples_per_second=sps, tokens_per_second=sps * 8,
              step_time_ms=1000 * 10 / sps, warmup_seconds=1.0)

    log(20, 50.0)   # first interval after warm-up: it starts at a step the reporter is not told
    log(40, 100.0)  # 200 samples in 2 s
    log(60, 80.0)   # 200 samples in 2.5 s; the last interval alone would say 80
    r.finish(60)
    p = r.progress
    assert p.samples_per_second == pytest.approx(400 / 4.5)
    assert p.tokens_per_second == pytest.approx(8 * 400 / 4.5)
    assert p.step_time_ms == pytest.approx(1000 * 4.5 / 40)
    assert r.steady.window == (20, 60)


def test_summary_with_a_single_log_is_that_interval() -> None:
    r = Reporter([], total_steps=20, global_batch=10, train_samples=1000)
    r.log(20, 1.0, {}, samples_per_second=50.0, tokens_per_second=None, step_time_ms=200.0,
          warmup_seconds=1.0)
    r.finish(20)
    assert (r.progress.samples_per_second, r.progress.step_time_ms) == (50.0, 200.0)


def test_vanished_run_dir_stops_the_run_instead_of_warning(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    r = Reporter([RunDirSink(run_dir)], total_steps=10, global_batch=4, train_samples=40)
    r.log(1, 0.5, {}, samples_per_second=None, tokens_per_second=None, step_time_ms=None,
          warmup_seconds=None)
    shutil.rmtree(run_dir)
    with pytest.raises(RunDirFault, match=f"the run directory {run_dir} vanished"):
        r.log(2, 0.5, {}, samples_per_second=None, tokens_per_second=None, step_time_ms=None,
              warmup_seconds=None)
