"""`kubetrain export RUN_DIR -o DIR`: the trained model as files other tools load."""

from __future__ import annotations

import argparse
from pathlib import Path

from kubetrain.errors import InvalidJob


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a finished run directory")
    parser.add_argument("-o", "--output", required=True, metavar="DIR",
                        help="the directory to write (replaced when it holds an earlier export)")
    parser.add_argument("--merge-lora", action="store_true",
                        help="fold LoRA adapters into the base weights: one plain model")


def run(args: argparse.Namespace) -> int:
    from kubetrain.models.export import export
    from kubetrain.trainer.run_dir import load_trained

    try:
        trained = load_trained(args.run_dir)
    except FileNotFoundError as e:
        raise InvalidJob(str(e)) from None
    files = export(trained, Path(args.output), merge_lora=args.merge_lora)
    print(f"{args.output}: {', '.join(files)}")
    return 0
