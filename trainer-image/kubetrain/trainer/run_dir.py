"""The run directory: resolved spec, final model with preprocessing state, and loading it back."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from kubetrain.api.job import TrainingJob
from kubetrain.api.status import Plan
from kubetrain.data.shapes import DataShapes


def default_run_dir(job: TrainingJob, given: str | None) -> Path:
    """--run-dir, else KUBETRAIN_RUN_DIR (pods), else runs/<metadata.name>."""
    return Path(given or os.environ.get("KUBETRAIN_RUN_DIR") or Path("runs") / job.metadata.name)


def job_yaml(job: TrainingJob) -> str:
    """The resolved TrainingJob: every default filled in."""
    return yaml.safe_dump(job.to_yaml_dict(), sort_keys=False)


def write_resolved(run_dir: Path, job: TrainingJob, plan: Plan) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "job.yaml").write_text(job_yaml(job))
    (run_dir / "plan.json").write_text(json.dumps(plan.to_yaml_dict(), indent=2) + "\n")


def save_final_model(run_dir: Path, job: TrainingJob, state_dict: dict[str, Any],
                     preprocessing: dict[str, Any], shapes: DataShapes,
                     summary: dict[str, Any]) -> Path:
    """model/: weights, preprocessing state, the job and what the model was built for."""
    out = run_dir / "model"
    tmp = run_dir / ".model.tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    torch.save(state_dict, tmp / "model.pt")
    (tmp / "preprocessing.json").write_text(json.dumps(preprocessing))
    (tmp / "job.yaml").write_text(job_yaml(job))
    meta = {"shapes": shapes.__dict__, **summary}
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2, default=list) + "\n")
    if out.exists():
        import shutil

        shutil.rmtree(out)
    os.replace(tmp, out)
    return out


@dataclass
class TrainedModel:
    """A trained run loaded back: the model in eval mode and what it needs to be used."""

    job: TrainingJob
    model: nn.Module
    preprocessing: dict[str, Any]
    shapes: DataShapes
    run_dir: Path
    meta: dict[str, Any]

    @property
    def base(self) -> Path | None:
        """The job file's directory, against which relative data paths resolve."""
        return Path(self.meta["base"]) if self.meta.get("base") else None


def load_trained(run_dir: str | Path, device: str | torch.device = "cpu") -> TrainedModel:
    """One call from a run directory to a usable model (for eval, sample, inference)."""
    from kubetrain.models.registry import build_model

    path = Path(run_dir) / "model"
    if not (path / "model.pt").is_file():
        raise FileNotFoundError(f"{run_dir}: no trained model (model/model.pt);"
                                " did the run finish?")
    job = TrainingJob.model_validate(yaml.safe_load((path / "job.yaml").read_text()))
    meta = json.loads((path / "meta.json").read_text())
    s = meta["shapes"]
    shapes = DataShapes(s["task"], tuple(s["input_shape"]), s["num_outputs"], s.get("seq_len"))
    spec_model = job.spec.model.model_copy(update={"init_from": None})
    model = build_model(spec_model, shapes)
    model.load_state_dict(torch.load(path / "model.pt", map_location=device, weights_only=True))
    model.to(device).eval()
    prep = json.loads((path / "preprocessing.json").read_text())
    return TrainedModel(job, model, prep, shapes, Path(run_dir), meta)
