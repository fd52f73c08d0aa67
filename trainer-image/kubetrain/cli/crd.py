"""`kubetrain crd`: print the CRD, or write it where the repository keeps it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kubetrain.api.crd import render_crd_yaml, write_crds


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--write",
        metavar="ROOT",
        type=Path,
        help="write crds/ and charts/kubetrain/crds/ under ROOT instead of printing",
    )


def run(args: argparse.Namespace) -> int:
    if args.write is None:
        sys.stdout.write(render_crd_yaml())
        return 0
    for path in write_crds(args.write):
        print(f"wrote {path}")
    return 0
