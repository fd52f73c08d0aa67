"""The run directory: resolved spec, final model with preprocessing state, and loading it back."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
import yaml
from pydantic import ValidationError
from torch import nn

from kubetrain.api.job import TrainingJob
from kubetrain.api.status import Plan
from kubetrain.data.shapes import DataShapes
from kubetrain.preprocessing.state import PreprocessingState, state_from_dict


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
    preprocessing: PreprocessingState
    shapes: DataShapes
    run_dir: Path
    meta: dict[str, Any]

    @property
    def base(self) -> Path | None:
        """The job file's directory, against which relative data paths resolve."""
        return Path(self.meta["base"]) if self.meta.get("base") else None


def load_trained(run_dir: str | Path, device: str | torch.device = "cpu") -> TrainedModel:
    """One call from a run directory to a usable model (for eval, sample, inference).

    A missing or damaged file of model/ is an InvalidJob naming the file (exit 2)."""
    from kubetrain.models.registry import build_model

    path = Path(run_dir) / "model"
    if not (path / "model.pt").is_file():
        raise FileNotFoundError(f"{run_dir}: no trained model (model/model.pt);"
                                " did the run finish?")
    job = _read(path / "job.yaml", lambda f: TrainingJob.model_validate(
        yaml.safe_load(f.read_text())))
    meta = _read(path / "meta.json", lambda f: json.loads(f.read_text()))
    shapes = _read(path / "meta.json", lambda f: _shapes(meta["shapes"]))
    prep = _read(path / "preprocessing.json",
                 lambda f: state_from_dict(json.loads(f.read_text())))
    spec_model = job.spec.model.model_copy(update={"init_from": None})
    model = build_model(spec_model, shapes, Path(meta["base"]) if meta.get("base") else None)
    weights = _read(path / "model.pt",
                    lambda f: torch.load(f, map_location=device, weights_only=True))
    try:
        model.load_state_dict(weights)
    except (RuntimeError, TypeError, AttributeError) as e:
        from kubetrain.errors import InvalidJob

        detail = [line.strip() for line in str(e).splitlines()[1:2]] or [type(e).__name__]
        raise InvalidJob(f"{path / 'model.pt'}: the weights do not fit the model of"
                         f" {path / 'job.yaml'} ({detail[0][:200]})") from None
    model.to(device).eval()
    return TrainedModel(job, model, prep, shapes, Path(run_dir), meta)


def _shapes(s: dict[str, Any]) -> DataShapes:
    return DataShapes(s["task"], tuple(s["input_shape"]), s["num_outputs"], s.get("seq_len"))


T = TypeVar("T")


def _read(file: Path, parse: Callable[[Path], T]) -> T:
    """parse(file), or an InvalidJob naming the file and what is wrong with it."""
    from kubetrain.errors import InvalidJob

    try:
        return parse(file)
    except InvalidJob as e:
        raise InvalidJob(f"{file}: {e}") from None
    except FileNotFoundError:
        raise InvalidJob(f"{file}: missing; the run directory is incomplete") from None
    except Exception as e:  # a damaged file: whatever the parser raises, the file is to blame
        if isinstance(e, ValidationError) and e.errors():
            err = e.errors()[0]
            why = f"{'.'.join(map(str, err['loc']))}: {err['msg']}"
        else:
            lines = str(e).strip().splitlines()
            why = f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__
        raise InvalidJob(f"{file}: damaged or not written by this version ({why})") from None
