"""A minimal JSON client for the API server (the node agent's only I/O with it).

Plain dicts in and out, so the agent does not depend on the generated client's
model classes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import urllib3
import yaml

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"


class ApiError(Exception):
    """A non-2xx answer; `status` is the HTTP code, `body` the decoded Status object."""

    def __init__(self, status: int, body: Any) -> None:
        message = body.get("message") if isinstance(body, dict) else body
        super().__init__(f"{status}: {message}")
        self.status = status
        self.body = body


class Rest:
    """Requests authenticated like the given kubeconfig (client certificate or token)."""

    def __init__(self, kubeconfig: Path) -> None:
        config = yaml.safe_load(Path(kubeconfig).read_text())
        ctx_name = config["current-context"]
        ctx = next(c["context"] for c in config["contexts"] if c["name"] == ctx_name)
        cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == ctx["cluster"])
        user = next(u["user"] for u in config["users"] if u["name"] == ctx["user"])
        self.server = cluster["server"]
        self.headers = {"Accept": "application/json"}
        if "token" in user:
            self.headers["Authorization"] = f"Bearer {user['token']}"
        self.pool = urllib3.PoolManager(
            num_pools=4,
            maxsize=8,
            ca_certs=cluster["certificate-authority"],
            cert_file=user.get("client-certificate"),
            key_file=user.get("client-key"),
            retries=False,
        )

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
        timeout: float = 30.0,
    ) -> Any:
        url = self.server + path + (f"?{urlencode(params)}" if params else "")
        headers = dict(self.headers)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = content_type
        answer = self.pool.request(method, url, body=data, headers=headers, timeout=timeout)
        decoded = json.loads(answer.data) if answer.data else None
        if answer.status >= 300:
            raise ApiError(answer.status, decoded)
        return decoded

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params or None)

    def watch(self, path: str, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        """Watch events ({"type", "object"}) until the server ends the stream."""
        query = urlencode({**params, "watch": "true", "allowWatchBookmarks": "true"})
        answer = self.pool.request(
            "GET",
            f"{self.server}{path}?{query}",
            headers=self.headers,
            preload_content=False,
            timeout=urllib3.Timeout(connect=10, read=None),
        )
        try:
            if answer.status >= 300:
                raise ApiError(answer.status, answer.data.decode(errors="replace"))
            buffer = b""
            for chunk in answer.stream(64 * 1024, decode_content=True):
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield json.loads(line)
        finally:
            answer.release_conn()
