"""Builders for the small objects tests create (pure)."""

from __future__ import annotations

from typing import Any


def python_container(name: str, code: str, image: str, **fields: Any) -> dict[str, Any]:
    """A container running `python -c code` in `image`, a local image with python on PATH
    (a real node's `images["trainer"].ref` or `["operator"].ref`): never pulled (no registry)."""
    return {
        "name": name,
        "image": image,
        "imagePullPolicy": "Never",
        "command": ["python", "-c", code],
        **fields,
    }


def python_pod(
    name: str,
    code: str,
    restart_policy: str = "Never",
    container: dict[str, Any] | None = None,
    **spec: Any,
) -> dict[str, Any]:
    """A one-container pod running `python -c code`; `container` must name its `image`
    (see python_container) and may add container fields, `spec` adds pod spec fields."""
    main = python_container("main", code, **(container or {}))
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"restartPolicy": restart_policy, "containers": [main], **spec},
    }
