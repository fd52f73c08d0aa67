"""Object-store locations through fsspec, with obstore (Rust `object_store`) as the backend.

s3://, gs://, http:// and https:// URLs are listed and written (s3:// only) through
`obstore.fsspec.FsspecStore`; objects are read by one streamed GET and probed by HEAD through
obstore's own API under the same configuration (its fsspec files read by range requests and
probe missing paths by listing, which a plain web server does not support).

Credentials and endpoints come from the environment, as every S3 tool reads them:
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION (or AWS_DEFAULT_REGION),
AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL for an S3-compatible server (MinIO, Ceph, R2...); for
gs://, what object_store's GCS client reads (GOOGLE_SERVICE_ACCOUNT and its _PATH / _KEY forms,
GOOGLE_APPLICATION_CREDENTIALS). In a cluster, set them from a Secret through
spec.template.env (valueFrom.secretKeyRef).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from kubetrain.errors import InvalidJob

SCHEMES = {"s3": "an S3 bucket", "gs": "a Google Cloud Storage bucket",
           "http": "a web server", "https": "a web server"}
WRITABLE = {"s3"}


def scheme_of(location: str | Path) -> str:
    return urlparse(location).scheme.lower() if isinstance(location, str) else ""


def is_remote(location: str | Path) -> bool:
    """True for a URL this module opens (a Path is always local)."""
    return scheme_of(location) in SCHEMES


def join(url: str, *parts: str) -> str:
    return "/".join([url.rstrip("/"), *(p.strip("/") for p in parts)])


def _s3_options() -> dict[str, Any]:
    env = os.environ
    config: dict[str, Any] = {}
    client: dict[str, Any] = {}
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    if endpoint:
        config["endpoint"] = endpoint
        if endpoint.startswith("http://"):  # a server on a private network or loopback
            client["allow_http"] = True
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if region:
        config["region"] = region
    return {"config": config or None, "client_options": client or None}


_stores: dict[tuple[str, tuple[tuple[str, str], ...]], Any] = {}


def _options(scheme: str) -> dict[str, Any]:
    if scheme == "s3":
        return _s3_options()
    return {"client_options": {"allow_http": True}} if scheme == "http" else {}


def credentials_key() -> tuple[tuple[str, str], ...]:
    """The object-store settings in the environment, as a hashable key (clients and memos)."""
    # Keyed by the variables read, so a changed environment (tests) gets a fresh client.
    return tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith(("AWS_", "GOOGLE_"))))


def read_chunks(url: str, chunk: int = 8 << 20) -> Iterator[bytes]:
    """An object's bytes, streamed by one GET (no range requests, which a plain web server may
    not support): obstore's own API under the same configuration as `filesystem`."""
    import obstore

    store, path = _object_store(url)
    for part in obstore.get(store, path).stream(min_chunk_size=chunk):
        yield bytes(part)


def head(url: str) -> dict[str, Any]:
    """One object's metadata (size, e_tag, last_modified) by a HEAD request, never a listing
    (a web server answers WebDAV's PROPFIND with 501, which the client retries for minutes)."""
    import obstore

    store, path = _object_store(url)
    return dict(obstore.head(store, path))


def _object_store(url: str) -> tuple[Any, str]:
    from obstore.store import from_url

    parsed = urlparse(url)
    key = ("object_store", parsed.scheme, parsed.netloc, credentials_key())
    if key not in _stores:
        opts = _options(parsed.scheme.lower())
        _stores[key] = from_url(f"{parsed.scheme}://{parsed.netloc}",
                                config=opts.get("config"),
                                client_options=opts.get("client_options"))
    return _stores[key], parsed.path.lstrip("/")


def filesystem(location: str) -> Any:
    """The fsspec filesystem for a URL's scheme (one per scheme and environment)."""
    from obstore.fsspec import FsspecStore

    scheme = scheme_of(location)
    if scheme not in SCHEMES:
        raise InvalidJob(f"{location}: not an object-store URL ({', '.join(sorted(SCHEMES))})")
    key = (scheme, credentials_key())
    if key not in _stores:
        _stores[key] = FsspecStore(scheme, skip_instance_cache=True, **_options(scheme))
    return _stores[key]


def bucket_of(url: str) -> str:
    return urlparse(url).netloc


def describe(e: BaseException, url: str) -> str | None:
    """One line for an object-store error a user can fix (missing bucket or object, denied
    access, bad credentials); None for anything else (a network fault: retry)."""
    from obstore.exceptions import (
        NotFoundError,
        PermissionDeniedError,
        UnauthenticatedError,
    )

    text = str(e)
    first = text.strip().splitlines()[0][:300] if text.strip() else type(e).__name__
    if "169.254.169.254" in text or "metadata.google.internal" in text:
        # No credentials in the environment: the client fell back to a cloud metadata service.
        return (f"{url}: no credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, for"
                " gs:// GOOGLE_APPLICATION_CREDENTIALS, in the environment or from a Secret in"
                " spec.template.env; no cloud metadata service answered)")
    if isinstance(e, PermissionDeniedError | UnauthenticatedError) or _says(
            text, "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403 Forbidden"):
        return (f"{url}: access denied ({_reason(text) or first}); check the credentials"
                " (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or the Secret in"
                " spec.template.env) and the bucket's policy")
    if _says(text, "NoSuchBucket"):
        return f"{url}: bucket {bucket_of(url)!r} does not exist"
    if isinstance(e, NotFoundError | FileNotFoundError) or _says(text, "NoSuchKey", "404"):
        return f"{url}: no such object"
    return None


def _says(text: str, *codes: str) -> bool:
    return any(c in text for c in codes)


def _reason(text: str) -> str:
    for code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied"):
        if code in text:
            return code
    return ""


def invalid(e: BaseException, url: str, field: str = "") -> BaseException:
    """InvalidJob (exit 2) when `describe` names the error, else the error itself (raise it
    `from None`: either way the one line, or the original error, is what the user sees)."""
    line = describe(e, url)
    if line is None:
        return e
    return InvalidJob(f"{field}: {line}" if field else line)
