"""A trained run as files other tools load.

- hf runs: a directory `transformers.AutoModelFor*.from_pretrained(DIR)` loads (config.json,
  model.safetensors, tokenizer files); LoRA runs write their adapters (adapter_config.json +
  adapter_model.safetensors, naming the base model's directory) unless merged into the weights.
- registry and import models: model.safetensors plus config.json (`"format": "kubetrain"`) with
  the model spec, the data shapes, the fitted preprocessing and the job, which `kubetrain
  sample/eval` and `load_exported` (docs/export.md: a ten-line snippet) read back; a bpe or
  pretrained tokenizer also as tokenizer.json (as in the run's model/), for tools that load one.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kubetrain.errors import InvalidJob
from kubetrain.trainer.run_dir import TrainedModel, load_trained

FORMAT = "kubetrain"


def export(trained: TrainedModel, out: Path, *, merge_lora: bool = False) -> list[str]:
    """Write the export directory (replacing one that exists); the names of the files."""
    from kubetrain.models.hf import HFModel

    if out.exists() and any(out.iterdir()):
        if not ((out / "config.json").is_file() or (out / "adapter_config.json").is_file()):
            raise InvalidJob(f"-o {out}: a directory with other files in it; name a new or an"
                             " earlier export directory")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    if isinstance(trained.model, HFModel):
        _export_hf(trained, trained.model, out, merge_lora)
    else:
        if merge_lora:
            raise InvalidJob("--merge-lora: this run has no LoRA adapters (model type"
                             f" {trained.job.spec.model.type or 'import'})")
        _export_registry(trained, out)
    return sorted(p.name for p in out.iterdir())


def _export_hf(trained: TrainedModel, model: nn.Module, out: Path, merge: bool) -> None:
    from kubetrain.models.hf import HFModel, tokenizer_for

    assert isinstance(model, HFModel)
    hf: Any = model.hf
    if model.lora:
        if merge:
            hf = hf.merge_and_unload()
    elif merge:
        raise InvalidJob("--merge-lora: this run trained the full model (no LoRA adapters)")
    target = trained.preprocessing.target if hasattr(trained.preprocessing, "target") else None
    cfg = (hf.get_base_model() if model.lora and not merge else hf).config
    if target is not None and model.task == "sequenceClassification":
        cfg.id2label = dict(enumerate(target.classes))
        cfg.label2id = {c: i for i, c in enumerate(target.classes)}
    hf.save_pretrained(out, safe_serialization=True)
    a = trained.job.spec.model.hf
    assert a is not None
    tok = tokenizer_for(a, trained.base, required=False)
    hf_json = getattr(getattr(trained.preprocessing, "tokenizer", None), "hf_json", "")
    if tok is None and hf_json:  # a text dataset's bpe/pretrained tokenizer, in HF's format
        from tokenizers import Tokenizer
        from transformers import PreTrainedTokenizerFast

        tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(hf_json))
    if tok is not None:
        tok.save_pretrained(out)


def _export_registry(trained: TrainedModel, out: Path) -> None:
    from safetensors.torch import save_model

    from kubetrain.data.text import write_tokenizer_file

    save_model(trained.model, str(out / "model.safetensors"))  # tied weights stored once
    write_tokenizer_file(out, getattr(trained.preprocessing, "tokenizer", None))
    job = trained.job
    config = {
        "format": FORMAT,
        "model": job.spec.model.model_copy(update={"init_from": None}).to_yaml_dict(),
        "shapes": trained.shapes.__dict__,
        "preprocessing": json.loads((trained.run_dir / "model" / "preprocessing.json")
                                    .read_text()),
        "job": job.to_yaml_dict(),
        "base": trained.meta.get("base", ""),
    }
    (out / "config.json").write_text(json.dumps(config, indent=2, default=list) + "\n")


def is_export(path: Path) -> bool:
    cfg = path / "config.json"
    if not cfg.is_file():
        return False
    try:
        return json.loads(cfg.read_text()).get("format") == FORMAT
    except (ValueError, AttributeError):
        return False


def load_exported(path: str | Path) -> nn.Module:
    """The model of a registry export directory, in eval mode (docs/export.md)."""
    from safetensors.torch import load_model

    from kubetrain.api.model import ModelSpec
    from kubetrain.data.shapes import DataShapes
    from kubetrain.models import build_model

    cfg = json.loads((Path(path) / "config.json").read_text())
    s = cfg["shapes"]
    model = build_model(ModelSpec.model_validate(cfg["model"]),
                        DataShapes(s["task"], tuple(s["input_shape"]), s["num_outputs"],
                                   s.get("seq_len")))
    load_model(model, str(Path(path) / "model.safetensors"))
    return model.eval()


def load_any(path: str | Path) -> TrainedModel:
    """A run directory or a registry export directory, as kubetrain sample/eval use it."""
    p = Path(path)
    if not is_export(p):
        return load_trained(p)
    from kubetrain.api.job import TrainingJob
    from kubetrain.data.shapes import DataShapes
    from kubetrain.preprocessing.state import state_from_dict

    cfg = json.loads((p / "config.json").read_text())
    s = cfg["shapes"]
    try:
        job = TrainingJob.model_validate(cfg["job"])
        prep = state_from_dict(cfg["preprocessing"])
    except Exception as e:  # a damaged or hand-edited config.json
        raise InvalidJob(f"{p / 'config.json'}: damaged or not written by this version"
                         f" ({type(e).__name__})") from None
    shapes = DataShapes(s["task"], tuple(s["input_shape"]), s["num_outputs"], s.get("seq_len"))
    return TrainedModel(job, load_exported(p), prep, shapes, p, {"base": cfg.get("base", "")})


def logits(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """The model's output for token ids, with or without kubetrain's wrapper."""
    with torch.no_grad():
        return model(ids)
