"""`kubetrain validate` through the console script: exit codes and what a person sees."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def kubetrain(*args: str) -> subprocess.CompletedProcess[str]:
    # The console script hack/venv.sh installs beside this interpreter (PATH may lack it).
    exe = Path(sys.executable).parent / "kubetrain"
    assert exe.exists(), "the kubetrain console script is installed by hack/venv.sh"
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=60)


def test_invalid_file_exits_2_with_every_error_and_no_traceback(tmp_path) -> None:
    doc = yaml.safe_load((EXAMPLES / "quickstart.yaml").read_text())
    doc["spec"]["optimizer"]["lerning_rate"] = 0.1
    doc["spec"]["training"]["epochs"] = 2
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(doc, sort_keys=False))
    result = kubetrain("validate", str(bad))
    assert result.returncode == 2
    assert "spec.optimizer.lerning_rate: unknown field (did you mean 'lr'?)" in result.stderr
    assert "spec.training.maxSteps: set exactly one of maxSteps or epochs" in result.stderr
    assert "Traceback" not in result.stderr


def test_valid_file_prints_the_plan_and_set_overrides_it() -> None:
    result = kubetrain(
        "validate",
        str(EXAMPLES / "quickstart.yaml"),
        "--set",
        "spec.parallelism.procsPerNode=2",
        "--set",
        "spec.training.microBatchSize=16",
    )
    assert result.returncode == 0, result.stderr
    assert "global batch 128 = micro 16 × accumulation 4 × world 2" in result.stdout


def test_resolved_yaml_shows_every_default() -> None:
    result = kubetrain("validate", str(EXAMPLES / "quickstart.yaml"), "-o", "yaml")
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    assert resolved["spec"]["parallelism"]["timeoutSeconds"] == 1800
    assert resolved["spec"]["runPolicy"]["maxRestarts"] == 3


def test_cluster_mode_requires_an_image(tmp_path) -> None:
    doc = yaml.safe_load((EXAMPLES / "quickstart.yaml").read_text())
    del doc["spec"]["image"]
    path = tmp_path / "noimage.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert kubetrain("validate", str(path)).returncode == 0
    result = kubetrain("validate", "--cluster", str(path))
    assert result.returncode == 2
    assert "spec.image: required in a cluster" in result.stderr


def test_cluster_mode_requires_a_name(tmp_path) -> None:
    doc = yaml.safe_load((EXAMPLES / "quickstart.yaml").read_text())
    del doc["metadata"]
    path = tmp_path / "noname.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert kubetrain("validate", str(path)).returncode == 0  # `kubetrain run` has a default
    result = kubetrain("validate", "--cluster", str(path))
    assert result.returncode == 2
    assert "metadata.name: required in a cluster" in result.stderr


def test_a_bad_init_container_exits_2_naming_its_path(tmp_path) -> None:
    doc = yaml.safe_load((EXAMPLES / "cpu-cluster.yaml").read_text())
    doc["spec"]["template"]["initContainers"] = [
        {"name": "fetch", "image": "busybox:1.36", "imagePullPolice": "Always"},
        {"name": "fetch", "command": ["true"]},
    ]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(doc, sort_keys=False))
    result = kubetrain("validate", str(bad))
    assert result.returncode == 2
    assert (
        "spec.template.initContainers[0].imagePullPolice: unknown field "
        "(did you mean 'imagePullPolicy'?)" in result.stderr
    )
    assert "spec.template.initContainers[1].image: required field is missing" in result.stderr
    assert "Traceback" not in result.stderr
