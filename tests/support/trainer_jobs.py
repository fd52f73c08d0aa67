"""Small TrainingJobs for the trainer's tests, built from dicts (camelCase, like YAML)."""

from __future__ import annotations

import copy
from typing import Any

from kubetrain.api.job import TrainingJob

SHAKESPEARE = "../shared/data/tinyshakespeare/input.txt"


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    if "type" in over and over["type"] != base.get("type"):
        return {k: v for k, v in over.items() if v is not None}  # another kind: replace whole
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return {k: v for k, v in out.items() if v is not None}


def job_dict(spec: dict[str, Any] | None = None, name: str = "t") -> dict[str, Any]:
    base = {
        "dataset": {
            "type": "synthetic",
            "synthetic": {"task": "classification", "samples": 512, "features": 8, "classes": 3},
        },
        "model": {"type": "mlp", "mlp": {"hidden": [16]}},
        "training": {"maxSteps": 10, "globalBatchSize": 16, "logging": {"everySteps": 5}},
    }
    return {
        "apiVersion": "kubetrain.io/v1alpha1",
        "kind": "TrainingJob",
        "metadata": {"name": name},
        "spec": merge(base, spec or {}),
    }


def make_job(spec: dict[str, Any] | None = None, name: str = "t") -> TrainingJob:
    return TrainingJob.model_validate(job_dict(spec, name))
