"""Validation loss of a trained text run in nats per token and in bits per character (the
only unit in which runs with different tokenizers compare), over the whole validation split.

    python bench/bits_per_char.py runs/bpe-gpt-shakespeare [runs/char-gpt-shakespeare ...]

bits/char = (nats/token ÷ ln 2) × (validation tokens ÷ the characters they decode to).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
from pathlib import Path


def measure(run_dir: Path) -> dict[str, float | str]:
    from kubetrain.cli.main import main
    from kubetrain.data.build import build_data
    from kubetrain.trainer.run_dir import load_trained

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["eval", str(run_dir), "--split", "val", "--json"]) == 0
    nats = float(json.loads(out.getvalue())["loss"])
    trained = load_trained(run_dir)
    data = build_data(trained.job.spec, base=trained.base, state=trained.preprocessing)
    val = data.val.tokens  # type: ignore[union-attr]
    ids = [int(i) for i in val[: len(val)]] if not hasattr(val, "stream") else []
    tok = trained.preprocessing.tokenizer  # type: ignore[union-attr]
    chars = len(tok.decode(ids))
    return {"run": str(run_dir), "tokenizer": tok.kind, "vocab": tok.vocab_size,
            "nats_per_token": nats, "tokens": len(ids), "chars": chars,
            "chars_per_token": chars / len(ids),
            "bits_per_char": nats / math.log(2) * len(ids) / chars}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("runs", nargs="+", type=Path)
    args = ap.parse_args()
    print("| run | tokenizer | vocabulary | val loss (nats/token) | chars/token | bits/char |")
    print("|---|---|---:|---:|---:|---:|")
    for run in args.runs:
        m = measure(run)
        print(f"| {m['run']} | {m['tokenizer']} | {m['vocab']} | {m['nats_per_token']:.3f} |"
              f" {m['chars_per_token']:.2f} | {m['bits_per_char']:.3f} |")


if __name__ == "__main__":
    main()
