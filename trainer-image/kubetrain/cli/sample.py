"""`kubetrain sample RUN_DIR --prompt TEXT`: generate text from a trained gpt run."""

from __future__ import annotations

import argparse

from kubetrain.cli.main import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a finished gpt run directory")
    parser.add_argument("--prompt", default="\n", help="text to continue")
    parser.add_argument("--tokens", type=int, default=200, help="tokens to generate")
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--top-k", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    import torch

    from kubetrain.data.text import Tokenizer
    from kubetrain.models.gpt import GPT
    from kubetrain.trainer.run_dir import load_trained

    try:
        trained = load_trained(args.run_dir)
    except FileNotFoundError as e:
        raise UserError(str(e)) from None
    if not isinstance(trained.model, GPT) or "tokenizer" not in trained.preprocessing:
        raise UserError(f"{args.run_dir}: sample needs a gpt trained on text")
    tok = Tokenizer.from_state(trained.preprocessing["tokenizer"])
    ids = tok.encode(args.prompt).astype("int64")
    if len(ids) == 0:
        raise UserError("the prompt is empty")
    g = torch.Generator().manual_seed(args.seed)
    out = trained.model.generate(torch.from_numpy(ids)[None], args.tokens, args.temperature,
                                 args.top_k, generator=g)
    print(tok.decode(out[0].tolist()))
    return 0
