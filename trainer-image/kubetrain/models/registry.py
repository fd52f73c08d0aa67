"""Build the network a spec names: a registry architecture or an imported factory."""

from __future__ import annotations

import fnmatch
import importlib
import inspect
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kubetrain.api.model import CNNArgs, GPTArgs, LinearArgs, MLPArgs, ModelSpec
from kubetrain.api.spec import TrainingJobSpec
from kubetrain.data.shapes import DataShapes
from kubetrain.errors import InvalidJob
from kubetrain.models.gpt import GPT
from kubetrain.models.simple import CNN, linear, mlp


def build_model(m: ModelSpec, shapes: DataShapes, base: Path | None = None) -> nn.Module:
    """An initialised (not yet loaded or frozen) model for data of these shapes; an hf model
    comes loaded (and frozen or with LoRA adapters) from its directory, relative to `base`."""
    if m.import_ is not None:
        return _imported(m, shapes)
    if m.hf is not None:
        from kubetrain.models.hf import build_hf

        return build_hf(m.hf, shapes, base, weights=torch.get_default_device().type != "meta")
    args = m.args_block
    if isinstance(args, GPTArgs):
        if shapes.task != "lm":
            raise InvalidJob("model gpt needs token data (dataset type text, or synthetic lm)")
        vocab = args.vocab_size or shapes.num_outputs
        if vocab < shapes.num_outputs:
            raise InvalidJob(f"model.gpt.vocabSize {vocab} is smaller than the tokenizer's"
                             f" vocabulary ({shapes.num_outputs})")
        if shapes.seq_len and shapes.seq_len > args.context:
            raise InvalidJob(f"preprocessing.text.seqLen {shapes.seq_len} exceeds model.gpt.context"
                             f" {args.context}")
        return GPT(args, vocab, m.dropout)
    if shapes.task == "lm":
        raise InvalidJob(f"model {m.type} cannot train on token data; use model gpt")
    if isinstance(args, LinearArgs):
        return linear(args, shapes.input_shape, shapes.num_outputs)
    if isinstance(args, MLPArgs):
        return mlp(args, shapes.input_shape, shapes.num_outputs, m.dropout)
    assert isinstance(args, CNNArgs)
    try:
        return CNN(args, shapes.input_shape, shapes.num_outputs, m.dropout)
    except ValueError as e:
        raise InvalidJob(str(e)) from None


def _imported(m: ModelSpec, shapes: DataShapes) -> nn.Module:
    """Call the factory `module:attr` with args and the data's shapes it asks for.

    Anything that makes the call impossible is the user's to fix (InvalidJob): a module that
    does not import, a name that is not callable, arguments it rejects, a result that is not a
    torch Module.
    """
    where = f"model.import {m.import_}"
    module_name, _, attr = (m.import_ or "").partition(":")
    try:
        factory: Any = importlib.import_module(module_name)
    except Exception as e:  # the user's module: any error while importing it is theirs to fix
        raise InvalidJob(f"{where}: cannot import {module_name}: {_one_line(e)}") from None
    try:
        for part in attr.split("."):
            factory = getattr(factory, part)
    except AttributeError as e:
        raise InvalidJob(f"{where}: {e}") from None
    if inspect.ismodule(factory) or not callable(factory):
        kind = "a module" if inspect.ismodule(factory) else f"a {type(factory).__name__}"
        raise InvalidJob(f"{where} is {kind}, not a factory: name a function or class that"
                         " returns a torch.nn.Module")
    args = m.args or {}
    offered = {"input_shape": shapes.input_shape, "num_outputs": shapes.num_outputs,
               "task": shapes.task, "dropout": m.dropout}
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # some builtins and C types have no signature
        params = {}
    takes_all = any(p.kind is p.VAR_KEYWORD for p in params.values())
    extra = {k: v for k, v in offered.items() if (takes_all or k in params) and k not in args}
    try:
        model = factory(**args, **extra)
    except (TypeError, ValueError) as e:  # arguments it does not take, or values it refuses
        given = ", ".join([*args, *extra]) or "no arguments"
        raise InvalidJob(f"{where} rejected its arguments ({given}): {_one_line(e)};"
                         " fix model.args") from None
    if not isinstance(model, nn.Module):
        raise InvalidJob(f"{where} returned {type(model).__name__}, not a torch.nn.Module")
    if not any(True for _ in model.parameters()):
        raise InvalidJob(f"{where} returned {type(model).__name__}, which has no parameters:"
                         " there is nothing to train")
    return model


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def set_activation_checkpointing(model: nn.Module, enabled: bool) -> None:
    if hasattr(model, "activation_checkpointing"):
        model.activation_checkpointing = enabled


def report_parameters(model: nn.Module) -> None:
    """One line on stderr: total and trainable parameters (tied weights once)."""
    import sys

    seen: set[int] = set()
    total = trainable = 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
            trainable += p.numel() if p.requires_grad else 0
    print(f"kubetrain: model has {total:,} parameters, {trainable:,} trainable"
          f" ({100 * trainable / max(total, 1):.2f}%)", file=sys.stderr)


def load_initial_weights(model: nn.Module, m: ModelSpec, base: Path | None = None) -> None:
    """initFrom: load weights (a run dir, checkpoint dir or file) and freeze matching params."""
    init = m.init_from
    if init is None:
        return
    path = Path(init.path)
    if not path.is_absolute() and not path.exists() and base is not None:
        path = base / path
    for candidate in (path / "model" / "model.pt", path / "model.pt", path):
        if candidate.is_file():
            break
    else:
        raise InvalidJob(f"model.initFrom.path {init.path}: no model.pt found there")
    state = torch.load(candidate, map_location="cpu", weights_only=True)
    try:
        model.load_state_dict(state, strict=init.strict)
    except RuntimeError as e:
        raise InvalidJob(f"model.initFrom {candidate}: {str(e).splitlines()[0]}") from None
    frozen = 0
    for name, p in model.named_parameters():
        if any(fnmatch.fnmatchcase(name, pat) for pat in init.freeze):
            p.requires_grad_(False)
            frozen += 1
    if init.freeze and not frozen:
        raise InvalidJob(f"model.initFrom.freeze {init.freeze} matches no parameter")


def count_parameters(spec: TrainingJobSpec, data_shapes: DataShapes | None = None) -> int | None:
    """Parameters of the spec's model, built on the meta device (no memory, milliseconds).

    None when the count depends on data that is not known without reading it.
    """
    m = spec.model
    if data_shapes is None and m.hf is not None:
        if m.hf.task != "causalLM" or (m.hf.architecture and "vocab_size" not in
                                       (m.hf.config or {})):
            return None  # labels or the vocabulary come from the data
        data_shapes = DataShapes("lm", (1,), 1, None)
    if data_shapes is None:
        gpt = m.gpt or GPTArgs()
        byte_text = spec.dataset.type == "text" and spec.preprocessing.text.tokenizer == "byte"
        vocab = gpt.vocab_size or (256 if byte_text else None)  # char vocabularies need the data
        if m.type == "gpt" and vocab:
            data_shapes = DataShapes("lm", (gpt.context,), vocab, gpt.context)
        elif spec.dataset.type == "synthetic":
            s = spec.dataset.source
            task = s.task  # type: ignore[union-attr]
            data_shapes = (DataShapes("lm", (s.seq_len,), s.vocab_size, s.seq_len)  # type: ignore[union-attr]
                           if task == "lm" else DataShapes(
                               task, (s.features,),  # type: ignore[union-attr]
                               s.classes if task == "classification" else 1))  # type: ignore[union-attr]
        else:
            return None
    try:
        with torch.device("meta"):
            model = build_model(m, data_shapes)
    except (InvalidJob, TypeError):
        return None
    seen: set[int] = set()
    total = 0
    for p in model.parameters():  # tied weights count once
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total
