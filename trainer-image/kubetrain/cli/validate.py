"""`kubetrain validate FILE...`: every error at once, or the resolved plan of each job."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from kubetrain.api.errors import Issue, SpecError
from kubetrain.api.job import TrainingJob
from kubetrain.api.loader import load_file
from kubetrain.api.plan import resolve_plan
from kubetrain.api.yamlsource import dump_yaml
from kubetrain.cli.main import add_overrides
from kubetrain.errors import InvalidJob


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="TrainingJob YAML files")
    add_overrides(parser)
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="also check what a cluster needs (an image and a name), as the API server will",
    )
    parser.add_argument(
        "-o",
        "--output",
        choices=["plan", "yaml"],
        default="plan",
        help="plan: a summary per job; yaml: the fully resolved spec with every default",
    )


def _parameter_count(job: TrainingJob) -> int | None:
    """Parameters of the model if the trainer is installed and can tell cheaply."""
    try:
        from kubetrain.models import count_parameters  # needs torch
    except ImportError:
        return None
    try:
        return count_parameters(job.spec)
    except Exception:  # the data decides some shapes; then the count waits for `run`
        return None


def describe(job: TrainingJob) -> list[str]:
    """The plan of one job, as lines for a person."""
    spec = job.spec
    plan = resolve_plan(spec)
    par = spec.parallelism
    lines = [
        f"world size {plan.world_size} ({par.nodes} node(s) × "
        f"{plan.world_size // par.nodes} process(es)), strategy {plan.strategy}, "
        f"backend {plan.backend}",
        f"global batch {plan.global_batch_size} = micro {plan.micro_batch_size} × "
        f"accumulation {plan.grad_accum_steps} × world {plan.world_size}",
        f"length: {spec.training.max_steps} steps"
        if spec.training.max_steps
        else f"length: {spec.training.epochs} epoch(s) (steps known once the data is read)",
        f"model: {spec.model.type or spec.model.import_}, optimizer {spec.optimizer.type} "
        f"lr {spec.optimizer.lr:g}, schedule {spec.scheduler.type}, "
        f"precision {spec.training.precision}",
    ]
    params = _parameter_count(job)
    lines.append(
        f"parameters: {params:,}"
        if params is not None
        else "parameters: known once the data is read"
    )
    return lines


def run(args: argparse.Namespace) -> int:
    jobs: list[tuple[str, TrainingJob]] = []
    issues: list[Issue] = []
    for path in args.files:
        try:
            jobs += [(path, job) for job in load_file(path, args.overrides)]
        except SpecError as e:
            issues += e.issues
    for path, job in jobs:
        if args.cluster and not job.spec.image:
            issues.append(Issue("spec.image", "required in a cluster", path))
        if args.cluster and "name" not in job.metadata.model_fields_set:
            issues.append(Issue("metadata.name", "required in a cluster", path))
        try:
            resolve_plan(job.spec)
        except InvalidJob as e:
            field, _, message = str(e).partition(": ")
            issues.append(Issue(field, message, path))
        if job.spec.model.hf is not None:  # reads config and tokenizer files, no weights
            from kubetrain.models.hf_checks import hf_issues

            issues += [Issue(f, m, path) for f, m in hf_issues(job.spec, Path(path).parent)]
    if issues:
        raise SpecError(issues)
    if args.output == "yaml":
        docs: list[dict[str, Any]] = [job.to_yaml_dict() for _, job in jobs]
        sys.stdout.write(dump_yaml(docs))
        return 0
    for path, job in jobs:
        print(f"{path}: TrainingJob {job.metadata.name} is valid")
        for line in describe(job):
            print(f"  {line}")
    return 0
