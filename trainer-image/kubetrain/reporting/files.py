"""Run-directory sink: metrics.jsonl (a line per log/eval event), progress.json, heartbeat.json.

A failed write here (disk full, the directory deleted or turned read-only) stops the run with one
line naming the path (`RunDirFault`, exit 1) instead of training on without records.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

from kubetrain.api.status import Progress
from kubetrain.reporting.metrics_log import MetricsLog
from kubetrain.trainer.run_dir_faults import RunDirFault, describe_os_error

HEARTBEAT_SECONDS = 2.0


def write_json_atomic(path: Path, obj: Any) -> None:
    """Readers (the operator, `kubetrain plot`) never see a half-written file."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(json.dumps(obj, separators=(",", ":")))
        os.replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)  # a partial temp file must not hold on to a full disk
        raise OSError(e.errno, e.strerror, str(path)) from e  # name the file, not its temp


class RunDirSink:
    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.metrics = MetricsLog(run_dir / "metrics.jsonl")
        self._next_heartbeat = 0.0

    def start(self, step: int) -> None:
        """The run continues from `step` (0: a fresh start); see MetricsLog.start."""
        self.metrics.start(step)

    def record(self, record: dict[str, Any]) -> None:
        """One log or eval event: a line of metrics.jsonl."""
        self._guard(self.metrics.append, record)

    def publish(self, progress: Progress, final: bool) -> None:
        self._guard(write_json_atomic, self.run_dir / "progress.json", progress.to_yaml_dict())
        self._heartbeat(progress)

    def beat(self, progress: Progress) -> None:
        if time.monotonic() >= self._next_heartbeat:
            self._heartbeat(progress)

    def _heartbeat(self, progress: Progress) -> None:
        self._next_heartbeat = time.monotonic() + HEARTBEAT_SECONDS
        self._guard(write_json_atomic, self.run_dir / "heartbeat.json",
                    {"time": progress.heartbeat_time, "step": progress.step})

    def _guard(self, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except OSError as e:
            raise RunDirFault(describe_os_error(e, self.run_dir)) from e

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
