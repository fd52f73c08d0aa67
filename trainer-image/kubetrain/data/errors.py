"""The error every data problem raises: one line, exit code 2."""

from __future__ import annotations


class DataError(ValueError):
    """A problem with the data a user can fix (missing file, unknown column, NaN labels...)."""
