"""Peak memory of `kubetrain prepare` and of training on token shards as the corpus grows,
optionally under a memory cap the corpus does not fit in (a cgroup v1 memory controller).

    python bench/data_memory.py --sizes-mb 128 512 1536 [--cgroup /sys/fs/cgroup/memory/X]

For each size: a text corpus of that many MB is written to a temporary directory (random words
and lines), `kubetrain prepare` makes byte-level shards (2 bytes per byte of text), and
`kubetrain run` trains the char-GPT-sized model (4 layers, 4 heads, width 128, context 64) on
them for --steps steps, windows drawn from the whole corpus. Peak RSS is GNU time's maximum
resident set size of the process tree's largest process; with --cgroup, each command runs in
that cgroup (memory.limit_in_bytes as set by the caller) and its memory.max_usage_in_bytes,
which counts the page cache too, is reported. Everything is deleted afterwards.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml

WORDS = ["the", "of", "and", "to", "a", "in", "that", "is", "was", "he", "for", "it", "with",
         "as", "his", "on", "be", "at", "by", "I", "this", "had", "not", "are", "but", "from",
         "or", "have", "an", "they", "which", "one", "you", "were", "her", "all", "she", "there",
         "would", "their", "we", "him", "been", "has", "when", "who", "will", "more", "no", "if",
         "out", "so", "said", "what", "up", "its", "about", "into", "than", "them", "can",
         "only", "other", "king", "queen", "lord", "lady", "good", "sir", "love", "death",
         "night", "day", "heaven", "earth", "blood", "sword", "crown"]


def write_corpus(path: Path, mb: int) -> None:
    rng = np.random.default_rng(0)
    words = np.array(WORDS)
    block = "".join(" ".join(words[rng.integers(0, len(words), 12)]) + ".\n"
                    for _ in range(120_000)).encode()  # about 8 MB, then repeated
    with path.open("wb") as f:
        left = mb * 1_000_000
        while left > 0:
            f.write(block[:left])
            left -= len(block)


def peak(cmd: list[str], cgroup: Path | None) -> tuple[int, int | None, str]:
    """(peak RSS in bytes, cgroup peak usage or None, output tail) of a command."""
    if cgroup is not None:
        (cgroup / "memory.max_usage_in_bytes").write_text("0")
        cmd = ["sh", "-c", f'echo $$ > {cgroup / "cgroup.procs"} && exec "$@"', "sh", *cmd]
    r = subprocess.run(["/usr/bin/time", "-f", "MAXRSS %M", *cmd], capture_output=True,
                       text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stderr[-3000:]}")
    rss = int(r.stderr.rsplit("MAXRSS", 1)[1].split()[0]) * 1024
    usage = (int((cgroup / "memory.max_usage_in_bytes").read_text()) if cgroup else None)
    return rss, usage, (r.stdout + r.stderr)[-400:]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes-mb", type=int, nargs="+", default=[128, 512, 1536])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--cgroup", type=Path)
    ap.add_argument("--tmp", type=Path, default=Path(tempfile.gettempdir()))
    args = ap.parse_args()
    kubetrain = [sys.executable, "-m", "kubetrain"]
    cap = (int((args.cgroup / "memory.limit_in_bytes").read_text()) if args.cgroup else None)
    rows = []
    for mb in args.sizes_mb:
        work = Path(tempfile.mkdtemp(prefix="kubetrain-mem-", dir=args.tmp))
        try:
            write_corpus(work / "corpus.txt", mb)
            job = {"apiVersion": "kubetrain.io/v1alpha1", "kind": "TrainingJob",
                   "metadata": {"name": "mem"},
                   "spec": {"dataset": {"type": "tokens", "split": {"val": 0.01},
                                        "tokens": {"path": "shards", "prepare": {
                                            "path": "corpus.txt", "shardTokens": 100_000_000}}},
                            "preprocessing": {"text": {"tokenizer": "byte"}},
                            "model": {"type": "gpt", "gpt": {"layers": 4, "heads": 4,
                                                             "width": 128, "context": 64}},
                            "training": {"maxSteps": args.steps, "globalBatchSize": 12,
                                         "eval": {"maxBatches": 5}}}}
            (work / "job.yaml").write_text(yaml.safe_dump(job))
            p_rss, p_cg, _ = peak([*kubetrain, "prepare", str(work / "job.yaml"),
                                   "--no-progress"], args.cgroup)
            shard_bytes = sum(f.stat().st_size for f in (work / "shards").glob("*.bin"))
            t_rss, t_cg, _ = peak([*kubetrain, "run", str(work / "job.yaml"), "--run-dir",
                                   str(work / "run"), "--no-progress"], args.cgroup)
            rows.append((mb, shard_bytes, p_rss, p_cg, t_rss, t_cg))
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def gib(b: int | None) -> str:
        return "–" if b is None else f"{b / 2**30:.2f}"

    print(f"memory cap (cgroup): {gib(cap) + ' GiB' if cap else 'none'}; {args.steps} steps")
    print("| corpus text (MB) | shards (GiB) | prepare peak RSS (GiB) | prepare cgroup peak (GiB)"
          " | train peak RSS (GiB) | train cgroup peak (GiB) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for mb, sb, p_rss, p_cg, t_rss, t_cg in rows:
        print(f"| {mb:,} | {gib(sb)} | {gib(p_rss)} | {gib(p_cg)} | {gib(t_rss)} | {gib(t_cg)} |")


if __name__ == "__main__":
    main()
