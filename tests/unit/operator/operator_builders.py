"""Short builders for the operator's pure functions (no cluster, no mocks)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from kubetrain.api.spec import TrainingJobSpec
from kubetrain.api.status import TrainingJobStatus
from kubetrain_operator.decision import JobState
from kubetrain_operator.names import JobMeta
from kubetrain_operator.observe import ObservedPod, format_time

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
BASE_SPEC: dict[str, Any] = {
    "image": "ghcr.io/kubetrain/trainer:0.1.0",
    "dataset": {"type": "synthetic", "synthetic": {"task": "regression", "samples": 1000}},
    "model": {"type": "mlp", "mlp": {"hidden": [8]}},
    "training": {"maxSteps": 100, "globalBatchSize": 16},
    "parallelism": {"nodes": 2, "procsPerNode": 1, "backend": "gloo"},
}


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in override.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def spec(**override: Any) -> TrainingJobSpec:
    return TrainingJobSpec.model_validate(merge(BASE_SPEC, override))


def meta(name: str = "demo", **annotations: str) -> JobMeta:
    return JobMeta(name, "ns", "uid-1", 1, tuple(sorted(annotations.items())))


def ago(seconds: float) -> str:
    return format_time(NOW - timedelta(seconds=seconds))


def cond(type_: str, status: str = "True", reason: str = "", since: float = 100) -> dict[str, Any]:
    return {"type": type_, "status": status, "reason": reason, "message": "",
            "lastTransitionTime": ago(since)}  # fmt: skip


def job(phase: str | None = None, spec_: TrainingJobSpec | None = None, **status: Any) -> JobState:
    s = dict(status)
    if phase:
        s["phase"] = phase
        s.setdefault("reason", "Same")
        s.setdefault("observedGeneration", 1)
    return JobState("demo", 1, spec_ or spec(), TrainingJobStatus.model_validate(s))


def pod(
    index: int, phase: str = "Running", gen: int = 0, age: float = 30, **fields: Any
) -> ObservedPod:
    running = fields.pop("running", phase == "Running")
    return ObservedPod(
        name=f"demo-worker-{index}", uid=f"u{gen}-{index}", index=index, generation=gen,
        phase=phase, running=running, created=NOW - timedelta(seconds=age), **fields,
    )  # fmt: skip
