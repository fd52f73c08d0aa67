"""A real S3-compatible server (MinIO) and a plain HTTP file server on loopback, for tests.

Test tool only. MinIO is AGPLv3: it runs as a separate process started here and nothing of it
becomes part of kubetrain's code or images. The binary is $KUBETRAIN_MINIO (hack/test.sh sets it)
or what hack/minio/build.sh prints (it builds once, minutes, then is a no-op); when neither works
the tests that need it fail with the build's output, they are never skipped.

`minio_server(root)` starts `minio server` with a fresh data directory and random ports, polls
its readiness endpoint, and yields an `S3Server` (endpoint, credentials, `env()` for a
subprocess, `create_bucket(name)`); the process is stopped at exit. `http_server(directory)`
serves a directory with `python -m http.server`.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import hmac
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kubetrain_testenv.assets import built_path
from kubetrain_testenv.procs import free_port, wait_for

REPO_ROOT = Path(__file__).resolve().parents[3]
BUILD_SCRIPT = REPO_ROOT / "hack" / "minio" / "build.sh"
REGION = "us-east-1"


class MinioError(RuntimeError):
    """The MinIO binary could not be built or found, or the server did not start."""


def minio_binary(timeout: float = 3600) -> Path:
    given = os.environ.get("KUBETRAIN_MINIO")
    if given and os.access(given, os.X_OK):
        return Path(given)
    path = built_path(BUILD_SCRIPT, timeout)
    if not os.access(path, os.X_OK):
        raise MinioError(f"{BUILD_SCRIPT} printed {path}, which is not an executable")
    return path


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str

    def env(self, **overrides: str) -> dict[str, str]:
        """The variables a client (kubetrain) reads to reach this server."""
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_ENDPOINT_URL": self.endpoint, "AWS_REGION": REGION, **overrides}

    def create_bucket(self, name: str, timeout: float = 60) -> None:
        """PUT /<bucket>, signed with AWS Signature Version 4 (no S3 client library needed).
        A loaded MinIO can report ready and still answer 503 while it initialises: wait_for
        retries until the deadline and then names the last error."""

        def created() -> bool:
            with urllib.request.urlopen(self._signed("PUT", f"/{name}"), timeout=30) as r:
                return r.status == 200

        wait_for(created, timeout, interval=0.2, what=f"bucket {name}")

    def _signed(self, method: str, path: str) -> urllib.request.Request:
        now = datetime.datetime.now(datetime.UTC)
        stamp, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
        host = self.endpoint.split("://", 1)[1]
        payload = hashlib.sha256(b"").hexdigest()
        headers = {"host": host, "x-amz-content-sha256": payload, "x-amz-date": stamp}
        signed = ";".join(sorted(headers))
        canonical = "\n".join([method, path, "",
                               *(f"{k}:{headers[k]}" for k in sorted(headers)), "",
                               signed, payload])
        scope = f"{day}/{REGION}/s3/aws4_request"
        to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope,
                             hashlib.sha256(canonical.encode()).hexdigest()])
        key = f"AWS4{self.secret_key}".encode()
        for part in (day, REGION, "s3", "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={self.access_key}/{scope},"
                                    f" SignedHeaders={signed}, Signature={signature}")
        return urllib.request.Request(self.endpoint + path, method=method, headers=headers)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def _process(argv: list[str], log: Path, env: dict[str, str], ready: str, what: str,
             timeout: float = 120) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
    try:
        def up() -> bool:
            if proc.poll() is not None:
                raise MinioError(f"{what} exited with {proc.returncode}:\n"
                                 f"{log.read_text(errors='replace')[-3000:]}")
            return _answers(ready)

        try:
            wait_for(up, timeout, interval=0.1, what=what)
        except TimeoutError as e:
            if isinstance(e.__cause__, MinioError):
                raise e.__cause__ from None
            raise
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def minio_server(root: Path, *, user: str = "kubetrain-test",
                 password: str = "kubetrain-test-secret",
                 settings: dict[str, str] | None = None) -> Iterator[S3Server]:
    """`minio server` on 127.0.0.1 with a fresh data directory under `root`; `settings` adds
    MINIO_* settings (e.g. an audit webhook that counts requests)."""
    binary = minio_binary()
    data = root / "minio-data"
    data.mkdir(parents=True)
    port, console = free_port(), free_port()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(root),
           "MINIO_ROOT_USER": user, "MINIO_ROOT_PASSWORD": password,
           "MINIO_BROWSER": "off", "MINIO_UPDATE": "off", "MINIO_REGION": REGION,
           **(settings or {})}
    argv = [str(binary), "server", str(data), "--address", f"127.0.0.1:{port}",
            "--console-address", f"127.0.0.1:{console}", "--quiet"]
    endpoint = f"http://127.0.0.1:{port}"
    with _process(argv, root / "minio.log", env, f"{endpoint}/minio/health/ready", "minio"):
        yield S3Server(endpoint, user, password)


@contextlib.contextmanager
def http_server(directory: Path, log: Path) -> Iterator[str]:
    """`python -m http.server` serving `directory` on 127.0.0.1; yields its base URL."""
    port = free_port()
    argv = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
            "--directory", str(directory)]
    url = f"http://127.0.0.1:{port}"
    with _process(argv, log, dict(os.environ), url + "/", "http.server"):
        yield url
