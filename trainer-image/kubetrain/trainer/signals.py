"""SIGTERM/SIGINT → stop at the next step boundary (checkpoint, exit 75)."""

from __future__ import annotations

import os
import signal
import sys
import time
from types import FrameType

# Set by the operator from the pod's terminationGracePeriodSeconds: the time from SIGTERM to
# SIGKILL. torchrun's shutdown follows it too (PET_SHUTDOWN_TIMEOUT, set beside it).
GRACE_ENV = "KUBETRAIN_GRACE_SECONDS"


class StopFlag:
    """Set by a signal handler, read by the loop between steps."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.signal: int | None = None
        grace = (os.environ if env is None else env).get(GRACE_ENV, "")
        self.grace_seconds: float | None = float(grace) if grace.isdigit() else None
        self.deadline: float | None = None
        """time.monotonic() by which the checkpoint must be saved (None: no known limit)."""

    def __call__(self) -> bool:
        return self.signal is not None

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C aborts without waiting for the step
        self.signal = signum
        within = ""
        if self.grace_seconds is not None:
            self.deadline = time.monotonic() + self.grace_seconds
            within = f" (within the {self.grace_seconds:g} s grace period)"
        print(f"kubetrain: received {signal.Signals(signum).name}; saving a checkpoint at the"
              f" next step boundary{within}", file=sys.stderr, flush=True)
