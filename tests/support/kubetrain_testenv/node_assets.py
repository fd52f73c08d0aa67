"""Locating (and building once) what a real node needs: packages, binaries and images."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from .assets import REPO_ROOT, AssetsError
from .real_node import Image, parse_images

INSTALL_SCRIPT = REPO_ROOT / "hack" / "node" / "install.sh"
BUILD_SCRIPT = REPO_ROOT / "hack" / "node" / "build.sh"
IMAGES_SCRIPT = REPO_ROOT / "hack" / "images" / "build.sh"
NODE_BINARIES = ("kubelet", "kube-proxy", "kube-scheduler", "coredns")


def _run(script: Path, *args: str, timeout: float = 3600) -> str:
    try:
        done = subprocess.run(
            ["bash", str(script), *args], capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as exc:
        raise AssetsError(f"{script} timed out after {timeout:.0f}s") from exc
    if done.returncode != 0:
        raise AssetsError(f"{script} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return done.stdout


def ensure_node_binaries() -> Path:
    """$KUBETRAIN_NODE_BIN if it holds the node's binaries (hack/test.sh sets it), else what
    hack/node/install.sh + hack/node/build.sh give (each builds once, then is a no-op)."""
    given = os.environ.get("KUBETRAIN_NODE_BIN")
    if given and all((Path(given) / b).is_file() for b in NODE_BINARIES):
        return Path(given)
    _run(INSTALL_SCRIPT)
    return Path(_run(BUILD_SCRIPT).strip().splitlines()[-1])


def ensure_images(*names: str) -> dict[str, Image]:
    """The images by name: from $KUBETRAIN_IMAGES (a file holding hack/images/build.sh's
    output; hack/test.sh writes it) if it lists them all, else built by that script."""
    wanted = names or ("pause", "operator", "trainer")
    given = os.environ.get("KUBETRAIN_IMAGES")
    if given and Path(given).is_file():
        images = parse_images(Path(given).read_text())
        if all(n in images for n in wanted):
            return {n: images[n] for n in wanted}
    _run(INSTALL_SCRIPT)
    return parse_images(_run(IMAGES_SCRIPT, *wanted))
