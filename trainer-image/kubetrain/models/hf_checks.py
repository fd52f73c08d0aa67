"""What `kubetrain validate` can tell about an hf model without loading its weights: the
directory is a model, the LoRA targets exist, the tokenizer fits the embeddings, a chat
dataset's tokenizer has a chat template. The architecture is built on the meta device (no
memory); config and tokenizer files are read. A path that does not exist here is left to
`kubetrain run` (it may be a volume mounted only in the cluster)."""

from __future__ import annotations

import re
from pathlib import Path

from kubetrain.api.spec import TrainingJobSpec
from kubetrain.errors import InvalidJob

_FIELD = re.compile(r"^((?:model|dataset)\.[A-Za-z_.]+)[ :]\s*(.*)$", re.S)


def hf_issues(spec: TrainingJobSpec, base: Path | None) -> list[tuple[str, str]]:
    """(field path under spec, message) for each problem found; empty when none."""
    import torch

    from kubetrain.data.instruct import check_chat_template, read_jsonl
    from kubetrain.data.shapes import DataShapes
    from kubetrain.models.hf import build_hf, tokenizer_for
    from kubetrain.models.hf_source import HF_PREFIX, load_config

    a = spec.model.hf
    if a is None:
        return []
    issues: list[tuple[str, str]] = []
    for given in (a.path, a.tokenizer):
        if given and not given.startswith(HF_PREFIX) and not _exists(given, base):
            return []  # not on this machine: `run` checks it where it is mounted
    try:
        load_config(a, base)
    except InvalidJob as e:  # not a model: nothing else can be checked
        return [_split(e)]
    try:
        tok = tokenizer_for(a, base, required=False)
        src = spec.dataset.instruct
        if src is not None and tok is not None and _exists(src.path, base):
            check_chat_template(src, read_jsonl(src, base)[0][1], tok)
    except InvalidJob as e:
        issues.append(_split(e))
        tok = None
    if a.task == "causalLM":
        vocab = len(tok) if tok is not None else 1
        length = (src.max_length if (src := spec.dataset.instruct) is not None
                  else spec.preprocessing.text.seq_len)
        shapes = DataShapes("lm", (length or 1,), vocab, length)
    else:
        shapes = DataShapes("classification", (1,), 2)
    try:
        with torch.device("meta"):
            build_hf(a, shapes, base, weights=False)
    except InvalidJob as e:
        issues.append(_split(e))
    return issues


def _exists(path: str, base: Path | None) -> bool:
    p = Path(path).expanduser()
    return p.exists() or (not p.is_absolute() and base is not None and (base / p).exists())


def _split(e: InvalidJob) -> tuple[str, str]:
    m = _FIELD.match(str(e))
    return (f"spec.{m.group(1)}", m.group(2)) if m else ("spec.model.hf", str(e))
