"""The run-directory lock and the start-up checks of a run directory (real flocks and mounts)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from mounts import fill, remount, tmpfs

from kubetrain.trainer import run_lock
from kubetrain.trainer.run_dir_faults import RunDirFault


def test_second_holder_is_refused_with_pid_host_and_start(tmp_path: Path) -> None:
    lock = run_lock.acquire(tmp_path / "run")
    with pytest.raises(run_lock.RunDirLocked) as e:
        run_lock.acquire(tmp_path / "run")  # another open file: flock refuses it
    msg = str(e.value)
    assert f"pid {os.getpid()} on host {socket.gethostname()}" in msg and "started 20" in msg
    assert str(tmp_path / "run") in msg and "\n" not in msg
    lock.release()
    run_lock.acquire(tmp_path / "run").release()  # free again


def test_nodes_lock_separately(tmp_path: Path) -> None:
    a = run_lock.acquire(tmp_path, node_rank=0)
    b = run_lock.acquire(tmp_path, node_rank=1)  # the pods of one job share the directory
    a.release()
    b.release()


def test_lock_of_a_killed_process_is_taken_over(tmp_path: Path) -> None:
    code = ("import sys; from pathlib import Path; from kubetrain.trainer import run_lock;"
            "l = run_lock.acquire(Path(sys.argv[1])); print('locked', flush=True);"
            "sys.stdin.read()")
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(run_lock.RunDirLocked, match=f"pid {holder.pid} "):
            run_lock.acquire(tmp_path)
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(10)
    run_lock.acquire(tmp_path).release()


def _holder(run_dir: Path) -> subprocess.Popen[str]:
    """Another process holding the lock until its stdin closes."""
    code = ("import sys; from pathlib import Path; from kubetrain.trainer import run_lock;"
            "l = run_lock.acquire(Path(sys.argv[1])); print('locked', flush=True);"
            "sys.stdin.read()")
    proc = subprocess.Popen([sys.executable, "-c", code, str(run_dir)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


def test_in_a_pod_a_held_lock_is_waited_for(tmp_path: Path) -> None:
    """An earlier attempt's process still stopping: this attempt starts once it is gone."""
    import threading
    import time

    holder = _holder(tmp_path)
    assert holder.stdin is not None
    threading.Timer(1.0, holder.stdin.close).start()  # the old attempt ends a second later
    t0 = time.monotonic()
    run_lock.acquire(tmp_path, env={run_lock.POD_ENV: "job"}).release()
    assert time.monotonic() - t0 >= 0.9
    holder.wait(10)


def test_in_a_pod_a_lock_held_too_long_is_retryable(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run_lock, "POD_WAIT_SECONDS", 1.0)
    holder = _holder(tmp_path)
    try:
        with pytest.raises(RunDirFault, match=f"pid {holder.pid} .*still held after 1 s"):
            run_lock.acquire(tmp_path, env={run_lock.POD_ENV: "job"})
        with pytest.raises(run_lock.RunDirLocked):  # outside a pod: at once, exit 2
            run_lock.acquire(tmp_path, env={})
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(10)


def test_run_dir_that_is_a_file(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(run_lock.RunDirUnusable, match="is a file, not a directory"):
        run_lock.acquire(f)
    with pytest.raises(run_lock.RunDirUnusable, match=f"{f} is a file"):
        run_lock.acquire(f / "sub" / "run")


def test_read_only_run_dir(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "mnt", "1m") as mnt:
        (mnt / "old-run").mkdir()
        remount(mnt, "ro")
        for d in (mnt / "old-run", mnt / "new-run"):
            with pytest.raises(run_lock.RunDirUnusable, match="Read-only file system") as e:
                run_lock.acquire(d)
            assert str(d) in str(e.value)


def test_full_disk_at_start_is_a_fault_not_a_config_error(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "mnt", "256k") as mnt:
        (mnt / "run").mkdir()
        fill(mnt)
        with pytest.raises(RunDirFault, match="no space left on device"):
            run_lock.acquire(mnt / "run")


def test_process_start_time_is_this_process() -> None:
    import time

    from kubetrain.reporting.launch_time import process_start_time

    # A child started now (pytest itself may have been running for many minutes). /proc's boot
    # time has whole seconds, hence the tolerance.
    before = time.time()
    child = subprocess.Popen(["sleep", "30"])
    try:
        assert before - 2 < process_start_time(child.pid) < time.time() + 2
    finally:
        child.kill()
        child.wait()
    assert process_start_time() <= time.time()
