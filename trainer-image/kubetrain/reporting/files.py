"""Run-directory sink: metrics.jsonl (a line per log/eval event), progress.json, heartbeat.json."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from kubetrain.api.status import Progress

HEARTBEAT_SECONDS = 2.0


def write_json_atomic(path: Path, obj: Any) -> None:
    """Readers (the operator, `kubetrain plot`) never see a half-written file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, separators=(",", ":")))
    os.replace(tmp, path)


class RunDirSink:
    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.metrics = (run_dir / "metrics.jsonl").open("a", buffering=1)
        self._last: tuple[Any, ...] | None = None
        self._next_heartbeat = 0.0

    def publish(self, progress: Progress, final: bool) -> None:
        if progress.history:
            point = progress.history[-1]
            key = (point.step, point.loss, point.val_loss)
            if key != self._last:  # a new loss or val loss: one line per event
                self._last = key
                record: dict[str, Any] = {"step": point.step, "time": progress.heartbeat_time,
                                          "epoch": progress.epoch}
                if point.loss is not None:
                    record["loss"] = point.loss
                if point.val_loss is not None:
                    record["valLoss"] = point.val_loss
                record.update(progress.metrics)
                for key_, value in (("samplesPerSecond", progress.samples_per_second),
                                    ("tokensPerSecond", progress.tokens_per_second),
                                    ("stepTimeMs", progress.step_time_ms)):
                    if value is not None:
                        record[key_] = value
                self.metrics.write(json.dumps(record) + "\n")
        write_json_atomic(self.run_dir / "progress.json", progress.to_yaml_dict())
        self._heartbeat(progress)

    def beat(self, progress: Progress) -> None:
        if time.monotonic() >= self._next_heartbeat:
            self._heartbeat(progress)

    def _heartbeat(self, progress: Progress) -> None:
        self._next_heartbeat = time.monotonic() + HEARTBEAT_SECONDS
        write_json_atomic(self.run_dir / "heartbeat.json",
                          {"time": progress.heartbeat_time, "step": progress.step})

    def close(self) -> None:
        self.metrics.close()


class TensorBoardSink:
    """Scalars of each log/eval event under <run dir>/tb."""

    def __init__(self, run_dir: Path):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(run_dir / "tb"))
        self._last: tuple[Any, ...] | None = None

    def publish(self, progress: Progress, final: bool) -> None:
        if not progress.history:
            return
        point = progress.history[-1]
        key = (point.step, point.loss, point.val_loss)
        if key == self._last:
            return
        self._last = key
        if point.loss is not None:
            self.writer.add_scalar("train/loss", point.loss, point.step)
        if point.val_loss is not None:
            self.writer.add_scalar("val/loss", point.val_loss, point.step)
        for name, value in progress.metrics.items():
            self.writer.add_scalar(f"metrics/{name}", value, point.step)
        if progress.samples_per_second:
            self.writer.add_scalar("perf/samples_per_second", progress.samples_per_second,
                                   point.step)

    def beat(self, progress: Progress) -> None:
        pass

    def close(self) -> None:
        self.writer.close()
