"""`kubetrain sample` for hf causal LMs: generation with the model's own tokenizer (and its
chat template with --chat), through transformers' `generate`."""

from __future__ import annotations

import argparse
from typing import Any

from kubetrain.errors import InvalidJob


def sample_hf(trained: Any, args: argparse.Namespace) -> int:
    import torch

    from kubetrain.models.hf import tokenizer_for

    model = trained.model
    if model.task != "causalLM":
        raise InvalidJob(f"{args.run_dir}: sample needs a causal LM (this run trained a"
                         f" {model.task} model; use kubetrain eval)")
    a = trained.job.spec.model.hf
    tok = tokenizer_for(a, trained.base, required=False)
    if tok is None:  # built from an architecture: the text dataset's own tokenizer
        tok = _TextTokenizer(trained.preprocessing)
    prompt = "" if args.prompt is None else args.prompt
    if getattr(args, "chat", False):
        if not getattr(tok, "chat_template", None):
            raise InvalidJob("--chat: the tokenizer has no chat template")
        prompt = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                         add_generation_prompt=True)
        ids = tok(prompt, add_special_tokens=False)["input_ids"]
    else:
        bos = [tok.bos_token_id] if tok.bos_token_id is not None else []
        ids = bos + tok(prompt, add_special_tokens=False)["input_ids"]
    if not ids:
        raise InvalidJob("--prompt is empty and the tokenizer has no beginning-of-text token")
    torch.manual_seed(args.seed)
    x = torch.tensor([ids])
    with torch.no_grad():
        out = model.hf.generate(input_ids=x, attention_mask=torch.ones_like(x),
                                max_new_tokens=args.tokens, do_sample=True,
                                temperature=args.temperature, top_k=args.top_k or 0,
                                pad_token_id=tok.pad_token_id)
    print(prompt + tok.decode(out[0, len(ids):].tolist(), skip_special_tokens=False))
    return 0


class _TextTokenizer:
    """preprocessing.text's tokenizer (char, byte, bpe) with the few names sampling uses."""

    bos_token_id = None
    pad_token_id = None
    chat_template = None

    def __init__(self, state: Any):
        from kubetrain.preprocessing.state import TextState

        if not isinstance(state, TextState):
            raise InvalidJob("the model has no tokenizer of its own; set model.hf.tokenizer")
        self.tok = state.tokenizer

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        return {"input_ids": [int(i) for i in self.tok.encode(text)]}

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        return str(self.tok.decode(ids))
