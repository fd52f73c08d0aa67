"""`python -m kubetrain_operator`: run the operator (kopf, standalone: one replica)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import kopf

from kubetrain_operator import __version__
from kubetrain_operator.handlers import Controller, build_registry
from kubetrain_operator.kube import Kube
from kubetrain_operator.metrics import Metrics
from kubetrain_operator.reconcile import Reconciler


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="kubetrain-operator", description=__doc__)
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "-n", "--namespace", action="append", default=[],
        help="watch this namespace (repeatable, or comma-separated)",
    )  # fmt: skip
    where.add_argument("-A", "--all-namespaces", action="store_true", help="watch every namespace")
    p.add_argument("--metrics-port", type=int, default=8080, help="Prometheus /metrics (0: off)")
    p.add_argument(
        "--health-port", type=int, default=8081, help="liveness probe at /healthz (0: off)"
    )
    p.add_argument("--workers", type=int, default=4, help="jobs reconciled at once")
    p.add_argument("--log-format", choices=["plain", "json"], default="json")
    p.add_argument("--verbose", action="store_true")
    p.add_argument("--version", action="version", version=f"kubetrain-operator {__version__}")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    kopf.configure(
        verbose=args.verbose,
        log_format=kopf.LogFormat.JSON if args.log_format == "json" else kopf.LogFormat.PLAIN,
    )
    logging.getLogger("kubetrain_operator").setLevel(logging.INFO)
    metrics = Metrics()
    if args.metrics_port:
        metrics.serve(args.metrics_port)
    kube = Kube(on_request=lambda verb, what: metrics.api_requests.labels(verb, what).inc())
    controller = Controller(Reconciler(kube, metrics), workers=args.workers)
    namespaces = [n for arg in args.namespace for n in arg.split(",") if n]
    kopf.run(
        registry=build_registry(controller),
        standalone=True,  # one replica (Recreate): no peering objects, no extra RBAC
        clusterwide=args.all_namespaces,
        namespaces=namespaces,
        liveness_endpoint=(
            f"http://0.0.0.0:{args.health_port}/healthz" if args.health_port else None
        ),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
