"""One container: its process, restarts and status (the kubelet's per-container loop)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import pod_status
from .cgroups import Cgroup
from .pod_volumes import Mount

LAUNCHER = Path(__file__).with_name("launch.py")
# FallbackToLogsOnError uses at most this much of the log's end (the kubelet: 80 lines / 2 KiB).
FALLBACK_BYTES = 2048


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Launch:
    """Everything needed to start the container's process."""

    argv: list[str]
    env: dict[str, str]
    cwd: str
    hostname: str
    mounts: list[Mount]
    log: Path
    termination_log: Path
    spec_file: Path
    cgroup: Cgroup | None = None


class Container:
    """Runs one container's process, restarting it per `should_restart`.

    Status changes are reported through `publish(status_dict)`; `terminate()`
    signals the process group and stops further restarts.
    """

    def __init__(
        self,
        spec: Mapping[str, Any],
        launch: Launch,
        should_restart: Callable[[int], bool],
        publish: Callable[[dict[str, Any]], None],
        backoff: tuple[float, float],
    ) -> None:
        self.spec = spec
        self.launch = launch
        self.should_restart = should_restart
        self.publish = publish
        self.backoff = backoff
        self.stopping = threading.Event()
        self.proc: subprocess.Popen[bytes] | None = None
        self._proc_lock = threading.Lock()
        self.exit_code: int | None = None  # of the last run, once it ended for good
        self._restarts = 0
        self._last: dict[str, Any] | None = None  # the previous run's terminated state

    def run(self) -> int:
        """Run until the process ends for good (or `terminate()`); return its last exit code."""
        try:
            return self._run()
        finally:
            if self.launch.cgroup is not None:
                self.launch.cgroup.remove()

    def _run(self) -> int:
        delay = self.backoff[0]
        while True:
            started, code = now(), self._run_once()
            state = pod_status.terminated_state(
                code, started, now(), self._container_id(), self._message(code)
            )
            if self.stopping.is_set() or not self.should_restart(code):
                self.publish(pod_status.terminated(self.spec, state, self._restarts, self._last))
                self.exit_code = int(state["exitCode"])
                return self.exit_code
            self._last = state
            message = f"back-off {delay:g}s restarting failed container"
            self.publish(
                pod_status.waiting(
                    self.spec, "CrashLoopBackOff", message, self._restarts, self._last
                )
            )
            if self.stopping.wait(delay):  # the restart back-off, cut short by a deletion
                self.exit_code = int(state["exitCode"])
                return self.exit_code
            delay = min(delay * 2, self.backoff[1])
            self._restarts += 1

    def _container_id(self) -> str:
        return f"testenv://{self.proc.pid if self.proc else 0}"

    def _run_once(self) -> int:
        launch = self.launch
        launch.termination_log.write_text("")
        spec = {
            "argv": launch.argv,
            "env": launch.env,
            "cwd": launch.cwd,
            "hostname": launch.hostname,
            "mounts": [[m.source, m.target, m.read_only] for m in launch.mounts],
            "termination_log": str(launch.termination_log),
            "agent_pid": os.getpid(),
            "cgroup_procs": launch.cgroup.procs_file if launch.cgroup else None,
        }
        launch.spec_file.write_text(json.dumps(spec))
        with self._proc_lock:
            if self.stopping.is_set():
                return 128 + signal.SIGKILL
            with open(launch.log, "ab") as log:
                self.proc = subprocess.Popen(
                    [sys.executable, "-I", "-S", str(LAUNCHER), str(launch.spec_file)],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=launch.env,
                    start_new_session=True,
                )
        self.publish(
            pod_status.running(self.spec, now(), self._container_id(), self._restarts, self._last)
        )
        code = self.proc.wait()
        self._kill_strays()  # like a runtime: the container ends with its main process
        return code

    def _message(self, code: int) -> str:
        message = self.launch.termination_log.read_text(errors="replace")
        if message or code == 0:
            return message
        if self.spec.get("terminationMessagePolicy") == "FallbackToLogsOnError":
            with open(self.launch.log, "rb") as f:
                f.seek(max(0, f.seek(0, os.SEEK_END) - FALLBACK_BYTES))
                return f.read().decode(errors="replace")
        return ""

    def signal(self, sig: int) -> None:
        """Send `sig` to the process group (no-op once it is gone)."""
        with self._proc_lock:
            if self.proc is not None and self.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, sig)

    def terminate(self) -> None:
        """Stop restarting and SIGTERM the process group."""
        with self._proc_lock:
            self.stopping.set()
        self.signal(signal.SIGTERM)

    def alive(self) -> bool:
        proc = self.proc
        return proc is not None and proc.poll() is None

    def kill_group(self) -> None:
        """SIGKILL the process group even after its leader exited (stray children)."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self._kill_strays()

    def _kill_strays(self) -> None:
        """Kill what is left in the container's cgroup (workers in their own sessions)."""
        if self.launch.cgroup is not None:
            try:
                self.launch.cgroup.kill_all()
            except TimeoutError as exc:
                print(f"node agent: {exc}", file=sys.stderr)


def wait_all_dead(containers: list[Container], timeout: float) -> bool:
    """Wait up to `timeout` for every container process to exit; True if they did."""
    deadline = time.monotonic() + timeout
    for c in containers:
        proc = c.proc
        if proc is None:
            continue
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            return False
    return True
