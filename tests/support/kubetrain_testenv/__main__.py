"""python -m kubetrain_testenv up|down|status (see dev_cluster)."""

from __future__ import annotations

import argparse

from .dev_cluster import down, serve, state_dir, status, up


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kubetrain_testenv",
        description="A local Kubernetes cluster (control plane and one real node) for development "
        "(not for production).",
    )
    parser.add_argument("command", choices=["up", "down", "status", "serve"])
    parser.add_argument(
        "--then", help="shell command to run against the cluster once it is ready (KUBECONFIG set)"
    )
    args = parser.parse_args()
    state = state_dir()
    if args.command == "up":
        return up(state, args.then)
    if args.command == "down":
        return down(state)
    if args.command == "status":
        return status(state)
    serve(state, args.then)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
