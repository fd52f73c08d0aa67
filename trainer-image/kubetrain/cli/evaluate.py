"""`kubetrain eval RUN_DIR`: metrics of the trained model on the test split."""

from __future__ import annotations

import argparse
import json

from kubetrain.errors import InvalidJob


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a finished run directory")
    parser.add_argument("--split", choices=["test", "val", "train"], default="test")
    parser.add_argument("--metrics", nargs="*", help="metric names (default: the job's)")
    parser.add_argument("--json", action="store_true", help="print JSON")


TASK_METRICS = {"classification": ("accuracy", "f1"), "regression": ("mae", "rmse", "r2"),
                "lm": ("perplexity",)}


def check_metrics(names: list[str], task: str) -> None:
    """--metrics: names kubetrain knows, that apply to this run's task."""
    from kubetrain.api.errors import suggest

    known = [m for ms in TASK_METRICS.values() for m in ms]
    for name in names:
        if name not in known:
            hint = suggest(name, known)
            more = f"; did you mean {hint!r}?" if hint else f" (known: {', '.join(known)})"
            raise InvalidJob(f"--metrics: unknown metric {name!r}{more}")
        if name not in TASK_METRICS[task]:
            raise InvalidJob(f"--metrics: {name} does not apply to a {task} run (it has"
                             f" {', '.join(TASK_METRICS[task])})")


def run(args: argparse.Namespace) -> int:
    from kubetrain.data.build import build_data
    from kubetrain.metrics.evaluation import EvalSums
    from kubetrain.metrics.losses import loss_for
    from kubetrain.models.export import load_any
    from kubetrain.trainer.loop import evaluate_split

    try:
        trained = load_any(args.run_dir)  # a run or a registry export directory
        spec = trained.job.spec
        data = build_data(spec, state=trained.preprocessing, base=trained.base)
    except FileNotFoundError as e:
        raise InvalidJob(str(e)) from None
    split = getattr(data, args.split)
    if len(split) == 0:
        raise InvalidJob(f"the {args.split} split is empty (set dataset.split.{args.split} > 0)")
    task = data.shapes.task
    names = args.metrics if args.metrics is not None else list(spec.training.eval.metrics)
    if args.metrics is not None:
        check_metrics(names, task)
    loss_fn = loss_for(task, spec.training.loss, data.shapes.num_outputs)
    sums = EvalSums(task, data.shapes.num_outputs, data.target_scale)
    loss, metrics = evaluate_split(trained.model, split, loss_fn, sums, names,
                                   batch_size=spec.training.micro_batch_size or 256)
    result = {"split": args.split, "samples": len(split), "loss": loss, **metrics}
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>10}  {v:.6g}" if isinstance(v, float) else f"{k:>10}  {v}")
    return 0
