"""Dataset locations: local paths and file:// work; remote schemes need network access."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from kubetrain.data.errors import DataError

# Schemes we know how to name in an error; their readers are not available in this image.
REMOTE_SCHEMES = {
    "s3": "an S3 object store",
    "gs": "a Google Cloud Storage bucket",
    "hf": "the Hugging Face hub",
    "http": "a web server",
    "https": "a web server",
}


def local_path(location: str, *, base: Path | None = None) -> Path:
    """The local file a dataset location names; DataError when it is remote or missing."""
    parsed = urlparse(location)
    scheme = parsed.scheme.lower()
    if scheme in REMOTE_SCHEMES:
        raise DataError(
            f"{location}: reading from {REMOTE_SCHEMES[scheme]} ({scheme}://) needs network access,"
            " which this machine does not have; copy the data to a local path or a mounted volume"
        )
    if scheme == "file":
        path = Path(unquote(parsed.netloc + parsed.path))
    elif scheme and len(scheme) > 1:  # one letter is a Windows drive, not a scheme
        raise DataError(f"{location}: unsupported URI scheme {scheme}:// (use a path or file://)")
    else:
        path = Path(location).expanduser()
    if not path.is_absolute() and not path.exists() and base is not None:
        path = base / path  # relative to the job file when not relative to the working dir
    if not path.exists():
        raise DataError(f"{location}: no such file or directory")
    return path
