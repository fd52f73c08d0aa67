"""Locating (and building once) what a real node needs: packages, binaries and images."""

from __future__ import annotations

import os
from pathlib import Path

from .assets import REPO_ROOT, built_path, run_script
from .real_node import Image, parse_images

INSTALL_SCRIPT = REPO_ROOT / "hack" / "node" / "install.sh"
BUILD_SCRIPT = REPO_ROOT / "hack" / "node" / "build.sh"
IMAGES_SCRIPT = REPO_ROOT / "hack" / "images" / "build.sh"
NODE_BINARIES = ("kubelet", "kube-proxy", "kube-scheduler", "coredns")


def ensure_node_binaries() -> Path:
    """$KUBETRAIN_NODE_BIN if it holds the node's binaries (hack/test.sh sets it), else what
    hack/node/install.sh + hack/node/build.sh give (each builds once, then is a no-op)."""
    given = os.environ.get("KUBETRAIN_NODE_BIN")
    if given and all((Path(given) / b).is_file() for b in NODE_BINARIES):
        return Path(given)
    run_script(INSTALL_SCRIPT)
    return built_path(BUILD_SCRIPT)


def ensure_images(*names: str) -> dict[str, Image]:
    """The images by name: from $KUBETRAIN_IMAGES (a file holding hack/images/build.sh's
    output; hack/test.sh writes it) if it lists them all, else built by that script."""
    wanted = names or ("pause", "operator", "trainer")
    given = os.environ.get("KUBETRAIN_IMAGES")
    if given and Path(given).is_file():
        images = parse_images(Path(given).read_text())
        if all(n in images for n in wanted):
            return {n: images[n] for n in wanted}
    run_script(INSTALL_SCRIPT)
    return parse_images(run_script(IMAGES_SCRIPT, *wanted))
