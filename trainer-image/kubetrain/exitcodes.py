"""The trainer's exit codes: the contract between the trainer and the operator.

| code | name        | meaning                                          | operator does        |
|------|-------------|--------------------------------------------------|----------------------|
| 0    | SUCCEEDED   | training finished                                | job Succeeded        |
| 1    | CRASHED     | unexpected error (also any unlisted code)        | group restart        |
| 2    | INVALID     | invalid spec or data: retrying cannot help       | job Failed at once   |
| 3    | DIVERGED    | loss became NaN or infinite                      | job Failed at once   |
| 75   | INTERRUPTED | stopped by SIGTERM after saving a checkpoint     | group restart/resume |

On codes 2 and 3 the trainer writes a one-line reason to the termination-message file.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    SUCCEEDED = 0
    CRASHED = 1
    INVALID = 2
    DIVERGED = 3
    INTERRUPTED = 75  # EX_TEMPFAIL: try again later

    @property
    def retryable(self) -> bool:
        return self not in (ExitCode.INVALID, ExitCode.DIVERGED, ExitCode.SUCCEEDED)


def classify(code: int | None) -> ExitCode:
    """An observed exit code → its meaning (unknown codes and signals count as crashes)."""
    try:
        return ExitCode(code)
    except ValueError:
        return ExitCode.CRASHED
