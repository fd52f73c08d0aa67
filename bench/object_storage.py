"""Checkpoint save and load time: local disk vs an S3 bucket (MinIO on loopback).

The model is the GPT example's (examples/char-gpt-shakespeare.yaml: 4 layers, 4 heads, width 128,
context 64, the 65-character vocabulary) with AdamW state after one step, saved and loaded
through the trainer's own Checkpointer (manifest, sha256 of every part, verification on load).
Save: `Checkpointer.save`; load: `resume_point("auto")` (finds, downloads for a bucket, verifies)
plus `load`. Median of --repeats. Needs the MinIO binary ($KUBETRAIN_MINIO or
hack/minio/build.sh); MinIO runs as a separate process on loopback.

    .venv/bin/python bench/object_storage.py [--repeats 5] [--width 128 --layers 4]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "support"))

import torch  # noqa: E402

from kubetrain.api.model import GPTArgs  # noqa: E402
from kubetrain.models.gpt import GPT  # noqa: E402
from kubetrain.trainer.checkpoint import Checkpointer  # noqa: E402
from kubetrain.trainer.distributed import DistContext  # noqa: E402
from kubetrain.trainer.loop import LoopState  # noqa: E402
from kubetrain.trainer.state import ModelWeights, RNGState  # noqa: E402
from kubetrain_testenv.object_store import minio_server  # noqa: E402


def parts(width: int, layers: int) -> dict[str, object]:
    torch.manual_seed(0)
    model = GPT(GPTArgs(layers=layers, heads=4, width=width, context=64), vocab_size=65)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sum((p * p).sum() for p in model.parameters()).backward()  # type: ignore[union-attr]
    opt.step()
    return {"model.pt": ModelWeights(model), "optim.pt": opt, "loop.pt": LoopState(step=1)}


def bench(where: str | Path, main: dict[str, object], repeats: int) -> tuple[float, float, int]:
    saves, loads, size = [], [], 0
    for i in range(repeats):
        c = Checkpointer(where, keep_last=2, ctx=DistContext())
        t0 = time.perf_counter()
        path = c.save(i + 1, main=main, per_rank={"rng": RNGState()})  # type: ignore[arg-type]
        saves.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        found = c.resume_point("auto")
        assert str(found) == str(path), (found, path)
        c.load(found, main=main, per_rank={"rng": RNGState()})  # type: ignore[arg-type]
        loads.append(time.perf_counter() - t0)
    from kubetrain.trainer.checkpoint import read_manifest

    size = sum(f["size"] for f in read_manifest(path).files.values())
    return statistics.median(saves), statistics.median(loads), size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    args = ap.parse_args()
    torch.set_num_threads(1)
    main_parts = parts(args.width, args.layers)
    with (tempfile.TemporaryDirectory(prefix="kubetrain-bench-") as tmp,
          minio_server(Path(tmp) / "minio") as s3):
        s3.create_bucket("bench")
        os.environ.update(s3.env())
        local = bench(Path(tmp) / "ckpt", main_parts, args.repeats)
        bucket = bench("s3://bench/ckpt", main_parts, args.repeats)
    print(f"GPT layers={args.layers} width={args.width}: checkpoint {local[2] / 2**20:.2f} MiB,"
          f" median of {args.repeats}")
    print("| storage | save (s) | load incl. find + verify (s) |")
    print("|---|---|---|")
    print(f"| local disk | {local[0]:.3f} | {local[1]:.3f} |")
    print(f"| MinIO on loopback (s3://) | {bucket[0]:.3f} | {bucket[1]:.3f} |")


if __name__ == "__main__":
    main()
