"""Storage faults of a running job (disk full, run directory vanished or turned read-only).

They are exit code 1 (CRASHED: retryable), not 2: nothing in the spec is wrong, space can be freed
or a volume remounted, and the next start resumes from the newest complete checkpoint, which a
failed write never touches (checkpoints are published by rename). A run directory that is unusable
before training starts (a file, read-only) is exit 2 instead: see `trainer.run_lock`.
No torch import: the launcher uses this before torchrun starts.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO}


class RunDirFault(Exception):
    """A write to the run or checkpoint directory failed mid-run: one line, exit code 1."""


def _free(path: Path) -> str:
    for p in [path, *path.parents]:
        try:
            st = os.statvfs(p)
        except OSError:
            continue
        return f"{st.f_bavail * st.f_frsize / 2**20:.1f} MiB free"
    return "free space unknown"


def describe_os_error(e: OSError, path: Path) -> str:
    """One line: what failed, on which path, and what to do."""
    target = Path(e.filename) if isinstance(e.filename, str) and e.filename else path
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        what = "no space left on device" if e.errno == errno.ENOSPC else "disk quota exceeded"
        return f"{what} writing {target} ({_free(target)}): free space and run again"
    if e.errno == errno.EROFS:
        return f"{target}: the file system became read-only while the run was writing to it"
    if e.errno == errno.ENOENT and not _existing_dir(path):
        return (f"{target}: the run directory {path} vanished while the run was writing to it"
                " (deleted or unmounted)")
    return f"cannot write {target}: {e.strerror or e}"


def _existing_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:
        return False


def storage_fault(e: BaseException, run_dir: Path, checkpoint_dir: Path | None = None
                  ) -> str | None:
    """If `e` (or an exception it was raised from) is a storage fault, its one-line reason.

    torch.save reports a failed write as a RuntimeError without errno ("unexpected pos",
    "iostream error", "file write failed"), so a RuntimeError counts as disk full when the file
    system of the checkpoints is (nearly) full.
    """
    ckpt = checkpoint_dir or run_dir / "checkpoints"
    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        reason = None
        if isinstance(cur, RunDirFault):
            reason = str(cur)
        elif isinstance(cur, OSError) and (cur.errno in STORAGE_ERRNOS or (
                cur.errno == errno.ENOENT and not _existing_dir(run_dir))):
            reason = describe_os_error(cur, run_dir)
        elif isinstance(cur, RuntimeError) and _nearly_full(ckpt):
            reason = describe_os_error(OSError(errno.ENOSPC, "", str(ckpt)), run_dir)
        if reason is not None:
            newest = newest_checkpoint(ckpt)
            return (f"{reason}; newest complete checkpoint: {newest or 'none yet'}"
                    f"{' (the next start resumes from it)' if newest else ''}")
        cur = cur.__cause__ or cur.__context__
    return None


def newest_checkpoint(directory: Path) -> Path | None:
    """The newest published checkpoint (manifest.json is written last), unverified."""
    try:
        done = sorted(p for p in directory.glob("step-*") if (p / "manifest.json").is_file())
    except OSError:
        return None
    return done[-1] if done else None


def _nearly_full(path: Path) -> bool:
    """Less than 1 MiB or 0.1% left (the failed write's partial file holds what it wrote)."""
    for p in [path, *path.parents]:
        try:
            st = os.statvfs(p)
        except OSError:
            continue
        return st.f_bavail * st.f_frsize < 2**20 or st.f_bavail < st.f_blocks // 1000
    return False
