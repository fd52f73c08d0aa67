"""`kubetrain plot RUN_DIR`: loss curves (train and val against step) and the lr as a PNG."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from kubetrain.cli.main import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a run directory (holds metrics.jsonl)")
    parser.add_argument("-o", "--output", help="PNG file (default: RUN_DIR/loss.png)")
    parser.add_argument("--log-y", action="store_true", help="logarithmic loss axis")


def read_metrics(run_dir: Path) -> list[dict[str, float]]:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        raise UserError(f"{run_dir}: no metrics.jsonl (is this a run directory?)")
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue  # a line cut short by a kill: the rest is still worth drawing
    return rows


def series(rows: list[dict[str, float]], key: str) -> tuple[list[float], list[float]]:
    """(steps, values) for one metric; a resumed run's repeated steps keep the latest value."""
    by_step = {int(r["step"]): float(r[key]) for r in rows if key in r}
    steps = sorted(by_step)
    return steps, [by_step[s] for s in steps]


def _title(run_dir: Path) -> str:
    import yaml

    try:
        return str(yaml.safe_load((run_dir / "job.yaml").read_text())["metadata"]["name"])
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        return run_dir.resolve().name


def run(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(args.run_dir)
    rows = read_metrics(run_dir)
    if not rows:
        raise UserError(f"{run_dir}/metrics.jsonl has no records yet")
    out = Path(args.output or run_dir / "loss.png")
    fig, (ax, ax_lr) = plt.subplots(2, 1, figsize=(8, 6), sharex=True,
                                    gridspec_kw={"height_ratios": [3, 1]})
    for key, label, style in (("loss", "train loss", "-"), ("valLoss", "val loss", "o-")):
        steps, values = series(rows, key)
        if steps:
            ax.plot(steps, values, style, label=label, markersize=4)
    ax.set_ylabel("loss")
    if args.log_y:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(_title(run_dir))
    steps, lrs = series(rows, "lr")
    ax_lr.plot(steps, lrs, color="tab:green")
    ax_lr.set_ylabel("lr")
    ax_lr.set_xlabel("step")
    ax_lr.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    print(out)
    return 0
