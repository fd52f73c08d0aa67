"""Operator at scale with Kueue: 200 queued TrainingJobs, quota for 20, beside a bare client.

    KUBETRAIN_KUEUE=$(hack/kueue/build.sh) PYTHONPATH=tests/support \\
        .venv/bin/python bench/operator_queued.py [--jobs 200] [--admit 20] [--rounds 3]

One run on the test control plane with real Kueue and two real nodes (kubetrain_testenv.
real_cluster; the pods run `sleep` in the local trainer image, as real containers):

1. Rounds, alternating bare client / operator, and a last bare client: the load of this shared
   machine changes by the minute, so each operator burst is compared with the bare runs just
   before and after it.
   - Operator burst: `--jobs` TrainingJobs with `queueName` (1 node, 100m CPU, `sleep` through
     the kubetrain.io/command annotation) are created while no operator runs; then the
     operator starts (`-n` that namespace, 4 workers) and makes every job's children (5 each)
     and Workload, and the pods of the jobs Kueue admits (the namespace's ClusterQueue holds
     CPU for `--admit` pods). Object rate: objects / (last seen − first seen), seen by watches.
   - Bare client (bench/bare_client.py, a process of its own): the same objects for a
     namespace of the same jobs (real owners: nothing is garbage-collected) with its own
     ClusterQueue of the same quota, so Kueue's webhooks and admission do the same work.
   - After each run its pods are deleted (its other objects stay): the two nodes (each with
     this machine's cores) have CPU for the pods of one run (`--admit` × 100m), not of seven.
2. Quiet window (`--window` s) after the last operator burst has settled (admitted jobs
   Running, the rest Queued with Kueue's reason): status writes per queued job per minute
   (MODIFIED events of queued jobs on a watch), Events, the operator's API requests and CPU
   seconds (a hot loop would show there), reconcile latency p50/p99 of that window only.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client
from operator_scale import Sampler, metrics, print_table, quantile
from operator_scale import job as sleeping_job
from watches import GROUP, KUEUE, KV, PLURAL, VERSION, Arrivals, JobWrites

from kubetrain_testenv import ControlPlane, wait_for
from kubetrain_testenv.clients import kubernetes_client
from kubetrain_testenv.kueue import Kueue
from kubetrain_testenv.procs import free_port
from kubetrain_testenv.real_cluster import real_cluster

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
POD_CPU_MILLI = 100
CHILDREN = 5  # render_children: ServiceAccount, Role, RoleBinding, ConfigMap, Service
Obj = dict[str, Any]
Buckets = list[tuple[dict[str, str], float]]
BUCKETS = "kubetrain_reconcile_duration_seconds_bucket"


def job(name: str, seconds: int, image: str) -> Obj:
    """The scale bench's sleeping job, queued in `team` with a small CPU request."""
    base = sleeping_job(name, seconds, image)
    base["spec"]["queueName"] = "team"
    base["spec"]["resources"] = {"cpu": f"{POD_CPU_MILLI}m"}
    # `sleep` sends no heartbeat: no Stalled restart during the bench.
    base["spec"]["runPolicy"] = {"heartbeatTimeoutSeconds": 3600}
    return base


def total(m: dict[str, Buckets], name: str) -> float:
    return sum(v for _, v in m.get(name, []))


def histogram_delta(after: Buckets, before: Buckets) -> Buckets:
    old = {b["le"]: v for b, v in before}
    return [(b, v - old.get(b["le"], 0.0)) for b, v in after]


def apiserver_requests(cp: ControlPlane) -> Counter[str]:
    """The API server's request counts and seconds by verb and resource (every client's:
    Kueue, the controller manager, the kubelets and the bench's watches too)."""
    req = urllib.request.Request(cp.server + "/metrics")
    req.add_header("Authorization", f"Bearer {cp.admin_token}")
    with urllib.request.urlopen(req, context=cp._ssl_context(), timeout=30) as answer:
        text = answer.read().decode()
    out: Counter[str] = Counter()
    for line in text.splitlines():
        name, _, rest = line.partition("{")
        if name not in ("apiserver_request_duration_seconds_count",
                        "apiserver_request_duration_seconds_sum"):  # fmt: skip
            continue
        labels, value = rest.rsplit("} ", 1)
        kv = {k: v.strip('"') for k, v in (x.split("=", 1) for x in labels.split(",") if "=" in x)}
        if kv.get("verb", "WATCH") in ("WATCH", "CONNECT"):
            continue
        sub = kv.get("subresource", "")
        key = f"{kv['verb']} {kv.get('resource', '')}" + (f"/{sub}" if sub else "")
        out[f"{key} {'n' if name.endswith('count') else 's'}"] += float(value)
    return out


def breakdown(after: Counter[str], before: Counter[str], least: int) -> str:
    """`VERB resource: count × mean ms` for the request kinds seen at least `least` times."""
    d = after.copy()
    d.subtract(before)
    parts = []
    for key in sorted(k for k in d if k.endswith(" n")):
        n, s = d[key], d[key[:-2] + " s"]
        if n >= least:
            parts.append((n, f"{key[:-2]} {n:.0f} × {s / n * 1000:.0f} ms"))
    return "; ".join(p for _, p in sorted(parts, reverse=True))


@dataclass
class Burst:
    """One operator burst."""

    objects: int
    pods: int
    span: float  # first to last object seen
    children_span: float  # first to last child or Workload seen (no pods)
    settled: float  # operator start to every job Running or Queued (Pending)
    requests: float  # the operator's API requests until settled
    reconciles: float
    cpu: float
    buckets: Buckets
    by_kind: str  # the API server's requests during the burst, by verb and resource

    @property
    def rate(self) -> float:
        return self.objects / self.span


class Bench:
    def __init__(self, cp: ControlPlane, args: argparse.Namespace, image: str) -> None:
        self.cp, self.args, self.image = cp, args, image
        self.api = kubernetes_client(cp.kubeconfig)
        self.core = client.CoreV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self.expected = args.jobs * (CHILDREN + 1) + args.admit

    def namespace(self, name: str) -> None:
        """A namespace with `--jobs` TrainingJobs (nothing acts on them yet), a ClusterQueue
        with CPU for `--admit` pods that only this namespace may use, a LocalQueue `team`."""
        self.core.create_namespace({"metadata": {"name": name}})
        wait_for(lambda: self.core.read_namespaced_service_account("default", name), 30)
        cq = {
            "apiVersion": f"{KUEUE}/{KV}", "kind": "ClusterQueue", "metadata": {"name": name},
            "spec": {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": name}},
                "resourceGroups": [{"coveredResources": ["cpu"], "flavors": [{
                    "name": "bench", "resources": [{
                        "name": "cpu", "nominalQuota": f"{self.args.admit * POD_CPU_MILLI}m",
                    }],
                }]}],
            },
        }  # fmt: skip
        self.custom.create_cluster_custom_object(KUEUE, KV, "clusterqueues", cq)
        lq = {"apiVersion": f"{KUEUE}/{KV}", "kind": "LocalQueue",
              "metadata": {"name": "team", "namespace": name},
              "spec": {"clusterQueue": name}}  # fmt: skip
        self.custom.create_namespaced_custom_object(KUEUE, KV, name, "localqueues", lq)
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(
                lambda i: self.custom.create_namespaced_custom_object(
                    GROUP, VERSION, name, PLURAL,
                    job(f"j{i:04d}", self.args.seconds, self.image)),
                range(self.args.jobs),
            ))  # fmt: skip

    def bare(self, name: str) -> tuple[float, str]:
        """The bare client's object rate in a fresh namespace, and the API server's
        requests meanwhile by kind."""
        self.namespace(name)
        arrivals = Arrivals(self.api, name).start()
        before = apiserver_requests(self.cp)
        try:
            subprocess.run(
                [sys.executable, str(BENCH / "bare_client.py"), str(self.cp.kubeconfig), name,
                 "--admit", str(self.args.admit), "--workers", str(self.args.workers)],
                check=True, capture_output=True, text=True, timeout=900,
            )  # fmt: skip
            wait_for(lambda: arrivals.count() >= self.expected, 120, 0.2, "the bare objects")
            first, last = arrivals.span()
            by_kind = breakdown(apiserver_requests(self.cp), before, self.args.jobs // 2)
            return arrivals.count() / (last - first), by_kind
        finally:
            arrivals.close()

    def delete_pods(self, name: str) -> None:
        """Delete the pods of namespace `name` at once and wait until they are gone (`sleep`
        ignores SIGTERM as a container's first process: no grace period to wait out)."""
        self.core.delete_collection_namespaced_pod(name, grace_period_seconds=0)
        wait_for(lambda: not self.core.list_namespaced_pod(name).items, 300, 1,
                 f"the pods of {name} to be gone")  # fmt: skip

    def start_operator(self, name: str, port: int) -> subprocess.Popen[bytes]:
        log = open(self.cp.root / f"operator-{name}.log", "wb")  # noqa: SIM115 - the run's
        return subprocess.Popen(
            [sys.executable, "-m", "kubetrain_operator", "-n", name, "--metrics-port",
             str(port), "--health-port", str(free_port()), "--workers",
             str(self.args.workers), "--log-format", "plain"],
            env={**os.environ, "KUBECONFIG": str(self.cp.kubeconfig)}, stdout=log, stderr=log,
        )  # fmt: skip

    def settled(self, name: str) -> bool:
        """Every admitted job Running, every other one Queued with Kueue's reason."""
        items = self.custom.list_namespaced_custom_object(GROUP, VERSION, name, PLURAL)
        statuses = [o.get("status") or {} for o in items["items"]]
        running = sum(1 for s in statuses if s.get("phase") == "Running")
        pending = sum(1 for s in statuses if (s.get("phase"), s.get("reason")) == (
            "Queued", "Pending"))  # fmt: skip
        return running == self.args.admit and pending == self.args.jobs - self.args.admit

    def burst(self, name: str, port: int) -> tuple[Burst, subprocess.Popen[bytes], Sampler]:
        """Start an operator on a namespace of new jobs; measure until all has settled.
        Returns the operator still running (the caller stops it)."""
        self.namespace(name)
        arrivals = Arrivals(self.api, name).start()
        before = apiserver_requests(self.cp)
        started = time.monotonic()
        op = self.start_operator(name, port)
        sampler = Sampler(op.pid)
        sampler.start()
        try:
            wait_for(lambda: arrivals.count() >= self.expected, 900, 0.2, "operator's objects")
            wait_for(lambda: self.settled(name), 300, 1, "jobs Running or Queued (Pending)")
        except BaseException:
            op.terminate()
            raise
        finally:
            arrivals.close()
        settled = time.monotonic() - started
        by_kind = breakdown(apiserver_requests(self.cp), before, self.args.jobs // 2)
        m = metrics(port)
        first, last = arrivals.span()
        children = [arrivals.span(k) for k in ("ServiceAccount", "Role", "RoleBinding",
                                               "ConfigMap", "Service", "Workload")]  # fmt: skip
        children_span = max(t for _, t in children) - min(t for t, _ in children)
        return Burst(
            arrivals.count(), arrivals.count("Pod"), last - first, children_span, settled,
            total(m, "kubetrain_api_requests_total"),
            total(m, "kubetrain_reconcile_duration_seconds_count"), sampler.cpu_seconds,
            m[BUCKETS], by_kind,
        ), op, sampler  # fmt: skip

    def quiet(self, name: str, port: int, sampler: Sampler) -> list[tuple[str, str]]:
        """The quiet window on a settled namespace whose operator still runs."""
        writes = JobWrites(self.api, name)
        writes.start()
        queued = self.args.jobs - self.args.admit
        m0, cpu0, t0 = metrics(port), sampler.cpu_seconds, time.monotonic()
        events0 = len(self.core.list_namespaced_event(name).items)
        time.sleep(self.args.window)  # a measurement window, not synchronisation
        m1, cpu1, t1 = metrics(port), sampler.cpu_seconds, time.monotonic()
        events1 = len(self.core.list_namespaced_event(name).items)
        writes.stop.set()
        minutes = (t1 - t0) / 60
        in_window = [e for e in writes.events if t0 <= e[0] <= t1]
        of_queued = [e for e in in_window if e[2] == "Queued"]
        window = histogram_delta(m1[BUCKETS], m0[BUCKETS])
        reconciles = total(m1, "kubetrain_reconcile_duration_seconds_count") - total(
            m0, "kubetrain_reconcile_duration_seconds_count")  # fmt: skip
        requests = total(m1, "kubetrain_api_requests_total") - total(
            m0, "kubetrain_api_requests_total")  # fmt: skip
        return [
            (f"quiet window ({t1 - t0:.0f} s): reconciles / operator API requests",
             f"{reconciles:.0f} / {requests:.0f} ({reconciles / (t1 - t0):.1f} reconciles/s)"),
            ("quiet: reconcile p50 / p99", f"{quantile(window, .5) * 1000:.0f} ms / "
                                           f"{quantile(window, .99) * 1000:.0f} ms"),
            ("quiet: status writes per queued job per minute",
             f"{len(of_queued) / queued / minutes:.3f} ({len(of_queued)} writes to the "
             f"{queued} queued jobs; {len(in_window)} to all {self.args.jobs})"),
            ("quiet: Events recorded", f"{events1 - events0}"),
            ("quiet: operator CPU", f"{cpu1 - cpu0:.1f} s "
                                    f"({(cpu1 - cpu0) / (t1 - t0) * 100:.1f} % of a core)"),
            ("reconcile errors (whole run of that operator)",
             f"{total(m1, 'kubetrain_reconcile_errors_total'):.0f}"),
        ]  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--jobs", type=int, default=200)
    p.add_argument("--admit", type=int, default=20, help="jobs the ClusterQueue has CPU for")
    p.add_argument("--rounds", type=int, default=3, help="operator bursts (bare runs: +1)")
    p.add_argument("--window", type=float, default=150, help="quiet window, seconds")
    p.add_argument("--seconds", type=int, default=3600, help="how long each pod sleeps")
    p.add_argument("--workers", type=int, default=4)
    args = p.parse_args()
    loads = [os.getloadavg()[0]]
    with real_cluster(("pause", "trainer"), nodes=2) as (cp, nodes):
        cp.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
        cp.wait_crd_established("trainingjobs.kubetrain.io")
        Kueue(cp).start()
        bench = Bench(cp, args, nodes[0].images["trainer"].ref)
        flavor = {"apiVersion": f"{KUEUE}/{KV}", "kind": "ResourceFlavor",
                  "metadata": {"name": "bench"}}  # fmt: skip
        bench.custom.create_cluster_custom_object(KUEUE, KV, "resourceflavors", flavor)
        bare = [bench.bare("bare-0")[0]]
        bench.delete_pods("bare-0")
        bursts: list[Burst] = []
        quiet: list[tuple[str, str]] = []
        for r in range(1, args.rounds + 1):
            loads.append(os.getloadavg()[0])
            port = free_port()
            burst, op, sampler = bench.burst(f"bench-{r}", port)
            try:
                bursts.append(burst)
                if r == args.rounds:
                    quiet = bench.quiet(f"bench-{r}", port, sampler)
            finally:
                sampler.stop.set()
                op.terminate()
                op.wait(30)
            bench.delete_pods(f"bench-{r}")
            loads.append(os.getloadavg()[0])
            rate, bare_by_kind = bench.bare(f"bare-{r}")
            bench.delete_pods(f"bare-{r}")
            bare.append(rate)
        loads.append(os.getloadavg()[0])

    ratios = [b.rate / statistics.mean(bare[i : i + 2]) for i, b in enumerate(bursts)]
    last = bursts[-1]
    rows = [
        (f"jobs / admitted per namespace (quota {args.admit} × {POD_CPU_MILLI}m CPU)",
         f"{args.jobs} / {args.admit}"),
        ("objects per burst (children, Workloads, pods)", f"{last.objects} ({last.pods} pods)"),
        ("bare client object rate, each run", " / ".join(f"{r:.1f}" for r in bare) + " /s"),
        ("operator object rate, each burst", " / ".join(f"{b.rate:.1f}" for b in bursts)
                                             + " /s"),
        ("ratio operator / bare (mean of the bare runs beside it)",
         " / ".join(f"{r:.2f}" for r in ratios) + f"; median {statistics.median(ratios):.2f}"),
        ("operator: first to last object, each burst",
         " / ".join(f"{b.span:.1f} s (children+Workloads {b.children_span:.1f} s)"
                    for b in bursts)),
        ("operator: start to settled, each burst", " / ".join(f"{b.settled:.1f} s"
                                                             for b in bursts)),
        ("operator API requests / reconciles per burst (bare client: 1 request per object)",
         " / ".join(f"{b.requests:.0f} / {b.reconciles:.0f}" for b in bursts)),
        ("burst: operator CPU", " / ".join(f"{b.cpu:.1f} s" for b in bursts)),
        ("burst: reconcile p50 / p99 (start to settled)",
         " / ".join(f"{quantile(b.buckets, .5) * 1000:.0f} ms / "
                    f"{quantile(b.buckets, .99) * 1000:.0f} ms" for b in bursts)),
        ("API server requests during the last burst (all clients; n × mean latency)",
         last.by_kind),
        ("API server requests during the last bare run", bare_by_kind),
        *quiet,
        ("load average (1 min), at each phase boundary", " ".join(f"{x:.1f}" for x in loads)),
    ]  # fmt: skip
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
