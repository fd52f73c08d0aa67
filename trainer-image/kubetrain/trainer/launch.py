"""Start torchrun for a multi-process run, from the plan and torchrun's PET_* environment."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from kubetrain.errors import InvalidJob
from kubetrain.exitcodes import ExitCode

EXIT_DIR_ENV = "KUBETRAIN_EXIT_DIR"
"""Workers write `rank-N` (exit code, newline, reason) here; torchrun itself only says 1."""


@dataclass(frozen=True)
class Topology:
    nnodes: int
    nproc_per_node: int
    node_rank: int
    master_addr: str
    master_port: int

    @property
    def world(self) -> int:
        return self.nnodes * self.nproc_per_node


def topology(nodes: int, procs_per_node: int, master_port: int,
             env: dict[str, str] | None = None) -> Topology:
    """Where this node stands; PET_* (set by the operator in a pod) win over the spec."""
    env = dict(os.environ if env is None else env)
    if nodes > 1 and "PET_NNODES" not in env:
        raise InvalidJob(f"parallelism.nodes is {nodes}: more than one node needs a cluster"
                          " (run it with the operator, which sets PET_NNODES and friends)")
    nnodes = int(env.get("PET_NNODES", nodes))
    if nnodes != nodes:
        raise InvalidJob(f"PET_NNODES={nnodes} but parallelism.nodes is {nodes}")
    port = env.get("PET_MASTER_PORT")
    if port is None and nnodes == 1:
        # One node, no cluster: any free port works, and two local runs must not collide.
        port = str(free_port())
    return Topology(nnodes, int(env.get("PET_NPROC_PER_NODE", procs_per_node)),
                    int(env.get("PET_NODE_RANK", 0)), env.get("PET_MASTER_ADDR", "127.0.0.1"),
                    int(port or master_port))


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def torchrun_command(top: Topology, worker_args: list[str]) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run",
            f"--nnodes={top.nnodes}", f"--nproc-per-node={top.nproc_per_node}",
            f"--node-rank={top.node_rank}", f"--master-addr={top.master_addr}",
            f"--master-port={top.master_port}", "--max-restarts=0",
            "-m", "kubetrain", *worker_args]


def exit_dir(run_dir: Path, top: Topology) -> Path:
    """Where this node's ranks leave their exit codes: one directory per node, since the pods
    of a multi-node job may share the run directory (and each launcher empties its own)."""
    return run_dir / ".exit" / f"node-{top.node_rank}"


def run_torchrun(top: Topology, worker_args: list[str], exit_dir: Path,
                 extra_env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run the workers; returns the most specific exit code any rank reported, and its reason.

    `exit_dir` (in the run directory, so a killed launcher leaves nothing elsewhere) is emptied
    first: codes of an earlier attempt must not count.
    """
    shutil.rmtree(exit_dir, ignore_errors=True)
    exit_dir.mkdir(parents=True)
    env = {**os.environ, **(extra_env or {}), EXIT_DIR_ENV: str(exit_dir)}
    for key in ("PET_NNODES", "PET_NPROC_PER_NODE", "PET_NODE_RANK", "PET_MASTER_ADDR",
                "PET_MASTER_PORT"):
        env.pop(key, None)  # the command line says it; torchrun would reread these
    proc = subprocess.Popen(torchrun_command(top, worker_args), env=env,
                            preexec_fn=die_with_parent)

    def forward(signum: int, _frame: object) -> None:
        proc.send_signal(signum)

    old = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        rc = proc.wait()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    return worst_exit(exit_dir, rc)


def die_with_parent() -> None:
    """Linux: be killed when the parent dies, so a `kill -9` of the launcher (or of torchrun)
    leaves no orphaned ranks that go on training and writing checkpoints."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    parent = os.getppid()
    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


# Most specific first: a rank's own verdict beats torchrun's generic failure.
_PRIORITY = [ExitCode.INVALID, ExitCode.DIVERGED, ExitCode.CRASHED, ExitCode.INTERRUPTED,
             ExitCode.SUCCEEDED]


def worst_exit(exit_dir: Path, torchrun_rc: int) -> tuple[int, str]:
    reports = []
    for f in sorted(exit_dir.glob("rank-*")):
        code, _, reason = f.read_text().partition("\n")
        reports.append((int(code), reason.strip()))
    for wanted in _PRIORITY:
        for code, reason in reports:
            if code == wanted:
                if wanted == ExitCode.SUCCEEDED and torchrun_rc != 0:
                    break
                return code, reason
    return (ExitCode.CRASHED if torchrun_rc else ExitCode.SUCCEEDED), ""


def report_exit(rank: int, code: int, reason: str) -> None:
    """In a worker: tell the launcher this rank's exit code and reason."""
    d = os.environ.get(EXIT_DIR_ENV)
    if d:
        Path(d, f"rank-{rank}").write_text(f"{int(code)}\n{reason}")
