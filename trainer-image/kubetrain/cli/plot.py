"""`kubetrain plot RUN_DIR`: loss curves (train and val against step) and the lr as a PNG."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from kubetrain.errors import InvalidJob


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a run directory (holds metrics.jsonl)")
    parser.add_argument("-o", "--output", help="PNG file (default: RUN_DIR/loss.png)")
    parser.add_argument("--log-y", action="store_true", help="logarithmic loss axis")


def read_metrics(run_dir: Path) -> list[dict[str, float]]:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        raise InvalidJob(f"{run_dir}: no metrics.jsonl (is this a run directory?)")
    rows = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a line cut short by a kill: the rest is still worth drawing
        step = _number(row.get("step")) if isinstance(row, dict) else None
        if step is not None and math.isfinite(step):
            rows.append(row)  # anything else is not a record this version wrote: skipped
    return rows


def _number(v: object) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def series(rows: list[dict[str, float]], key: str) -> tuple[list[float], list[float]]:
    """(steps, values) for one metric; a resumed run's repeated steps keep the latest value."""
    by_step = {int(r["step"]): float(r[key]) for r in rows if _number(r.get(key)) is not None}
    steps = sorted(by_step)
    return steps, [by_step[s] for s in steps]


def check_output(out: Path, supported: dict[str, str]) -> None:
    """-o: a writable place and an image format matplotlib can write."""
    if out.is_dir():
        raise InvalidJob(f"-o {out}: a directory; name the image file, e.g. {out / 'loss.png'}")
    fmt = out.suffix.lstrip(".").lower()
    if fmt not in supported:
        raise InvalidJob(f"-o {out}: cannot write .{fmt} images (use one of"
                         f" {', '.join(sorted(supported))})")
    if not out.parent.is_dir():
        raise InvalidJob(f"-o {out}: no directory {out.parent}")


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
        raise InvalidJob(f"{run_dir}/metrics.jsonl has no records yet (or none with a step)")
    out = Path(args.output or run_dir / "loss.png")
    fig, (ax, ax_lr) = plt.subplots(2, 1, figsize=(8, 6), sharex=True,
                                    gridspec_kw={"height_ratios": [3, 1]})
    check_output(out, fig.canvas.get_supported_filetypes())
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
    try:
        fig.savefig(out, dpi=90)
    except OSError as e:
        raise InvalidJob(f"-o {out}: cannot write: {e.strerror or e}") from None
    print(out)
    return 0
