"""The whole product on kind: images built and loaded, chart installed, example Succeeded."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(3600)]

SCRIPT = Path(__file__).with_name("run.sh")


def test_cpu_example_succeeds_on_kind() -> None:
    done = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=3500)
    assert done.returncode == 0, f"{SCRIPT} failed:\n{done.stdout[-8000:]}\n{done.stderr[-8000:]}"
    assert "e2e passed" in done.stdout
