"""Finding and running the helm binary that hack/control-plane/build.sh builds."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def assets_dir() -> Path:
    """$KUBETRAIN_ASSETS, else what build.sh prints (a no-op when its cache is warm)."""
    if os.environ.get("KUBETRAIN_ASSETS"):
        return Path(os.environ["KUBETRAIN_ASSETS"])
    out = subprocess.run(
        ["bash", str(ROOT / "hack" / "control-plane" / "build.sh")],
        check=True,
        capture_output=True,
        text=True,
    )
    return Path(out.stdout.strip().splitlines()[-1])


def helm(*args: str, env: dict[str, str] | None = None) -> str:
    """Run helm; raise with its stderr on failure."""
    done = subprocess.run(
        [str(assets_dir() / "helm"), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    if done.returncode != 0:
        raise RuntimeError(f"helm {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout
