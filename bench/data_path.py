"""The data path alone: token shards → batches on the device, in tokens per second, as the
trainer gathers them (BatchOrder → TokenWindows over memory-mapped shards → tensors → device),
next to what a training run consumed (its metrics.jsonl tokensPerSecond).

    python bench/data_path.py [--consumer RUN_DIR] [--tokens 50000000] [--batch 12 --seq 64]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tokens", type=int, default=50_000_000)
    ap.add_argument("--shard-tokens", type=int, default=10_000_000)
    ap.add_argument("--batch", type=int, default=12)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--consumer", type=Path, help="a run directory whose tokens/s to compare")
    args = ap.parse_args()

    from kubetrain.data.order import BatchOrder
    from kubetrain.data.prepare import ShardWriter
    from kubetrain.data.samples import TokenWindows
    from kubetrain.data.shards import read_shards

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with tempfile.TemporaryDirectory() as tmp_name:
        out = Path(tmp_name)
        w = ShardWriter(out, np.dtype(np.uint16), args.shard_tokens)
        rng = np.random.default_rng(0)
        for _ in range(0, args.tokens, 1 << 22):
            w.write(rng.integers(0, 50_000, 1 << 22).astype(np.uint16))
        w.finish({"vocabSize": 50_000, "tokenizer": None})
        shards = read_shards(str(out), "uint16", None, None)
        windows = TokenWindows(shards.stream(), args.seq, packing=True, seed=0)
        order = BatchOrder(len(windows), args.batch, seed=0)
        t0, c0 = time.perf_counter(), time.process_time()
        for step in range(args.steps):
            (idx,) = order.rank_micro_batches(step, 0, 1, args.batch)
            x, y = windows.batch(idx, order.epoch_of(step))
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    tokens = args.steps * args.batch * args.seq
    rate = tokens / seconds
    print(f"data path: {len(shards.files)} shards, {shards.tokens:,} tokens, batch {args.batch}"
          f" × {args.seq}, random windows, to {device}: {rate:,.0f} tokens/s"
          f" ({seconds / args.steps * 1e3:.3f} ms per batch); {tokens / cpu:,.0f} tokens per"
          f" CPU-second of this process (load average {os.getloadavg()[0]:.1f})")
    if args.consumer:
        recs = [json.loads(line) for line in (args.consumer / "metrics.jsonl").open()]
        used = [r["tokensPerSecond"] for r in recs if r.get("tokensPerSecond")]
        best = max(used)
        print(f"consumer {args.consumer}: at most {best:,.0f} tokens/s over"
              f" {len(used)} log records → the data path is {rate / best:,.0f}× faster")


if __name__ == "__main__":
    main()
