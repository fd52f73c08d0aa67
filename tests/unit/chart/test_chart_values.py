"""values.yaml and values.schema.json come from the model; the chart follows the package."""

from __future__ import annotations

import subprocess
import sys
import tomllib

import pytest
import yaml
from kubetrain_chart import CHART, ROOT, helm, values_args

from kubetrain_operator.chart_values import ChartValues, default_values


def test_generated_files_are_up_to_date() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "hack" / "chart" / "generate.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_values_yaml_holds_the_model_defaults() -> None:
    assert yaml.safe_load((CHART / "values.yaml").read_text()) == default_values()
    ChartValues.model_validate(default_values())


def test_chart_version_follows_the_package() -> None:
    package = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["version"] == package
    assert chart["appVersion"] == package


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"watchNamespace": ["a"]}, "watchNamespace"),
        ({"watchNamespaces": "a"}, "watchNamespaces"),
        ({"ports": {"metrics": 70000}}, "metrics"),
        ({"image": {"pullPolicy": "Sometimes"}}, "pullPolicy"),
        ({"metrics": {"serviceMonitor": {"enabled": "yes"}}}, "enabled"),
    ],
)
def test_schema_rejects_bad_values(values: dict, complaint: str) -> None:
    done = helm("template", "x", str(CHART), *values_args(values), check=False)
    assert done.returncode != 0
    assert complaint in done.stderr
