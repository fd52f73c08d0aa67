"""`kubetrain sample RUN_DIR --prompt TEXT`: generate text from a trained gpt run."""

from __future__ import annotations

import argparse

from kubetrain.errors import InvalidJob

MAX_TOKENS = 100_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a finished gpt run directory")
    parser.add_argument("--prompt", help="text to continue (default: a new line, or the first"
                        " character the model knows when its text has no new lines)")
    parser.add_argument("--tokens", type=int, default=200,
                        help=f"tokens to generate (at most {MAX_TOKENS:,})")
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--top-k", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chat", action="store_true",
                        help="hf runs: wrap the prompt in the tokenizer's chat template")


def check_arguments(args: argparse.Namespace) -> None:
    """Odd numbers are refused before anything is loaded."""
    import math

    if args.tokens < 1:
        raise InvalidJob(f"--tokens {args.tokens}: generate at least 1 token")
    if args.tokens > MAX_TOKENS:
        raise InvalidJob(f"--tokens {args.tokens}: at most {MAX_TOKENS:,} tokens per call (each"
                         " token is one forward pass; call again to continue)")
    if not (math.isfinite(args.temperature) and args.temperature > 0):
        raise InvalidJob(f"--temperature {args.temperature}: must be a number > 0 (small values,"
                         " e.g. 0.05, pick the likeliest token almost always)")
    if args.top_k is not None and args.top_k < 1:
        raise InvalidJob(f"--top-k {args.top_k}: must be at least 1 (omit it to sample from every"
                         " token)")


def run(args: argparse.Namespace) -> int:
    import torch

    from kubetrain.cli.sample_hf import sample_hf
    from kubetrain.models.export import load_any
    from kubetrain.models.gpt import GPT
    from kubetrain.models.hf import HFModel
    from kubetrain.preprocessing.state import TextState

    check_arguments(args)
    try:
        trained = load_any(args.run_dir)  # a run or a registry export directory
    except FileNotFoundError as e:
        raise InvalidJob(str(e)) from None
    if isinstance(trained.model, HFModel):
        return sample_hf(trained, args)
    if not isinstance(trained.model, GPT) or not isinstance(trained.preprocessing, TextState):
        raise InvalidJob(f"{args.run_dir}: sample needs a gpt trained on text")
    tok = trained.preprocessing.tokenizer
    if args.prompt is None:
        args.prompt = "\n" if tok.kind != "char" or "\n" in tok.chars else tok.chars[:1]
    unseen = tok.knows(args.prompt)
    if unseen:
        shown = ", ".join(repr(c) for c in unseen[:10])
        raise InvalidJob(f"--prompt has characters the model never saw in training ({shown});"
                         " use characters of its training text")
    ids = tok.encode(args.prompt).astype("int64")
    if len(ids) == 0:
        raise InvalidJob("--prompt is empty")
    g = torch.Generator().manual_seed(args.seed)
    out = trained.model.generate(torch.from_numpy(ids)[None], args.tokens, args.temperature,
                                 args.top_k, generator=g)
    print(tok.decode(out[0].tolist()))
    return 0
