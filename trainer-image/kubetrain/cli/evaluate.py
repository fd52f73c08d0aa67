"""`kubetrain eval RUN_DIR`: metrics of the trained model on the test split."""

from __future__ import annotations

import argparse
import json

from kubetrain.cli.main import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a finished run directory")
    parser.add_argument("--split", choices=["test", "val", "train"], default="test")
    parser.add_argument("--metrics", nargs="*", help="metric names (default: the job's)")
    parser.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    from kubetrain.data.build import build_data
    from kubetrain.data.errors import DataError
    from kubetrain.metrics.evaluation import EvalSums
    from kubetrain.metrics.losses import loss_kind, summed_loss
    from kubetrain.trainer.loop import evaluate_split
    from kubetrain.trainer.run_dir import load_trained

    try:
        trained = load_trained(args.run_dir)
        spec = trained.job.spec
        data = build_data(spec, state=trained.preprocessing, base=trained.base)
    except (FileNotFoundError, DataError) as e:
        raise UserError(str(e)) from None
    split = getattr(data, args.split)
    if len(split) == 0:
        raise UserError(f"the {args.split} split is empty (set dataset.split.{args.split} > 0)")
    task = data.shapes.task
    target = data.target
    names = args.metrics if args.metrics is not None else list(spec.training.eval.metrics)
    loss_fn = summed_loss(loss_kind(task, spec.training.loss))
    sums = EvalSums(task, data.shapes.num_outputs,
                    target.scale if target and task == "regression" else 1.0)
    loss, metrics = evaluate_split(trained.model, split, loss_fn, sums, names,
                                   batch_size=spec.training.micro_batch_size or 256)
    result = {"split": args.split, "samples": len(split), "loss": loss, **metrics}
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>10}  {v:.6g}" if isinstance(v, float) else f"{k:>10}  {v}")
    return 0
