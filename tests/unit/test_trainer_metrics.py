"""Metrics: evaluation sums, throughput, the reporter's Progress and history."""

from __future__ import annotations

import math

import pytest
import torch

from kubetrain.api.status import HISTORY_LIMIT, CheckpointRef, Progress
from kubetrain.metrics.evaluation import EvalSums
from kubetrain.metrics.losses import summed_loss
from kubetrain.metrics.throughput import Throughput
from kubetrain.reporting.reporter import Reporter


def test_classification_metrics() -> None:
    out = torch.tensor([[2.0, 0, 0], [0, 2.0, 0], [0, 2.0, 0], [0, 0, 2.0]])
    y = torch.tensor([0, 1, 0, 2])
    s = EvalSums("classification", 3)
    s.update(summed_loss("cross_entropy")(out, y), out, y)
    loss, m = s.compute(["accuracy", "f1"])
    assert m["accuracy"] == 0.75
    # class 0: tp1 fn1 → 2/3; class 1: tp1 fp1 → 2/3; class 2: 1
    assert m["f1"] == pytest.approx((2 / 3 + 2 / 3 + 1) / 3)
    assert loss == pytest.approx(float(torch.nn.functional.cross_entropy(out, y)))


def test_regression_metrics_in_label_units() -> None:
    y = torch.tensor([1.0, 2.0, 3.0, 4.0])
    pred = torch.tensor([1.5, 2.0, 2.5, 4.0])
    s = EvalSums("regression", 1, scale=2.0)
    s.update(summed_loss("mse")(pred[:, None], y), pred[:, None], y)
    _, m = s.compute(["r2", "mae", "rmse"])
    assert m["mae"] == pytest.approx(2 * 0.25)
    assert m["rmse"] == pytest.approx(2 * math.sqrt(0.125))
    assert m["r2"] == pytest.approx(1 - 0.5 / 5.0)


def test_lm_loss_is_per_token_and_ignores_padding() -> None:
    logits = torch.randn(2, 3, 5)
    y = torch.tensor([[1, 2, -100], [0, -100, -100]])
    s = EvalSums("lm", 5)
    s.update(summed_loss("cross_entropy")(logits, y), logits, y)
    loss, m = s.compute(["perplexity"])
    want = torch.nn.functional.cross_entropy(logits.reshape(-1, 5), y.reshape(-1))
    assert loss == pytest.approx(float(want), rel=1e-5)
    assert m["perplexity"] == pytest.approx(math.exp(loss))


def test_throughput_excludes_warmup() -> None:
    meter = Throughput(start_step=0, warmup_steps=2, global_batch=10, tokens_per_sample=4,
                       device=torch.device("cpu"))
    meter.step_done(1)
    assert meter.read(1)["samples_per_second"] is None  # still warming up
    meter.step_done(2)
    assert meter.warm_seconds is not None
    for s in range(3, 6):
        meter.step_done(s)
    r = meter.read(5)
    assert r["samples_per_second"] > 0 and r["tokens_per_second"] == r["samples_per_second"] * 4


class Recorder:
    def __init__(self) -> None:
        self.published: list[tuple[Progress, bool]] = []
        self.beats: list[Progress] = []

    def publish(self, progress: Progress, final: bool) -> None:
        self.published.append((progress.model_copy(deep=True), final))

    def beat(self, progress: Progress) -> None:
        self.beats.append(progress.model_copy(deep=True))

    def close(self) -> None:
        pass


def test_reporter_builds_progress_and_thins_history() -> None:
    sink = Recorder()
    r = Reporter([sink], total_steps=1000, global_batch=10, train_samples=100)
    for step in range(1, 301):
        r.log(step, 1.0 / step, {"lr": 0.1}, samples_per_second=100.0, tokens_per_second=None,
              step_time_ms=10.0, warmup_seconds=0.5)
    r.evaluated(300, 0.5, {"accuracy": 0.9})
    p = sink.published[-1][0]
    assert p.step == 300 and p.percent == 30.0 and p.epoch == 30.0
    assert p.eta_seconds == 7 and p.val_loss == 0.5 and p.metrics["accuracy"] == 0.9
    assert len(p.history) <= HISTORY_LIMIT and p.history[-1].step == 300
    assert p.history[-1].val_loss == 0.5 and p.history[0].step == 1
    r.beat(301, force=True)
    assert sink.beats[-1].step == 301 and sink.beats[-1].heartbeat_time
    r.finish(301)
    assert sink.published[-1][1] is True


def recorder_factory(run_dir: object, job: object) -> Recorder:
    return Recorder()


def test_run_dir_sink_writes_one_line_per_event(tmp_path: object) -> None:
    import json
    from pathlib import Path

    from kubetrain.reporting.files import RunDirSink

    run_dir = Path(str(tmp_path))
    r = Reporter([RunDirSink(run_dir)], total_steps=10, global_batch=4, train_samples=40)
    r.log(5, 0.5, {"lr": 0.1}, samples_per_second=1.0, tokens_per_second=None,
          step_time_ms=1.0, warmup_seconds=0.1)
    r.evaluated(5, 0.7, {"accuracy": 0.5})
    r.checkpointed(CheckpointRef(step=5, path="x"))  # no new loss: no new line
    r.finish(5)
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [(x["step"], x.get("loss"), x.get("valLoss")) for x in lines] == [
        (5, 0.5, None), (5, None, 0.7)]  # an eval record does not repeat the log's fields
    assert json.loads((run_dir / "heartbeat.json").read_text())["step"] == 5
    assert json.loads((run_dir / "progress.json").read_text())["lastCheckpoint"]["step"] == 5
