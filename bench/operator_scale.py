"""Operator at scale: N TrainingJobs created at once on the test control plane and real nodes.

    PYTHONPATH=tests/support $(hack/venv.sh)/bin/python bench/operator_scale.py [--jobs 200]

Each job is one node running a trivial command (`sleep S`, through the kubetrain.io/command
annotation) in the local trainer image, so the numbers measure the operator and the API server,
not training. The pods are real containers on `--nodes` real nodes (kubetrain_testenv.
real_cluster; a kubelet runs at most 110 pods). Reports:
time until every pod exists, until every job is Running and Succeeded; reconcile latency
p50/p99 (the operator's histogram); the operator's peak RSS and CPU; and API requests per job per
minute while all jobs run (steady state; the reconciler's own requests, watches excluded).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from kubetrain_testenv import wait_for
from kubetrain_testenv.clients import kubernetes_client
from kubetrain_testenv.procs import free_port
from kubetrain_testenv.real_cluster import real_cluster

REPO = Path(__file__).resolve().parents[1]
GROUP, VERSION, PLURAL = "kubetrain.io", "v1alpha1", "trainingjobs"
TICK = os.sysconf("SC_CLK_TCK")


class Sampler(threading.Thread):
    """Peak RSS and CPU of one process, sampled every second."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.stop = pid, threading.Event()
        self.peak_rss_mb, self.peak_cpu, self.cpu_seconds = 0.0, 0.0, 0.0

    def _cpu(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK

    def run(self) -> None:
        last_cpu, last_t = self._cpu(), time.monotonic()
        while not self.stop.wait(1.0):
            try:
                status = Path(f"/proc/{self.pid}/status").read_text()
                cpu = self._cpu()
            except OSError:
                return
            hwm = next(line for line in status.splitlines() if line.startswith("VmHWM"))
            self.peak_rss_mb = max(self.peak_rss_mb, int(hwm.split()[1]) / 1024)
            now = time.monotonic()
            self.peak_cpu = max(self.peak_cpu, (cpu - last_cpu) / (now - last_t))
            last_cpu, last_t, self.cpu_seconds = cpu, now, cpu


def metrics(port: int) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("#") or not line.strip():
                continue
            head, value = line.rsplit(" ", 1)
            name, _, labels = head.partition("{")
            parsed = dict(
                kv.split("=", 1) for kv in labels.rstrip("}").split(",") if "=" in kv
            )
            out.setdefault(name, []).append(
                ({k: v.strip('"') for k, v in parsed.items()}, float(value))
            )
    return out


def quantile(buckets: list[tuple[dict[str, str], float]], q: float) -> float:
    """histogram_quantile() over cumulative buckets, linear within a bucket."""
    points = sorted((float(b["le"]), c) for b, c in buckets)
    total = points[-1][1]
    rank, prev_le, prev_c = q * total, 0.0, 0.0
    for le, c in points:
        if c >= rank:
            if le == float("inf"):
                return prev_le
            return prev_le + (le - prev_le) * (rank - prev_c) / max(c - prev_c, 1e-9)
        prev_le, prev_c = le, c
    return prev_le


def print_table(rows: list[tuple[str, Any]]) -> None:
    """The results as a two-column Markdown table (pasted into docs/benchmarks.md)."""
    print("| measure | value |\n| --- | --- |")
    for k, v in rows:
        print(f"| {k} | {v} |")


def job(name: str, seconds: int, image: str) -> dict[str, Any]:
    """The quickstart, sleeping `seconds` in `image` (a local image with `sleep`)."""
    base = yaml.safe_load((REPO / "examples" / "quickstart.yaml").read_text())
    base["spec"]["image"] = image
    base["metadata"] = {
        "name": name,
        "annotations": {"kubetrain.io/command": json.dumps(["sleep", str(seconds)])},
    }
    return base


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--jobs", type=int, default=200)
    p.add_argument("--seconds", type=int, default=120, help="how long each pod runs")
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--nodes", type=int, default=2, help="real nodes (110 pods each at most)")
    args = p.parse_args()
    with real_cluster(("pause", "trainer"), nodes=args.nodes) as (cp, nodes):
        image = nodes[0].images["trainer"].ref
        assert cp.assets is not None
        kubectl = [str(cp.assets / "kubectl"), "--kubeconfig", str(cp.kubeconfig)]
        subprocess.run([*kubectl, "apply", "--server-side", "-f", str(REPO / "crds")], check=True,
                       capture_output=True)  # fmt: skip
        subprocess.run([*kubectl, "wait", "--for=condition=Established",
                        "crd/trainingjobs.kubetrain.io"], check=True, capture_output=True)
        api = kubernetes_client(cp.kubeconfig)
        core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
        core.create_namespace({"metadata": {"name": "bench"}})
        wait_for(lambda: core.read_namespaced_service_account("default", "bench"), 30)
        port = free_port()
        log = open(cp.root / "operator.log", "wb")  # noqa: SIM115 - lives as long as the run
        op = subprocess.Popen(
            [sys.executable, "-m", "kubetrain_operator", "-A", "--metrics-port", str(port),
             "--health-port", str(free_port()), "--workers", str(args.workers)],
            env={**os.environ, "KUBECONFIG": str(cp.kubeconfig)}, stdout=log, stderr=log,
        )  # fmt: skip
        try:
            wait_for(lambda: metrics(port), 30, what="operator metrics")
            sampler = Sampler(op.pid)
            sampler.start()
            start = time.monotonic()
            for i in range(args.jobs):
                custom.create_namespaced_custom_object(
                    GROUP, VERSION, "bench", PLURAL, job(f"j{i:04d}", args.seconds, image)
                )
            created = time.monotonic() - start

            def phases() -> dict[str, int]:
                items = custom.list_namespaced_custom_object(GROUP, VERSION, "bench", PLURAL)
                counts: dict[str, int] = {}
                for o in items["items"]:
                    ph = (o.get("status") or {}).get("phase", "None")
                    counts[ph] = counts.get(ph, 0) + 1
                return counts

            def pods() -> int:
                return len(core.list_namespaced_pod("bench").items)

            wait_for(lambda: pods() >= args.jobs, 600, 0.5, "all pods")
            all_pods = time.monotonic() - start
            def started() -> bool:
                counts = phases()
                return counts.get("Running", 0) + counts.get("Succeeded", 0) == args.jobs

            wait_for(started, 600, 0.5, "all Running (or done)")
            all_running = time.monotonic() - start
            before = sum(v for _, v in metrics(port)["kubetrain_api_requests_total"])
            window_start = time.monotonic()
            window = max(min(args.seconds - all_running + 5, 30), 5)
            time.sleep(window)  # a measurement window, not synchronisation
            after = sum(v for _, v in metrics(port)["kubetrain_api_requests_total"])
            per_job_min = (after - before) / args.jobs / ((time.monotonic() - window_start) / 60)
            wait_for(lambda: phases().get("Succeeded", 0) == args.jobs, 900, 1, "all Succeeded")
            all_done = time.monotonic() - start
            m = metrics(port)
            buckets = m["kubetrain_reconcile_duration_seconds_bucket"]
            reconciles = sum(v for _, v in m["kubetrain_reconcile_duration_seconds_count"])
            requests = sum(v for _, v in m["kubetrain_api_requests_total"])
            sampler.stop.set()
            sampler.join()
        finally:
            op.terminate()
            op.wait(30)
    rows = [
        (f"jobs (1 pod each, `sleep {args.seconds}`; {args.nodes} real nodes)",
         f"{args.jobs}"),
        ("create calls issued", f"{created:.1f} s"),
        ("all pods exist", f"{all_pods:.1f} s"),
        ("all jobs Running", f"{all_running:.1f} s"),
        ("all jobs Succeeded", f"{all_done:.1f} s ({all_done - args.seconds:.1f} s after sleeps)"),
        ("reconciles / API requests (total)", f"{reconciles:.0f} / {requests:.0f}"),
        ("reconcile p50 / p99", f"{quantile(buckets, .5) * 1000:.0f} ms / "
                                f"{quantile(buckets, .99) * 1000:.0f} ms"),
        ("operator peak RSS", f"{sampler.peak_rss_mb:.0f} MiB"),
        ("operator CPU: peak (1 s) / total", f"{sampler.peak_cpu * 100:.0f} % / "
                                              f"{sampler.cpu_seconds:.1f} s"),
        ("API requests per job per minute (all Running)", f"{per_job_min:.2f}"),
    ]  # fmt: skip
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
