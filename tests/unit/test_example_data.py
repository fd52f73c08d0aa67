"""The data files the examples read are checked in, and are exactly what their generator makes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[2] / "examples" / "data"
FILES = ["regression.csv", "classification.csv", "shapes.npz"]


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("example-data")
    subprocess.run(
        [sys.executable, str(DATA / "make_examples.py"), str(out)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return out


@pytest.mark.parametrize("name", FILES)
def test_checked_in_file_equals_the_generator_output(regenerated, name) -> None:
    assert (DATA / name).read_bytes() == (regenerated / name).read_bytes(), (
        f"examples/data/{name} is stale: run `python examples/data/make_examples.py`"
    )
