"""Locating (and building once) the control plane's binaries."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
BUILD_SCRIPT = REPO_ROOT / "hack" / "control-plane" / "build.sh"
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl", "helm")


class AssetsError(RuntimeError):
    """The binaries could not be built or found."""


def run_script(script: Path, *args: str, timeout: float = 3600) -> str:
    """stdout of `bash SCRIPT ARGS`; AssetsError (with its stderr's tail) when it fails."""
    try:
        done = subprocess.run(
            ["bash", str(script), *args], capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as exc:
        raise AssetsError(f"{script} timed out after {timeout:.0f}s") from exc
    if done.returncode != 0:
        raise AssetsError(
            f"{script} failed with exit code {done.returncode}:\n{done.stderr[-4000:]}"
        )
    return done.stdout


def built_path(script: Path, timeout: float = 3600) -> Path:
    """The path a hack/*/build.sh prints last (it builds once, then is a no-op)."""
    return Path(run_script(script, timeout=timeout).strip().splitlines()[-1])


def ensure_assets(timeout: float = 3600) -> Path:
    """The binaries' directory: $KUBETRAIN_ASSETS if it holds them (hack/test.sh sets it),
    else what hack/control-plane/build.sh prints."""
    given = os.environ.get("KUBETRAIN_ASSETS")
    if given and all((Path(given) / b).is_file() for b in BINARIES):
        return Path(given)
    assets = built_path(BUILD_SCRIPT, timeout)
    missing = [b for b in BINARIES if not (assets / b).is_file()]
    if missing:
        raise AssetsError(f"{assets} lacks {', '.join(missing)}")
    return assets
