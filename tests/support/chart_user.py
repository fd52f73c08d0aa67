"""A shell acting as the user of docs/cluster.md, against a test control plane."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubetrain_chart import ROOT

from kubetrain_testenv import ControlPlane


@dataclass
class User:
    """Runs shell commands as a user of docs/cluster.md would: in the clone, helm and
    kubectl from the control plane's build on PATH, KUBECONFIG set, helm's state private."""

    cluster: ControlPlane
    home: Path

    @property
    def env(self) -> dict[str, str]:
        assert self.cluster.assets is not None
        path = f"{self.cluster.assets}:{Path(sys.executable).parent}:{os.environ['PATH']}"
        return {
            **os.environ,
            "PATH": path,
            "KUBECONFIG": str(self.cluster.kubeconfig),
            "XDG_CACHE_HOME": str(self.home / "cache"),
            "XDG_CONFIG_HOME": str(self.home / "config"),
            "XDG_DATA_HOME": str(self.home / "data"),
        }

    def run(self, command: str, timeout: float = 120, check: bool = True) -> str:
        """Run `command`; fail with its output unless it succeeds (when `check`)."""
        done = subprocess.run(
            command, shell=True, cwd=ROOT, env=self.env, capture_output=True, text=True,
            timeout=timeout,
        )  # fmt: skip
        if check and done.returncode != 0:
            pytest.fail(
                f"$ {command}\nexit {done.returncode}\n{done.stdout}\n{done.stderr}",
                pytrace=False,
            )
        return done.stdout + done.stderr

    def popen(self, command: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            command, shell=True, cwd=ROOT, env=self.env, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
