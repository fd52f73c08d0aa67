"""Rendering the kubetrain chart with the helm binary that hack/control-plane/build.sh builds."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "kubetrain"
RELEASE = "kubetrain"
NAMESPACE = "kubetrain-system"

# Value sets the tests render: the defaults and every switch away from them.
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "namespaced": {"watchNamespaces": ["team-a", "team-b"]},
    "metrics-off": {"metrics": {"enabled": False}, "admissionPolicy": {"enabled": False}},
    "monitoring": {
        "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}},
        "dashboard": {"enabled": True},
    },
}


def helm_binary() -> Path:
    from kubetrain_testenv.assets import ensure_assets

    return ensure_assets() / "helm"


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(helm_binary()), *args], capture_output=True, text=True)
    if check and done.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done


def values_args(values: Mapping[str, Any]) -> list[str]:
    """Values as `--set-json` flags, one per top-level key (exact types, no file)."""
    return [a for k, v in values.items() for a in ("--set-json", f"{k}={json.dumps(v)}")]


def template(
    values: Mapping[str, Any] | None = None, namespace: str = NAMESPACE, *extra: str
) -> str:
    """`helm template` output for `values`."""
    args = ["template", RELEASE, str(CHART), "--namespace", namespace, *extra]
    return helm(*args, *values_args(values or {})).stdout


def render(values: Mapping[str, Any] | None = None, *extra: str) -> list[dict[str, Any]]:
    """The rendered manifests as objects (CRDs not included)."""
    return [d for d in yaml.safe_load_all(template(values, NAMESPACE, *extra)) if d]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]
