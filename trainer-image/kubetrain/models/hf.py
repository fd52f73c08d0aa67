"""Hugging Face transformers models: load or build, freeze or add LoRA adapters, wrap for the loop.

`HFModel` is what the trainer trains: token ids (B, T) in, logits out (B, T, vocab) for a causal
LM, (B, labels) for a sequence classifier. Everything transformers- or peft-specific stays here
(and in models/hf_source.py for where the files come from).
"""

from __future__ import annotations

import fnmatch
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kubetrain.api.model import HFArgs, LoRAArgs
from kubetrain.data.shapes import DataShapes
from kubetrain.errors import InvalidJob
from kubetrain.models.hf_source import load_config, load_tokenizer, model_dir

_CLASSIFIER_HEADS = ("score", "classifier")


class HFModel(nn.Module):
    """A transformers model (possibly inside a peft LoRA wrapper) returning plain logits."""

    def __init__(self, model: nn.Module, task: str, pad_id: int | None, lora: bool,
                 from_source: bool):
        super().__init__()
        self.hf = model
        self.task, self.pad_id, self.lora = task, pad_id, lora
        self.frozen_from_source = from_source
        self._checkpointing = False
        """Frozen weights come back from the model directory on every start, so checkpoints
        leave them out (trainer/state.py ModelWeights)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = None
        if self.task == "sequenceClassification" and self.pad_id is not None:
            mask = (x != self.pad_id).long()  # encoders attend both ways: pads must be masked
        # Causal LMs get right-padded batches: no real token attends to a later pad.
        return self.hf(input_ids=x, attention_mask=mask, use_cache=False).logits

    @property
    def activation_checkpointing(self) -> bool:
        return self._checkpointing

    @activation_checkpointing.setter
    def activation_checkpointing(self, enabled: bool) -> None:
        base: Any = self.base
        kwargs = {"use_reentrant": False}
        if hasattr(base, "activation_checkpointing_enable"):  # transformers 5 names
            on, off = base.activation_checkpointing_enable, base.activation_checkpointing_disable
            if enabled:
                on(activation_checkpointing_kwargs=kwargs)
        else:
            on, off = base.gradient_checkpointing_enable, base.gradient_checkpointing_disable
            if enabled:
                on(gradient_checkpointing_kwargs=kwargs)
        if not enabled and self._checkpointing:
            off()
        self._checkpointing = enabled

    @property
    def base(self) -> nn.Module:
        """The transformers model (under peft's wrappers when LoRA is on)."""
        m = self.hf
        if self.lora:
            m = m.get_base_model()  # type: ignore[operator]
        return m

    def fsdp_blocks(self) -> list[nn.Module]:
        """The decoder (or encoder) layers, each its own FSDP2 unit: the classes transformers
        itself names as never to be split (`_no_split_modules`)."""
        names = set(getattr(self.base, "_no_split_modules", None) or ())
        return [m for m in self.base.modules() if type(m).__name__ in names]

    def flops_per_token(self) -> float:
        return 6.0 * sum(p.numel() for p in self.parameters())

    def trainable_names(self) -> set[str]:
        return {n for n, p in self.named_parameters() if p.requires_grad}


def parameter_counts(model: nn.Module) -> tuple[int, int]:
    """(total, trainable), tied weights once."""
    seen: set[int] = set()
    total = trainable = 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        if p.requires_grad:
            trainable += p.numel()
    return total, trainable


def build_hf(a: HFArgs, shapes: DataShapes, base: Path | None, *, weights: bool = True
             ) -> HFModel:
    """The model the spec names, for data of these shapes; `weights=False` builds the
    architecture only (on whatever device is current, e.g. meta, for counts and checks)."""
    import transformers

    transformers.utils.logging.disable_progress_bar()  # one line per run, not a bar per load
    cfg = hf_config(a, shapes, base)
    auto = (transformers.AutoModelForCausalLM if a.task == "causalLM"
            else transformers.AutoModelForSequenceClassification)
    try:
        if a.path is not None and weights:
            model = auto.from_pretrained(str(model_dir(a.path, base)), config=cfg,
                                         dtype=torch.float32)
        else:
            model = auto.from_config(cfg, dtype=torch.float32)
    except ValueError as e:  # e.g. an architecture without a head for this task
        raise InvalidJob(f"model.hf: {_first_line(e)}") from None
    if a.lora is not None:
        model = add_lora(model, a.lora, a.task)
    elif a.freeze:
        freeze(model, a.freeze)
    return HFModel(model, a.task, getattr(cfg, "pad_token_id", None), a.lora is not None,
                   from_source=a.path is not None)


def hf_config(a: HFArgs, shapes: DataShapes, base: Path | None) -> Any:
    """The transformers config: the directory's (or the architecture's defaults), with the
    spec's overrides and what the data decides (vocabulary, labels, pad token)."""
    cfg = load_config(a, base)
    for k, v in (a.config or {}).items():
        setattr(cfg, k, v)
    vocab = getattr(cfg, "vocab_size", None)
    lm_data = shapes.task == "lm"
    if a.task == "causalLM" and not lm_data:
        raise InvalidJob("model.hf.task causalLM needs token data (dataset type instruct or"
                         " text); use sequenceClassification for labelled rows")
    if a.task == "sequenceClassification" and shapes.task != "classification":
        raise InvalidJob(f"model.hf.task sequenceClassification needs class labels; the data is"
                         f" for {shapes.task}")
    if lm_data:
        if a.architecture is not None and "vocab_size" not in (a.config or {}):
            cfg.vocab_size = vocab = shapes.num_outputs  # from scratch: the tokenizer's size
        if vocab is not None and shapes.num_outputs > vocab:
            raise InvalidJob(f"model.hf: the tokenizer has {shapes.num_outputs} tokens but the"
                             f" model's embeddings hold {vocab}; use the model's own tokenizer"
                             " or raise config.vocab_size")
        limit = getattr(cfg, "max_position_embeddings", None)
        if limit is not None and shapes.seq_len and shapes.seq_len > limit:
            raise InvalidJob(f"the sequence length {shapes.seq_len} exceeds the model's context"
                             f" (max_position_embeddings {limit}); lower the dataset's maxLength"
                             " or preprocessing.text.seqLen")
    else:
        cfg.num_labels = shapes.num_outputs
    if getattr(cfg, "pad_token_id", None) is None:
        tok = tokenizer_for(a, base, required=False)
        pad = None if tok is None else (tok.pad_token_id if tok.pad_token_id is not None
                                        else tok.eos_token_id)
        cfg.pad_token_id = pad
    return cfg


def tokenizer_for(a: HFArgs, base: Path | None, *, required: bool = True) -> Any:
    """The model's tokenizer (hf.tokenizer, else the model directory), or None when a model
    built from an architecture names none and `required` is False."""
    where = a.tokenizer or a.path
    if where is None:
        if required:
            raise InvalidJob("model.hf: a model built from an architecture needs hf.tokenizer"
                             " (a tokenizer directory) for this data")
        return None
    return load_tokenizer(where, base, "model.hf.tokenizer" if a.tokenizer else "model.hf.path")


def add_lora(model: nn.Module, lo: LoRAArgs, task: str) -> nn.Module:
    """peft LoRA adapters on the target modules; every other weight frozen."""
    from peft import LoraConfig, TaskType, get_peft_model

    check_lora_targets(model, lo)
    cfg = LoraConfig(r=lo.rank, lora_alpha=lo.alpha, lora_dropout=lo.dropout,
                     target_modules=lo.target_modules, modules_to_save=lo.trainable or None,
                     task_type=TaskType.CAUSAL_LM if task == "causalLM" else TaskType.SEQ_CLS)
    try:
        with warnings.catch_warnings():  # peft reads an attribute transformers 5 deprecates
            warnings.simplefilter("ignore", FutureWarning)
            return get_peft_model(model, cfg)  # type: ignore[arg-type]
    except ValueError as e:  # peft's own refusal (no default targets for this architecture)
        raise InvalidJob(f"model.hf.lora: {_first_line(e)}") from None


def check_lora_targets(model: nn.Module, lo: LoRAArgs) -> None:
    """Every target and trainable module name exists (listing the names that do)."""
    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules() if n}
    linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules()
                     if isinstance(m, nn.Linear)})
    for field, wanted, known in (("targetModules", lo.target_modules or [], linear),
                                 ("trainable", lo.trainable, sorted(names))):
        missing = [w for w in wanted if w not in (linear if field == "targetModules" else names)]
        if missing:
            raise InvalidJob(f"model.hf.lora.{field}: no module named {', '.join(missing)} in"
                             f" {type(model).__name__} (it has: {', '.join(known)})")


def freeze(model: nn.Module, patterns: list[str]) -> None:
    """requires_grad False for parameters matching any pattern (at least one must match)."""
    hits = 0
    for name, p in model.named_parameters():
        if any(fnmatch.fnmatchcase(name, pat) for pat in patterns):
            p.requires_grad_(False)
            hits += 1
    if not hits:
        sample = ", ".join(n for n, _ in list(model.named_parameters())[:4])
        raise InvalidJob(f"model.hf.freeze {patterns} matches no parameter (names look like:"
                         f" {sample})")


def lora_parameter_count(model: nn.Module, lo: LoRAArgs) -> int:
    """r·(in + out) per adapted linear layer: what LoRA adds (for checks and the docs)."""
    targets = set(lo.target_modules or [])
    return sum(lo.rank * (m.in_features + m.out_features) for n, m in model.named_modules()
               if isinstance(m, nn.Linear) and n.rsplit(".", 1)[-1] in targets)


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__
