"""Builders for the small objects tests create (pure)."""

from __future__ import annotations

from typing import Any


def python_container(name: str, code: str, **fields: Any) -> dict[str, Any]:
    """A container running `python -c code` (the node agent's PATH finds the venv's python)."""
    return {"name": name, "image": "python", "command": ["python", "-c", code], **fields}


def python_pod(
    name: str,
    code: str,
    restart_policy: str = "Never",
    container: dict[str, Any] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A one-container pod running `python -c code`; `spec` adds pod spec fields."""
    main = python_container("main", code, **(container or {}))
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"restartPolicy": restart_policy, "containers": [main], **spec},
    }
