"""The Dockerfiles run the commands the tests exercise: same entry points, same pinned versions.

There is no Docker engine on CI machines, so the images are checked here by what they run:
the wheel their build stage makes, the entry points, the user, and the pins.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
import zipfile
from importlib.metadata import version
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IMAGES = {
    "trainer": (ROOT / "trainer-image" / "Dockerfile", ROOT / "trainer-image" / "constraints.txt"),
    "operator": (ROOT / "operator" / "Dockerfile", ROOT / "operator" / "constraints.txt"),
}


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1]) for ln in lines]


def _final_stage(dockerfile: Path) -> list[tuple[str, str]]:
    steps = _instructions(dockerfile)
    last_from = max(i for i, (op, _) in enumerate(steps) if op == "FROM")
    return steps[last_from:]


@pytest.mark.parametrize("name", IMAGES)
def test_image_runs_as_a_non_root_user(name) -> None:
    users = [arg for op, arg in _final_stage(IMAGES[name][0]) if op == "USER"]
    assert users, f"{name} image sets no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) > 0, "a numeric non-root uid (runAsNonRoot can check it)"


def _arg_defaults(dockerfile: Path) -> dict[str, str]:
    return dict(
        arg.split("=", 1) for op, arg in _instructions(dockerfile) if op == "ARG" and "=" in arg
    )


@pytest.mark.parametrize("name", IMAGES)
def test_base_images_are_pinned(name) -> None:
    """FROM names the official Python image by default (a build argument, so that machines
    without a registry can pass a local base: hack/images/build.sh)."""
    defaults = _arg_defaults(IMAGES[name][0])
    froms = [arg.split()[0] for op, arg in _instructions(IMAGES[name][0]) if op == "FROM"]
    assert froms
    for image in froms:
        image = re.sub(r"\$\{(\w+)\}", lambda m: defaults[m.group(1)], image)
        assert image.startswith("python:3.11"), image
        assert re.search(r":\d+\.\d+\.\d+", image), f"{image} is not pinned to a version"


@pytest.mark.parametrize("name", IMAGES)
def test_pins_are_the_versions_the_tests_run_against(name) -> None:
    for line in IMAGES[name][1].read_text().splitlines():
        if line and not line.startswith("#"):
            package, pinned = line.split("==")
            assert version(package) == pinned, (
                f"{name} image pins {line}; tests run {version(package)}"
            )


def test_operator_image_has_no_torch() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert not any(dep.startswith("torch") for dep in extras["operator"])
    assert "torch" not in IMAGES["operator"][1].read_text()
    assert "[operator]" in IMAGES["operator"][0].read_text()


def test_entry_points_match_the_contract() -> None:
    trainer = dict(_final_stage(IMAGES["trainer"][0]))
    assert trainer["ENTRYPOINT"] == '["kubetrain"]'
    assert trainer["CMD"] == '["run", "/etc/kubetrain/job.yaml"]'
    operator = dict(_final_stage(IMAGES["operator"][0]))
    assert operator["ENTRYPOINT"] == '["python", "-m", "kubetrain_operator"]'


def test_the_build_stage_wheel_holds_both_packages_and_the_cli(tmp_path) -> None:
    # The same command as the Dockerfiles' build stage.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "--wheel-dir",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("kubetrain-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "kubetrain/api/spec.py" in names
    assert "kubetrain_operator/__init__.py" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert (
        "kubetrain = kubetrain.cli.main:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
    )
    assert not any(n.startswith(("tests/", "kubetrain_testenv/")) for n in names)
