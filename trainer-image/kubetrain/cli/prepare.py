"""`kubetrain prepare JOB.yaml`: tokenize the job's raw corpus into token shards, on every core."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kubetrain.errors import InvalidJob


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from kubetrain.cli.main import add_overrides

    parser.add_argument("file", help="a TrainingJob of dataset type tokens with a tokens.prepare"
                        " block (the raw corpus); shards go to tokens.path")
    add_overrides(parser)
    parser.add_argument("--workers", type=int, default=None,
                        help="tokenizing processes (default: one per core)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from kubetrain.api.loader import load_job
    from kubetrain.data.prepare import prepare

    if args.workers is not None and args.workers < 1:
        raise InvalidJob(f"--workers {args.workers}: use at least 1 process")
    job = load_job(args.file, args.overrides)
    ds = job.spec.dataset
    if ds.type != "tokens" or ds.tokens is None or ds.tokens.prepare is None:
        raise InvalidJob("spec.dataset: prepare needs dataset type tokens with a tokens.prepare"
                         " block naming the raw corpus")
    base = Path(args.file).resolve().parent
    with _progress(args.no_progress) as progress:
        done = prepare(ds.tokens, job.spec.preprocessing.text, ds.split, base,
                       workers=args.workers, progress=progress)
    print(f"prepared {done.tokens:,} tokens in {done.shards} shard(s) at {done.out}:"
          f" {done.text_bytes / 1e6:,.1f} MB of text in {done.tokenize_seconds:.1f} s ="
          f" {done.mb_per_second:.1f} MB/s with {done.workers} worker(s)"
          f" ({done.seconds:.1f} s in all, tokenizer fitting included)")
    return 0


class _progress:
    """A rich progress bar per phase (fitting the tokenizer, tokenizing), or nothing."""

    def __init__(self, off: bool):
        self.off = off
        self.bar = None
        self.tasks: dict[str, object] = {}

    def __enter__(self):  # type: ignore[no-untyped-def]
        if self.off:
            return None
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                            TransferSpeedColumn(), TimeRemainingColumn(),
                            console=Console(file=sys.stderr))
        self.bar.start()
        return self.update

    def update(self, phase: str, done: int, total: int) -> None:
        assert self.bar is not None
        if phase not in self.tasks:
            self.tasks[phase] = self.bar.add_task(phase, total=total)
        self.bar.update(self.tasks[phase], completed=done, total=total)  # type: ignore[arg-type]

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()
