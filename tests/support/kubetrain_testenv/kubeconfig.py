"""Kubeconfig documents (pure: dicts in, dicts out)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def render_kubeconfig(
    server: str,
    ca_file: Path,
    user: str,
    *,
    token: str | None = None,
    client_cert: Path | None = None,
    client_key: Path | None = None,
    namespace: str | None = None,
) -> dict[str, Any]:
    """A one-cluster, one-user kubeconfig authenticating by token or client certificate."""
    if (token is None) == (client_cert is None):
        raise ValueError("give exactly one of token or client_cert")
    credentials: dict[str, Any] = (
        {"token": token}
        if token is not None
        else {"client-certificate": str(client_cert), "client-key": str(client_key)}
    )
    context: dict[str, Any] = {"cluster": "testenv", "user": user}
    if namespace:
        context["namespace"] = namespace
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "testenv",
                "cluster": {"server": server, "certificate-authority": str(ca_file)},
            }
        ],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": "testenv", "context": context}],
        "current-context": "testenv",
    }


def write_kubeconfig(path: Path, config: dict[str, Any]) -> Path:
    """Write `config` as YAML readable only by its owner (it holds credentials)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
