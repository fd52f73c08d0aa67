"""One `kubetrain run` per run directory: an flock held by the launcher process.

The lock file is `<run dir>/.lock/node-<node rank>` (each node of a multi-node job takes its own,
since the pods of one job share the run directory). It is taken by `kubetrain run` before torchrun
starts the ranks, so all ranks of one run count as one holder, and it holds the holder's pid, host
and start time for the message a second run prints. The kernel drops an flock when its process
dies, so a run killed with SIGKILL leaves no stale lock: the next run takes it over.
"""

from __future__ import annotations

import datetime
import errno
import fcntl
import json
import os
import socket
import time
from pathlib import Path

from kubetrain.errors import InvalidJob
from kubetrain.reporting.launch_time import process_start_time
from kubetrain.trainer.run_dir_faults import RunDirFault, describe_os_error

LOCK_DIR = ".lock"

class RunDirLocked(InvalidJob):
    """Another run holds the run directory (exit code 2: this run must not touch it)."""


class RunDirUnusable(InvalidJob):
    """The run directory cannot be used at all: a file, read-only, not creatable (exit 2)."""


def _rfc3339(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class RunLock:
    """Held while the object lives (the fd is not inherited by torchrun: Python fds are CLOEXEC)."""

    def __init__(self, fd: int, path: Path):
        self.fd, self.path = fd, path

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing the only descriptor drops the flock
            self.fd = -1


POD_ENV = "KUBETRAIN_JOB_NAME"
"""Set by the operator in every pod of a TrainingJob."""

POD_WAIT_SECONDS = 120.0
"""In a pod, how long a held lock is waited for before giving up (with a retryable exit)."""


def acquire(run_dir: Path, node_rank: int = 0, env: dict[str, str] | None = None) -> RunLock:
    """Create the run directory if needed and lock it, or raise one clear error.

    RunDirUnusable/RunDirLocked (exit 2) when the directory is a file, read-only or held by a live
    run; RunDirFault (exit 1) when the disk is full. In a pod of the operator the run directory
    belongs to this TrainingJob alone, so a holder can only be a process of an earlier attempt
    that has not stopped yet (a force-deleted pod, a lost node's NFS lock): it is waited for, and
    if it is still there the error is RunDirFault, so the operator retries instead of failing the
    job for good.
    """
    in_pod = bool((os.environ if env is None else env).get(POD_ENV))
    deadline = time.monotonic() + (POD_WAIT_SECONDS if in_pod else 0.0)
    while True:
        try:
            return _acquire_once(run_dir, node_rank)
        except RunDirLocked as e:
            if time.monotonic() >= deadline:
                if in_pod:
                    raise RunDirFault(f"{e} (still held after {POD_WAIT_SECONDS:.0f} s: a process"
                                      " of an earlier attempt that has not stopped?)") from None
                raise
            time.sleep(0.5)


def _acquire_once(run_dir: Path, node_rank: int) -> RunLock:
    _ensure_dir(run_dir)
    path = run_dir / LOCK_DIR / f"node-{node_rank}"
    try:
        path.parent.mkdir(exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as e:
        raise _unusable(run_dir, e) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            os.close(fd)
            raise _unusable(run_dir, e) from None
        holder = _read_holder(fd)
        os.close(fd)
        raise RunDirLocked(f"run directory {run_dir} is in use by another kubetrain run"
                           f" ({holder}): wait for it to end, stop it, or use another"
                           " --run-dir") from None
    me = {"pid": os.getpid(), "host": socket.gethostname(),
          "started": _rfc3339(process_start_time())}
    try:
        data = (json.dumps(me) + "\n").encode()
        os.ftruncate(fd, 0)
        if os.pwrite(fd, data, 0) != len(data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    except OSError as e:
        os.close(fd)
        raise _unusable(run_dir, e) from None
    return RunLock(fd, path)


def _ensure_dir(run_dir: Path) -> None:
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirUnusable(f"run directory {run_dir} is a file, not a directory"
                             " (give --run-dir a directory path)")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        blocker = next((p for p in [run_dir, *run_dir.parents] if p.exists()), None)
        if blocker is not None and not blocker.is_dir():
            raise RunDirUnusable(f"run directory {run_dir} cannot be created: {blocker} is a"
                                 " file") from None
        raise _unusable(run_dir, e) from None


def _unusable(run_dir: Path, e: OSError) -> Exception:
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return RunDirFault(describe_os_error(e, run_dir))
    return RunDirUnusable(f"run directory {run_dir} is not writable"
                          f" ({os.strerror(e.errno) if e.errno else e}): a run needs to write"
                          " its checkpoints and metrics there")


def _read_holder(fd: int) -> str:
    """The holder's pid, host and start; a holder that has just locked may not have written it
    yet, so an empty file is read again for a moment."""
    deadline = time.monotonic() + 1.0
    while True:
        try:
            info = json.loads(os.pread(fd, 4096, 0) or b"null")
        except (OSError, ValueError):
            info = None
        if isinstance(info, dict):
            pid, host, started = info.get("pid"), info.get("host"), info.get("started")
            return f"pid {pid} on host {host}, started {started}"
        if time.monotonic() > deadline:
            return "holder still starting"
        time.sleep(0.05)
