"""The bare client of bench/operator_queued.py: the objects the operator would create for the
TrainingJobs of one namespace, with no operator logic around them.

    PYTHONPATH=tests/support .venv/bin/python bench/bare_client.py KUBECONFIG NAMESPACE \\
        [--admit 20] [--workers 4]

Every job's children and Workload (the operator's render functions, the operator's `Kube`
server-side applies) and the worker pod of the first `--admit` jobs by name, from `--workers`
threads sharing one client like the operator's workers: no reads, no status, no Events. A
process of its own, so the bench's watches do not share its interpreter. Prints the wall time.
"""

from __future__ import annotations

import argparse
import queue
import sys
import threading
import time
from typing import Any

from kubernetes import client

from kubetrain_operator import validation
from kubetrain_operator.kube import Kube
from kubetrain_operator.kueue import Placement, place, render_workload
from kubetrain_operator.names import JobMeta
from kubetrain_operator.render import render_children, render_worker_pod
from kubetrain_testenv.clients import kubernetes_client

Obj = dict[str, Any]


def send(kube: Kube, obj: Obj, with_pod: bool) -> None:
    """One job's objects, in the operator's order (children, Workload, pod)."""
    meta = JobMeta.from_object(obj)
    spec, problems = validation.parse(obj)
    assert spec is not None, problems
    for child in render_children(meta, spec):
        kube.apply(child)
    pod = render_worker_pod(meta, spec, 0, 0)
    kube.apply_workload(render_workload(meta, spec, pod))
    if with_pod:
        # As the operator places an admitted job's pod (the flavor has no node labels).
        kube.apply(place(pod, Placement()))


def run(api: client.ApiClient, jobs: list[Obj], admit: int, workers: int) -> float:
    """Send every job's objects from `workers` threads; the wall time in seconds."""
    kube = Kube(api)
    work: queue.Queue[tuple[int, Obj]] = queue.Queue()
    for i, obj in enumerate(jobs):
        work.put((i, obj))
    errors: list[BaseException] = []

    def worker() -> None:
        while not errors:
            try:
                i, obj = work.get_nowait()
            except queue.Empty:
                return
            try:
                send(kube, obj, i < admit)
            except BaseException as e:  # re-raised below
                errors.append(e)

    start = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return time.monotonic() - start


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("kubeconfig")
    p.add_argument("namespace")
    p.add_argument("--admit", type=int, default=20)
    p.add_argument("--workers", type=int, default=4)
    args = p.parse_args()
    api = kubernetes_client(args.kubeconfig)
    items = client.CustomObjectsApi(api).list_namespaced_custom_object(
        "kubetrain.io", "v1alpha1", args.namespace, "trainingjobs"
    )["items"]
    jobs = sorted(items, key=lambda o: o["metadata"]["name"])
    print(f"{run(api, jobs, args.admit, args.workers):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
