"""`kubetrain crd`: print the CRD, or write it where the repository keeps it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kubetrain.api.crd import render_crd_yaml, write_crds
from kubetrain.api.reference import REFERENCE_PATH, render_reference


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--write",
        metavar="ROOT",
        type=Path,
        help="write crds/, charts/kubetrain/crds/ and the spec reference under ROOT",
    )


def run(args: argparse.Namespace) -> int:
    if args.write is None:
        sys.stdout.write(render_crd_yaml())
        return 0
    for path in write_crds(args.write):
        print(f"wrote {path}")
    reference = args.write / REFERENCE_PATH
    reference.parent.mkdir(parents=True, exist_ok=True)
    reference.write_text(render_reference(), encoding="utf-8")
    print(f"wrote {reference}")
    return 0
