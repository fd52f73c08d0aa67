"""What a checkpoint depends on, so resuming it under a changed spec stops with one clear line.

A checkpoint records the spec fields its saved state depends on (the model's architecture, the
optimizer type, the data's type, split and preprocessing) and the shape of every parameter
(which also catches data that changed under the same spec: another vocabulary, more classes).
Fields that do not change the saved state (lengths, batch sizes, lr, logging, compile,
activation checkpointing) are free to change between a run and its resume.
"""

from __future__ import annotations

from typing import Any

from kubetrain.api.spec import TrainingJobSpec

_MODEL_RUNTIME_KNOBS = {"compile", "activationCheckpointing", "initFrom"}
_SHOWN = 4


def resume_guard(spec: TrainingJobSpec, param_shapes: dict[str, list[int]]) -> dict[str, Any]:
    d = spec.to_yaml_dict()
    fields: dict[str, Any] = {}
    _flatten("spec.model", {k: v for k, v in d["model"].items()
                            if k not in _MODEL_RUNTIME_KNOBS}, fields)
    fields["spec.optimizer.type"] = d["optimizer"]["type"]
    fields["spec.dataset.type"] = d["dataset"]["type"]
    _flatten("spec.dataset.split", d["dataset"].get("split", {}), fields)
    _flatten("spec.preprocessing", d.get("preprocessing", {}), fields)
    return {"spec": fields, "params": param_shapes}


def guard_changes(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """What differs between the guard a checkpoint recorded and the current one ([] = none).

    A checkpoint without a guard (written before guards existed) matches anything.
    """
    if not saved:
        return []
    old, new = saved.get("spec", {}), current.get("spec", {})
    changes = [f"{k} {_show(old.get(k))} → {_show(new.get(k))}"
               for k in sorted(old.keys() | new.keys()) if old.get(k) != new.get(k)]
    if changes:
        return changes
    old_p, new_p = saved.get("params", {}), current.get("params", {})
    return [f"parameter {k} shape {_show(old_p.get(k))} → {_show(new_p.get(k))}"
            for k in sorted(old_p.keys() | new_p.keys()) if old_p.get(k) != new_p.get(k)]


def mismatch_message(checkpoint: str, changes: list[str]) -> str:
    shown = "; ".join(changes[:_SHOWN]) + (f"; and {len(changes) - _SHOWN} more"
                                           if len(changes) > _SHOWN else "")
    return (f"checkpoint {checkpoint} was written for a different job ({shown}): use a new run"
            " directory, or set spec.checkpoint.resume: never to start over in this one")


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}", v, out)
    else:
        out[prefix] = value


def _show(v: Any) -> str:
    return "unset" if v is None else str(v)
