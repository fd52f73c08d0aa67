"""metrics.jsonl: one JSON object per line, never a torn line, never a step twice.

- Each record is appended with one write() of the whole line; if that fails (disk full) the file is
  cut back to where it was, so no half line is left behind.
- When the file is opened for the first record of a run, a last line without its newline (a kill
  in the middle of a write) and any other line that is not a JSON object are dropped, so a torn
  line can never swallow the next record.
- A resumed run cuts the file back before its first record: records after the step it resumed
  from (`start(step)`), or, if no start step was given, records at or after the step of its first
  record, are dropped. A kill between logging and checkpointing therefore never leaves a step
  logged twice: the resumed run logs those steps again and its records replace the old ones.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sys
from pathlib import Path
from typing import Any


def read_records(data: bytes) -> tuple[list[dict[str, Any]], int]:
    """The records of a metrics.jsonl and how many lines were dropped (torn or not an object)."""
    lines = data.split(b"\n")
    dropped = 1 if lines[-1].strip() else 0  # no newline at the end: cut short by a kill
    out: list[dict[str, Any]] = []
    for line in lines[:-1]:
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            rec = None
        if isinstance(rec, dict) and isinstance(rec.get("step"), int):
            out.append(rec)
        else:
            dropped += 1
    return out, dropped


class MetricsLog:
    """Appends records to <run dir>/metrics.jsonl under the rules above."""

    def __init__(self, path: Path):
        self.path = path
        self.fd = -1
        self.start_step: int | None = None

    def start(self, step: int) -> None:
        """This run continues from `step`: older records after it are dropped on the first write."""
        self.start_step = step

    def append(self, record: dict[str, Any]) -> None:
        if self.fd < 0:
            self._open(int(record["step"]))
        elif not self._still_there():
            raise FileNotFoundError(errno.ENOENT, "deleted or replaced while the run was writing"
                                    " it", str(self.path))
        data = (json.dumps(record) + "\n").encode()
        end = os.lseek(self.fd, 0, os.SEEK_END)
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.fd, view):]
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, end)  # no half line left behind
            raise

    def _still_there(self) -> bool:
        """Appending to a file someone deleted would lose every record without an error."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False
        mine = os.fstat(self.fd)
        return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)

    def _open(self, first_step: int) -> None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            data = b""
        if data:
            records, dropped = read_records(data)
            keep = [r for r in records if (r["step"] <= self.start_step if self.start_step
                                           is not None else r["step"] < first_step)]
            if dropped:
                print(f"kubetrain: {self.path}: dropped {dropped} torn or unreadable line(s)",
                      file=sys.stderr)
            if dropped or len(keep) != len(records):
                self._rewrite(keep)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def _rewrite(self, records: list[dict[str, Any]]) -> None:
        """Atomically (a kill leaves either the old or the new file)."""
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        try:
            tmp.write_bytes(b"".join((json.dumps(r) + "\n").encode() for r in records))
            os.replace(tmp, self.path)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
