"""SIGTERM/SIGINT → stop at the next step boundary (checkpoint, exit 75)."""

from __future__ import annotations

import signal
import sys
from types import FrameType


class StopFlag:
    """Set by a signal handler, read by the loop between steps."""

    def __init__(self) -> None:
        self.signal: int | None = None

    def __call__(self) -> bool:
        return self.signal is not None

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C aborts without waiting for the step
        self.signal = signum
        print(f"kubetrain: received {signal.Signals(signum).name}; saving a checkpoint at the"
              " next step boundary", file=sys.stderr, flush=True)
