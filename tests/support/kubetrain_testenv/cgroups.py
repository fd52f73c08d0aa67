"""A cgroup per container, so stopping a container stops every process it started.

Process groups are not enough: torchrun starts its workers in new sessions, and
a container runtime kills those too when the container ends. Uses cgroup v2
(`cgroup.kill`) or the v1 `pids` hierarchy, whichever is writable; without
either, containers fall back to process groups only.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

from .procs import owner_alive, owner_tag, wait_for

_V2 = Path("/sys/fs/cgroup")
_V1_PIDS = Path("/sys/fs/cgroup/pids")
PARENT = "kubetrain-testenv"


def _root() -> Path | None:
    """The writable hierarchy our cgroups go under, or None."""
    for base in (_V2, _V1_PIDS):
        is_v2 = base == _V2 and (base / "cgroup.controllers").exists()
        is_v1 = base == _V1_PIDS and (base / "cgroup.procs").exists()
        if (is_v2 or is_v1) and os.access(base, os.W_OK):
            return base / PARENT
    return None


class Cgroup:
    """One container's cgroup: its processes join it at launch (see launch.py)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def create(cls, name: str) -> Cgroup | None:
        """Make the cgroup `<parent>/<name>`; None where cgroups are not available."""
        root = _root()
        if root is None:
            return None
        try:
            (root / name).mkdir(parents=True, exist_ok=True)
        except OSError:
            return None
        return cls(root / name)

    @property
    def procs_file(self) -> str:
        return str(self.path / "cgroup.procs")

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in (self.path / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def kill_all(self, timeout: float = 10.0) -> None:
        """SIGKILL every process in the cgroup and wait until it is empty."""

        def empty() -> bool:
            if (self.path / "cgroup.kill").exists():
                with contextlib.suppress(OSError):
                    (self.path / "cgroup.kill").write_text("1")
            for pid in self.pids():  # v1: again each round, in case one forked meanwhile
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            return not self.pids()

        wait_for(empty, timeout, 0.05, f"cgroup {self.path} to empty")

    def remove(self) -> None:
        """Kill what is left and delete the cgroup."""
        with contextlib.suppress(TimeoutError):
            self.kill_all()
        with contextlib.suppress(OSError):
            self.path.rmdir()


def agent_name() -> str:
    """This agent's directory under the parent: its owner tag, so orphans can be found."""
    return owner_tag().replace(":", "-")


def _remove_tree(agent: Path) -> None:
    for child in [*agent.iterdir(), agent]:
        if child.is_dir():
            with contextlib.suppress(OSError):
                child.rmdir()  # fails, as it should, while a process is still inside


def remove_agent_dir(name: str) -> None:
    """Delete this agent's (empty) cgroups when it stops."""
    root = _root()
    if root is not None and (root / name).is_dir():
        _remove_tree(root / name)


def remove_orphaned() -> None:
    """Delete the empty cgroups of agents that died without cleaning up."""
    root = _root()
    if root is None or not root.is_dir():
        return
    for agent in root.iterdir():
        if agent.is_dir() and not owner_alive(agent.name.replace("-", ":", 1)):
            _remove_tree(agent)
