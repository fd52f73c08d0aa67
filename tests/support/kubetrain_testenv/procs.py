"""Child processes in their own process groups, tagged so none can outlive a run.

Every process the test environment starts (etcd, the API server, the controller
manager, the scheduler and the real nodes' daemons) carries `RUN_ENV=<run id>` and
`OWNER_ENV=<owner>` in its environment. `survivors(run_id)` finds them through
/proc, so a teardown can both kill stragglers and assert that none is left;
`reap_orphans()` kills what an owner killed outright (SIGKILL) left behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

RUN_ENV = "KUBETRAIN_TESTENV_RUN"
# "<pid>:<start time>" of the process that owns the run, to find orphans of a killed owner.
OWNER_ENV = "KUBETRAIN_TESTENV_OWNER"
T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T], timeout: float, interval: float = 0.2, what: str = "condition"
) -> T:
    """Poll `predicate` until it returns something truthy; raise TimeoutError at the deadline.

    Exceptions raised by the predicate count as "not yet" and the last one is
    chained to the TimeoutError, so a failure says why it kept failing.
    """
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            result = predicate()
            if result:
                return result
        except Exception as exc:  # keep polling: the thing may not exist yet
            last = exc
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}") from last
        time.sleep(interval)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(
    argv: Sequence[str | Path],
    log: Path,
    run_id: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start `argv` in a new session, output to `log`, killed if this process dies."""
    full_env = dict(os.environ if env is None else env)
    full_env[RUN_ENV] = run_id
    full_env[OWNER_ENV] = owner_tag()
    args = [str(a) for a in argv]
    setpriv = shutil.which("setpriv")
    if setpriv:  # SIGKILL the child if its parent dies without cleaning up
        args = [setpriv, "--pdeathsig", "KILL", "--", *args]
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen(
            args,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=full_env,
            cwd=cwd,
            start_new_session=True,
        )


def stop(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM the process group, wait up to `grace` seconds, then SIGKILL it."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(wait)
            break
        except subprocess.TimeoutExpired:
            continue
    # The leader is gone; members that ignored SIGTERM may linger in the group.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def _stat(pid: int | str) -> list[str]:
    """Fields of /proc/<pid>/stat after the command name (state is [0], start time [19])."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        return _stat(pid)[0] != "Z"
    except OSError:
        return False


def owner_tag(pid: int | None = None) -> str:
    """Identifies a live process across pid reuse: "<pid>:<start time>"."""
    pid = os.getpid() if pid is None else pid
    return f"{pid}:{_stat(pid)[19]}"


def _tagged() -> list[tuple[int, dict[bytes, bytes], str]]:
    """(pid, our env tags, command line) of live processes carrying our tags."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            if RUN_ENV.encode() not in environ:
                continue
            if _stat(entry.name)[0] == "Z":
                continue  # a zombie is dead; its parent just has not reaped it yet
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # exited while we looked
        tags = dict(
            item.split(b"=", 1)
            for item in environ.split(b"\0")
            if item.startswith((RUN_ENV.encode() + b"=", OWNER_ENV.encode() + b"="))
        )
        found.append((int(entry.name), tags, cmd.strip()))
    return found


def survivors(run_id: str) -> list[tuple[int, str]]:
    """(pid, command line) of live processes tagged with `run_id`."""
    return [
        (pid, cmd) for pid, tags, cmd in _tagged() if tags.get(RUN_ENV.encode()) == run_id.encode()
    ]


def owner_alive(tag: str) -> bool:
    """Whether the process an `owner_tag` names still runs."""
    pid, _, _ = tag.partition(":")
    try:
        return owner_tag(int(pid)) == tag
    except (OSError, ValueError, IndexError):
        return False


def reap_orphans() -> list[tuple[int, str]]:
    """SIGKILL tagged processes whose owner is dead (it was SIGKILLed); return them."""
    orphans = [
        (pid, cmd)
        for pid, tags, cmd in _tagged()
        if OWNER_ENV.encode() in tags and not owner_alive(tags[OWNER_ENV.encode()].decode())
    ]
    for pid, _ in orphans:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return orphans


def kill_survivors(run_id: str) -> list[tuple[int, str]]:
    """SIGKILL every process tagged with `run_id`; return what was killed."""
    killed = survivors(run_id)
    for pid, _ in killed:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return killed
