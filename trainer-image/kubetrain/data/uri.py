"""Dataset locations: local paths and file:// work; remote schemes need network access."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlparse

from kubetrain.errors import InvalidJob

# Schemes we know how to name in an error; their readers are not available in this image.
REMOTE_SCHEMES = {
    "s3": "an S3 object store",
    "gs": "a Google Cloud Storage bucket",
    "hf": "the Hugging Face hub",
    "http": "a web server",
    "https": "a web server",
}


def local_path(location: str, *, base: Path | None = None) -> Path:
    """The local file a dataset location names; InvalidJob when it is remote or missing.

    A relative path is looked up next to the job file (`base`) first, then in the working
    directory, so a job runs from any directory; the error names every place it looked.
    """
    parsed = urlparse(location)
    scheme = parsed.scheme.lower()
    if scheme in REMOTE_SCHEMES:
        raise InvalidJob(
            f"{location}: reading from {REMOTE_SCHEMES[scheme]} ({scheme}://) needs network access,"
            " which this machine does not have; copy the data to a local path or a mounted volume"
        )
    if scheme == "file":
        path = Path(unquote(parsed.netloc + parsed.path))
    elif scheme and len(scheme) > 1:  # one letter is a Windows drive, not a scheme
        raise InvalidJob(f"{location}: unsupported URI scheme {scheme}:// (use a path or file://)")
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
