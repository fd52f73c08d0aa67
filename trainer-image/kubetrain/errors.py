"""The one error for everything a user can fix: printed as one line, exit code 2.

A bad spec, a missing file, data that cannot be trained on, a model that does not fit the
data, a checkpoint written for another job: retrying cannot help, so the trainer exits with
`ExitCode.INVALID`, the CLI prints the message without a traceback, and the operator marks
the job Failed with the message as its reason. Anything else is a crash (exit 1, retried).
"""

from __future__ import annotations


class InvalidJob(ValueError):
    """A problem the user can fix; the message names the field, file or path involved."""
