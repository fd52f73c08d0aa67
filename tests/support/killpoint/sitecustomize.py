"""Kill -9 a `kubetrain run` at an exact file-system operation (fault-injection tests only).

Put this directory on PYTHONPATH of the run and set:
  KUBETRAIN_KILLPOINT_DIR    only operations on paths under this directory count (the run dir)
  KUBETRAIN_KILLPOINT_MATCH  only paths containing this text count ("" for all)
  KUBETRAIN_KILLPOINT_AT     the process SIGKILLs itself just before the N-th counted operation
                             (0: never; every counted operation is then only logged)
  KUBETRAIN_KILLPOINT_LOG    each counted operation is appended here ("N event path"), the
                             one killed at with a "KILL " prefix

Operations are Python's audit events (open, os.rename/replace, os.mkdir, os.remove, rmtree):
what is on disk changes only at such calls (or inside torch.save, whose partial file lies in a
checkpoint's temporary directory), so killing just before each of them reaches every state a kill
at any other moment leaves behind. Nothing here runs unless KUBETRAIN_KILLPOINT_DIR is set.
"""

from __future__ import annotations

import os
import signal
import sys

_EVENTS = {"open": 0, "os.rename": 0, "os.mkdir": 0, "os.remove": 0, "os.rmdir": 0,
           "shutil.rmtree": 0}


def _install() -> None:
    root = os.environ.get("KUBETRAIN_KILLPOINT_DIR")
    if not root:
        return
    root = os.path.abspath(root)
    match = os.environ.get("KUBETRAIN_KILLPOINT_MATCH", "")
    at = int(os.environ.get("KUBETRAIN_KILLPOINT_AT", "0"))
    log_path = os.environ["KUBETRAIN_KILLPOINT_LOG"]
    count = 0
    busy = False

    def hook(event: str, args: tuple[object, ...]) -> None:
        nonlocal count, busy
        if busy or event not in _EVENTS or not args:
            return
        path = args[0]
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if not isinstance(path, str):
            return  # an fd, or a path-like we do not write
        path = os.path.abspath(path)
        if not path.startswith(root + os.sep) or match not in path:
            return
        count += 1
        kill = count == at
        busy = True  # the log's own open must not count
        try:
            with open(log_path, "a") as f:
                f.write(f"{'KILL ' if kill else ''}{count} {event} {path}\n")
        finally:
            busy = False
        if kill:
            os.kill(os.getpid(), signal.SIGKILL)

    sys.addaudithook(hook)


_install()
