"""Start one container process in its own mount and UTS namespaces (needs root).

Run by the node agent as `python -I -S launch.py SPEC.json`; stdlib only, so it
starts in milliseconds. It makes the mount namespace private, bind-mounts each
volume (and the pod's hosts file and termination-message file) at its path,
sets the pod's hostname, changes to workingDir and execs the command.

Missing mount points are created on the machine (empty directories or files);
their content is visible only inside the container's namespace.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
MS_RDONLY = 1
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
PR_SET_PDEATHSIG = 1

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _mount(source: str | None, target: str, flags: int) -> None:
    src = source.encode() if source else None
    _check(_libc.mount(src, target.encode(), None, flags, None), f"mount {source} on {target}")


def _ensure_target(source: str, target: str) -> None:
    if os.path.lexists(target):
        return
    if os.path.isdir(source):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target) or "/", exist_ok=True)
        with open(target, "a"):
            pass


def main(spec_path: str) -> None:
    with open(spec_path) as f:
        spec = json.load(f)
    # Die with the agent even if it is killed outright.
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != spec["agent_pid"]:
        sys.exit(137)
    if spec.get("cgroup_procs"):  # join the container's cgroup: children stay in it
        with open(spec["cgroup_procs"], "w") as f:
            f.write(str(os.getpid()))
    _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWUTS), "unshare")
    _mount(None, "/", MS_REC | MS_PRIVATE)  # our binds must not leak to the machine
    for source, target, read_only in spec["mounts"]:
        if not os.path.lexists(source):  # a subPath not used before: a kubelet creates it
            os.makedirs(source)
        _ensure_target(source, target)
        _mount(source, target, MS_BIND | MS_REC)
        if read_only:
            _mount(None, target, MS_BIND | MS_REMOUNT | MS_RDONLY)
    hostname = spec["hostname"].encode()
    _check(_libc.sethostname(hostname, len(hostname)), "sethostname")
    if spec.get("cwd"):
        os.makedirs(spec["cwd"], exist_ok=True)  # like a container runtime
        os.chdir(spec["cwd"])
    argv = spec["argv"]
    try:
        os.execvpe(argv[0], argv, spec["env"])
    except OSError as exc:
        print(f"testenv: cannot run {argv[0]!r}: {exc}", file=sys.stderr)
        with open(spec["termination_log"], "w") as f:
            f.write(f"cannot run {argv[0]!r}: {exc}")
        sys.exit(127)


def _fail(spec_path: str, exc: BaseException) -> None:
    """Report a setup failure in the termination message, like a runtime's StartError."""
    print(f"testenv: cannot start the container: {exc}", file=sys.stderr)
    try:
        with open(spec_path) as f:
            path = json.load(f)["termination_log"]
        with open(path, "w") as f:
            f.write(f"cannot start the container: {exc}")
    except (OSError, ValueError, KeyError):
        pass
    sys.exit(128)


if __name__ == "__main__":
    try:
        main(sys.argv[1])
    except OSError as exc:
        _fail(sys.argv[1], exc)
