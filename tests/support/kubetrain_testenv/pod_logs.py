"""Where the node agent writes containers' output: <agent dir>/logs/<ns>/<pod>/<container>.log.

A container's log is appended to across its restarts and truncated when a new pod
(new UID) with the same name starts.
"""

from __future__ import annotations

from pathlib import Path


def pod_log_dir(agent_dir: Path, namespace: str, name: str) -> Path:
    return agent_dir / "logs" / namespace / name


def pod_log_path(agent_dir: Path, namespace: str, name: str, container: str | None) -> Path:
    """The log file of `container`; with None, the pod's only container's (error if several)."""
    directory = pod_log_dir(agent_dir, namespace, name)
    if container is not None:
        return directory / f"{container}.log"
    logs = sorted(directory.glob("*.log")) if directory.is_dir() else []
    if len(logs) > 1:
        names = ", ".join(p.stem for p in logs)
        raise ValueError(f"pod {namespace}/{name} has several containers ({names}); name one")
    return logs[0] if logs else directory / "missing.log"
