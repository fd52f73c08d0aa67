"""Dataset locations: local paths, file://, and object storage (s3://, gs://, http(s)://).

Remote data is copied into a local cache first (`kubetrain.storage.fetch`), so every reader
takes a local path. hf:// (the Hugging Face hub) has no reader here.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlparse

from kubetrain.errors import InvalidJob
from kubetrain.storage.fetch import fetch
from kubetrain.storage.remote import is_remote

# Schemes we know how to name in an error but have no reader for.
UNREADABLE_SCHEMES = {"hf": "the Hugging Face hub"}


def local_path(location: str, *, base: Path | None = None) -> Path:
    """The local file a dataset location names; InvalidJob when it is missing or unreadable.

    An object-store URL (s3://, gs://, http(s)://) is downloaded into the local cache first;
    a missing bucket or object and denied access are InvalidJob (one line, exit 2).

    A relative path is looked up next to the job file (`base`) first, then in the working
    directory, so a job runs from any directory; the error names every place it looked.
    """
    parsed = urlparse(location)
    scheme = parsed.scheme.lower()
    if is_remote(location):
        return fetch(location)
    if scheme in UNREADABLE_SCHEMES:
        raise InvalidJob(
            f"{location}: reading from {UNREADABLE_SCHEMES[scheme]} ({scheme}://) is not"
            " supported; download the data to a local path, a mounted volume or a bucket"
        )
    if scheme == "file":
        path = Path(unquote(parsed.netloc + parsed.path))
    elif scheme and len(scheme) > 1:  # one letter is a Windows drive, not a scheme
        raise InvalidJob(f"{location}: unsupported URI scheme {scheme}:// (use a path, file://,"
                         " s3://, gs://, http:// or https://)")
    else:
        path = Path(location).expanduser()
    tried = candidates(path, base)
    for candidate in tried:
        if candidate.exists():
            return candidate
    where = " or ".join(str(p) for p in tried)
    raise InvalidJob(f"{location}: no such file or directory"
                     + (f" (looked for {where})" if [str(path)] != [str(p) for p in tried] else ""))


def candidates(path: Path, base: Path | None) -> list[Path]:
    """Where a path may be: itself when absolute, else beside the job file, then in the
    working directory (absolute, without duplicates)."""
    if path.is_absolute():
        return [path]
    places = [base / path] if base is not None else []
    places.append(Path.cwd() / path)
    return list(dict.fromkeys(Path(os.path.normpath(p.absolute())) for p in places))
