"""What a person sees: a live progress bar on a terminal (plain lines otherwise) and a summary."""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as Bar
from rich.table import Table

from kubetrain.api.status import Progress
from kubetrain.reporting.launch_time import run_started

PLAIN_SECONDS = 5.0
"""Plain-text progress lines (logs, pods) at most this often."""


def _fmt(v: float | None, spec: str = ".4f") -> str:
    return "-" if v is None else format(v, spec)


def _si(v: float) -> str:
    """1234567 → 1.2M: rates fit an 80-column progress line."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if v >= scale:
            return f"{v / scale:.1f}{unit}"
    return f"{v:.0f}"


class ConsoleSink:
    def __init__(self, title: str, total: int, stream: object = None):
        self.console = Console(file=stream or sys.stdout)  # type: ignore[arg-type]
        self.live = self.console.is_terminal
        self.title = title
        self.started = run_started()
        self.startup = time.time() - self.started  # launch → the training loop
        self._next_line = 0.0
        self._last_line = ""
        if self.live:
            # Fits 80 columns: name, bar, step/total, time left, loss and throughput.
            self.bar = Bar(TextColumn("[bold]{task.description}"), BarColumn(bar_width=10),
                           MofNCompleteColumn(), TimeRemainingColumn(),
                           TextColumn("{task.fields[info]}"),
                           console=self.console, refresh_per_second=4)
            self.task = self.bar.add_task(title, total=total, info="")
            self.bar.start()

    def _info(self, p: Progress) -> str:
        parts = [f"loss {_fmt(p.loss, '.3f')}"]
        if p.val_loss is not None:
            parts.append(f"val {_fmt(p.val_loss, '.3f')}")
        if p.tokens_per_second:
            parts.append(f"{_si(p.tokens_per_second)} tok/s")
        elif p.samples_per_second:
            parts.append(f"{_si(p.samples_per_second)} samples/s")
        return "  ".join(parts)

    def publish(self, progress: Progress, final: bool) -> None:
        if self.live:
            self.bar.update(self.task, completed=progress.step, info=self._info(progress))
        elif final or time.monotonic() >= self._next_line:
            self._next_line = time.monotonic() + PLAIN_SECONDS
            total = progress.total_steps or "?"
            line = f"step {progress.step}/{total} · {self._info(progress)}"
            if line != self._last_line:  # the end often repeats the last event's line
                self._last_line = line
                self.console.print(line, highlight=False)
        if final:
            self._summary(progress)

    def beat(self, progress: Progress) -> None:
        if self.live:
            self.bar.update(self.task, completed=progress.step)

    def _summary(self, p: Progress) -> None:
        if self.live:
            self.bar.stop()
            self.live = False
        table = Table(title=f"{self.title}: summary", show_header=False)
        rows = [("steps", f"{p.step}/{p.total_steps}"), ("epochs", _fmt(p.epoch, ".2f")),
                ("train loss", _fmt(p.loss)), ("val loss", _fmt(p.val_loss))]
        rows += [(k, _fmt(v)) for k, v in sorted(p.metrics.items())]
        # The final Progress holds the means over the steady state (Reporter.finish).
        rows += [("samples/s (steady mean)", _fmt(p.samples_per_second, ",.1f")),
                 ("tokens/s (steady mean)", _fmt(p.tokens_per_second, ",.0f")),
                 ("step time ms (steady mean)", _fmt(p.step_time_ms, ".2f")),
                 ("warm-up s (first steps)", _fmt(p.warmup_seconds, ".2f")),
                 ("start-up s (launch to loop)", f"{self.startup:.1f}"),
                 ("wall time s (from launch)", f"{time.time() - self.started:.1f}")]
        if p.last_checkpoint:
            rows.append(("last checkpoint", p.last_checkpoint.path))
        for k, v in rows:
            if v != "-":
                table.add_row(k, v)
        self.console.print(table)

    def close(self) -> None:
        if self.live:
            self.bar.stop()
