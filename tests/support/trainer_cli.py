"""Run `kubetrain` as users do, in a subprocess, and read what it leaves behind."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]  # tests/support → the repository


def env(**extra: str) -> dict[str, str]:
    # One thread per process: CI machines are small and shared; oversubscription is slower.
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", **extra}


class _KubeDumper(yaml.SafeDumper):
    """Quotes y/n too: PyYAML writes them bare, but kubectl (YAML 1.1) and `kubetrain` read
    them as booleans."""


_KubeDumper.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:y|Y|n|N)$"),
                                  list("yYnN"))


def write_job(path: Path, job: dict[str, Any]) -> Path:
    path.write_text(yaml.dump(job, Dumper=_KubeDumper))
    return path


def kubetrain(*args: str, timeout: float = 300, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kubetrain", *map(str, args)],
        cwd=ROOT,
        env=env(**extra),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start(*args: str, **extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "kubetrain", *map(str, args)],
        cwd=ROOT,
        env=env(**extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll with a deadline (never a fixed sleep as synchronisation)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def heartbeat_step(run_dir: Path) -> int:
    try:
        return int(json.loads((run_dir / "heartbeat.json").read_text())["step"])
    except (OSError, ValueError, KeyError):
        return -1


def descendants(pid: int) -> list[int]:
    """Every process below pid (Linux /proc)."""
    try:
        kids = [int(k) for k in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
    return kids + [d for k in kids for d in descendants(k)]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def kill_launcher(proc: subprocess.Popen[str], sig: int = signal.SIGKILL) -> None:
    """kill -9 the `kubetrain run` process alone: torchrun and every rank must die with it."""
    below = descendants(proc.pid)
    os.kill(proc.pid, sig)
    proc.wait(30)
    wait_for(lambda: not any(alive(p) for p in below), 30, "every rank to be gone")



@contextlib.contextmanager
def restored_signals() -> Iterator[None]:
    """Run the CLI in this process and get pytest's SIGTERM/SIGINT handlers back afterwards
    (`kubetrain run` installs its own)."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, h in saved.items():
            signal.signal(s, h)


def metrics(run_dir: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line)
        for line in (run_dir / "metrics.jsonl").read_text().splitlines()
        if line.strip()
    ]


def logged_step(run_dir: Path) -> int:
    """The newest step a running job has logged, -1 before the first (or while the file is
    missing or its last line is half written)."""
    try:
        return max((r["step"] for r in metrics(run_dir)), default=-1)
    except (OSError, ValueError):
        return -1


def losses(run_dir: Path) -> dict[int, float]:
    """Train loss by step; for steps logged twice (a resumed run) the later line wins."""
    return {r["step"]: r["loss"] for r in metrics(run_dir) if "loss" in r}


def val_losses(run_dir: Path) -> dict[int, float]:
    return {r["step"]: r["valLoss"] for r in metrics(run_dir) if "valLoss" in r}


def last_metric(run_dir: Path, name: str) -> float:
    return [r[name] for r in metrics(run_dir) if name in r][-1]


def final_params(run_dir: Path) -> dict[str, Any]:
    import torch

    return torch.load(run_dir / "model" / "model.pt", weights_only=True)
