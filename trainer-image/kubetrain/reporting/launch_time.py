"""When a run was launched, so the end-of-run summary's wall time includes start-up."""

from __future__ import annotations

import os
import time
from pathlib import Path

STARTED_ENV = "KUBETRAIN_RUN_STARTED"
"""When `kubetrain run` started (seconds since the epoch), set by the launcher for its ranks, so
the summary's wall time includes start-up (interpreter, imports, torchrun, data, model)."""


def process_start_time(pid: int | str = "self") -> float:
    """When a process started (seconds since the epoch), from /proc; now if unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return time.time()


def run_started() -> float:
    """The launch time of this run: the launcher's start, else this process's start."""
    try:
        return float(os.environ[STARTED_ENV])
    except (KeyError, ValueError):
        return process_start_time()
