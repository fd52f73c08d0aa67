"""`kubetrain prepare` throughput (MB/s of text) with one worker and with one per core, beside
the `tokenizers` library's own batch encoding of the same text in a plain loop, in one run.

    python bench/data_prepare.py [--copies 20] [--vocab 4096]

The corpus is Tiny Shakespeare repeated `copies` times (../shared/data); the BPE is trained
once on it first (not timed), then used as a pretrained tokenizer.json by every contender.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHAKESPEARE = ROOT.parent / "shared" / "data" / "tinyshakespeare" / "input.txt"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--copies", type=int, default=20)
    ap.add_argument("--vocab", type=int, default=4096)
    args = ap.parse_args()

    from kubetrain.api.data import SplitFractions, TokenData
    from kubetrain.api.preprocessing import TextPreprocessing
    from kubetrain.data.prepare import prepare
    from kubetrain.preprocessing.tokenizer import Tokenizer, pieces, train_bpe

    text = SHAKESPEARE.read_text()
    corpus = text * args.copies
    mb = len(corpus.encode()) / 1e6
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "corpus.txt").write_text(corpus)
        hf_json = train_bpe(pieces(text), args.vocab)
        (tmp / "tokenizer.json").write_text(hf_json)
        tok = Tokenizer("pretrained", hf_json=hf_json)
        rows = []

        # The library alone: batch encoding of the same pieces, every core (its thread pool).
        parts = list(pieces(corpus, 1 << 20))
        t0, c0 = time.perf_counter(), _cpu()
        n = sum(len(e.ids) for e in tok.hf.encode_batch(parts, add_special_tokens=False))
        rows.append(("tokenizers encode_batch (all cores, in memory)", n,
                     time.perf_counter() - t0, _cpu() - c0))

        text_spec = TextPreprocessing(tokenizer="pretrained", tokenizer_path="tokenizer.json")
        cores = os.cpu_count() or 1
        for workers in dict.fromkeys((1, cores)):
            spec = TokenData.model_validate({"path": f"shards-{workers}",
                                             "prepare": {"path": "corpus.txt"}})
            c0 = _cpu()
            done = prepare(spec, text_spec, SplitFractions(), tmp, workers=workers)
            rows.append((f"kubetrain prepare, {workers} worker(s) (read, encode, write shards)",
                         done.tokens, done.tokenize_seconds, _cpu() - c0))
        print(f"corpus: {mb:.1f} MB of text ({args.copies} × Tiny Shakespeare), BPE vocabulary"
              f" {tok.vocab_size}, {cores} cores, load average {os.getloadavg()[0]:.1f}")
        print("| contender | tokens | wall s | MB/s of text (wall) | CPU s | MB per CPU-second |")
        print("|---|---:|---:|---:|---:|---:|")
        for name, tokens, seconds, cpu in rows:
            print(f"| {name} | {tokens:,} | {seconds:.2f} | {mb / seconds:.2f} | {cpu:.2f} |"
                  f" {mb / cpu:.2f} |")


def _cpu() -> float:
    """CPU seconds of this process (all its threads) and of its ended children (workers)."""
    import resource

    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


if __name__ == "__main__":
    main()
