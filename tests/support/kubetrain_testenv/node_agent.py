"""The test node agent: a kubelet stand-in that runs pods as local processes.

`python -m kubetrain_testenv.node_agent --kubeconfig ... --state-dir ...` registers
a Ready Node, keeps its Lease fresh, binds every unscheduled pod to itself and
runs the pods bound to it (see the package docstring for the conventions).
Needs root (mount namespaces). SIGTERM stops all pods and exits.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import cgroups
from .hosts_files import HostsFiles
from .pod_worker import NodeConfig, PodWorker
from .rest import STRATEGIC_PATCH, ApiError, Rest

LEASE_SECONDS = 40
RENEW_EVERY = 10.0
WATCH_SECONDS = 240  # the server ends each watch after this; we resume from the last RV
DEFAULT_SCHEDULERS = (None, "", "default-scheduler")


def _micro_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _total_memory() -> str:
    with open("/proc/meminfo") as f:
        kib = next(int(line.split()[1]) for line in f if line.startswith("MemTotal:"))
    return f"{kib}Ki"


def node_object(name: str, gpus: int, version: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Node to register and its status (capacity, Ready condition, addresses)."""
    capacity = {
        "cpu": str(os.cpu_count() or 1),
        "memory": _total_memory(),
        "pods": "110",
        "ephemeral-storage": "100Gi",
    }
    if gpus:
        capacity["nvidia.com/gpu"] = str(gpus)
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "node.kubernetes.io/instance-type": "kubetrain-testenv",
    }
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}}
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def condition(kind: str, status: str, reason: str) -> dict[str, str]:
        return {
            "type": kind,
            "status": status,
            "reason": reason,
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
        }

    status = {
        "capacity": capacity,
        "allocatable": capacity,
        "conditions": [
            condition("MemoryPressure", "False", "KubeletHasSufficientMemory"),
            condition("DiskPressure", "False", "KubeletHasNoDiskPressure"),
            condition("PIDPressure", "False", "KubeletHasSufficientPID"),
            condition("Ready", "True", "KubeletReady"),
        ],
        "addresses": [
            {"type": "InternalIP", "address": "127.0.0.1"},
            {"type": "Hostname", "address": name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
        "nodeInfo": {
            "machineID": "",
            "systemUUID": "",
            "bootID": "",
            "kernelVersion": os.uname().release,
            "osImage": "kubetrain test node agent",
            "containerRuntimeVersion": "testenv://0",
            "kubeletVersion": version,
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": "amd64",
        },
    }
    return node, status


class Agent:
    """Registers the node, renews its lease, binds and runs pods."""

    def __init__(self, rest: Rest, node: NodeConfig, gpus: int) -> None:
        self.rest, self.node, self.gpus = rest, node, gpus
        self.stop = threading.Event()
        self.workers: dict[str, PodWorker] = {}
        self.hosts = HostsFiles(Path("/etc/hosts").read_text())

    def register(self) -> None:
        version = self.rest.get("/version").get("gitVersion", "v0.0.0")
        node, status = node_object(self.node.node_name, self.gpus, version)
        try:
            node = self.rest.request("POST", "/api/v1/nodes", node)
        except ApiError as exc:
            if exc.status != 409:
                raise
            node = self.rest.get(f"/api/v1/nodes/{self.node.node_name}")
        self.node_uid = node["metadata"]["uid"]
        self.rest.request(
            "PATCH",
            f"/api/v1/nodes/{self.node.node_name}/status",
            {"status": status},
            content_type=STRATEGIC_PATCH,
        )
        self._renew_lease()

    def _renew_lease(self) -> None:
        name = self.node.node_name
        path = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
        spec = {
            "holderIdentity": name,
            "leaseDurationSeconds": LEASE_SECONDS,
            "renewTime": _micro_now(),
        }
        try:
            self.rest.request(
                "PATCH",
                f"{path}/{name}",
                {"spec": spec},
                content_type="application/merge-patch+json",
            )
        except ApiError as exc:
            if exc.status != 404:
                raise
            owner = {"apiVersion": "v1", "kind": "Node", "name": name, "uid": self.node_uid}
            lease = {"metadata": {"name": name, "ownerReferences": [owner]}, "spec": spec}
            self.rest.request("POST", path, lease)

    def _lease_loop(self) -> None:
        heartbeats = 0
        while not self.stop.wait(RENEW_EVERY):  # a renewal period, not synchronisation
            try:
                self._renew_lease()
                heartbeats += 1
                if heartbeats % 6 == 0:  # the node status heartbeat, once a minute
                    # Conditions merge by type: only the heartbeat time changes.
                    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                    conditions = {
                        "conditions": [
                            {"type": kind, "lastHeartbeatTime": now}
                            for kind in ("MemoryPressure", "DiskPressure", "PIDPressure", "Ready")
                        ]
                    }
                    self.rest.request(
                        "PATCH",
                        f"/api/v1/nodes/{self.node.node_name}/status",
                        {"status": conditions},
                        content_type=STRATEGIC_PATCH,
                    )
            except Exception as exc:  # keep renewing; the API server may be restarting
                print(f"node agent: lease: {exc!r}", file=sys.stderr)

    def _bind(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        binding = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": meta["name"]},
            "target": {"apiVersion": "v1", "kind": "Node", "name": self.node.node_name},
        }
        try:
            self.rest.request(
                "POST",
                f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/binding",
                binding,
            )
        except ApiError as exc:
            if exc.status not in (404, 409):  # deleted or already bound meanwhile
                print(
                    f"node agent: bind {meta['namespace']}/{meta['name']}: {exc}", file=sys.stderr
                )

    def _delete_now(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        try:
            self.rest.request(
                "DELETE",
                f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
                {"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}},
            )
        except ApiError as exc:
            if exc.status not in (404, 409):
                print(
                    f"node agent: delete {meta['namespace']}/{meta['name']}: {exc}", file=sys.stderr
                )

    def handle(self, kind: str, pod: dict[str, Any]) -> None:
        """React to one pod event (ADDED, MODIFIED, DELETED)."""
        meta, spec = pod["metadata"], pod.get("spec", {})
        uid = meta["uid"]
        worker = self.workers.get(uid)
        if kind == "DELETED":
            if worker is not None:
                worker.vanished()
                del self.workers[uid]
            return
        if not spec.get("nodeName"):
            if (
                not meta.get("deletionTimestamp")
                and spec.get("schedulerName") in DEFAULT_SCHEDULERS
            ):
                self._bind(pod)
            return
        if spec["nodeName"] != self.node.node_name:
            return
        if worker is not None:
            worker.update(pod)
            return
        if meta.get("deletionTimestamp"):  # deleted before it ran here: nothing to stop
            self._delete_now(pod)
            return
        if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            return  # ran under an earlier agent; never run a pod twice
        worker = PodWorker(pod, self.rest, self.node, self.hosts)
        self.workers[uid] = worker
        worker.update(pod)
        worker.start()

    def watch_pods(self) -> None:
        """List, then watch from the list's resourceVersion; relist when it expires."""
        path = "/api/v1/pods"
        while not self.stop.is_set():
            try:
                listing = self.rest.get(path)
                seen = set()
                for pod in listing["items"]:
                    seen.add(pod["metadata"]["uid"])
                    self.handle("ADDED", pod)
                for uid in set(self.workers) - seen:
                    self.handle("DELETED", self.workers[uid].pod)
                rv = listing["metadata"]["resourceVersion"]
                while not self.stop.is_set():
                    params = {"resourceVersion": rv, "timeoutSeconds": WATCH_SECONDS}
                    for event in self.rest.watch(path, params):
                        obj = event["object"]
                        if event["type"] == "ERROR":
                            raise ApiError(int(obj.get("code", 500)), obj)
                        rv = obj["metadata"]["resourceVersion"]
                        if event["type"] != "BOOKMARK":
                            self.handle(event["type"], obj)
                        if self.stop.is_set():
                            return
            except Exception as exc:  # 410 Gone or a dropped connection: relist
                if self.stop.is_set():
                    return
                if not (isinstance(exc, ApiError) and exc.status == 410):
                    print(f"node agent: watch: {exc!r}; relisting", file=sys.stderr)
                self.stop.wait(1.0)  # do not spin if the API server is down

    def shutdown(self) -> None:
        """Stop every pod's processes (short grace) and wait for the workers."""
        self.stop.set()
        for worker in list(self.workers.values()):
            worker.gone.set()  # the control plane is going away: write nothing more
            meta = {
                **worker.pod["metadata"],
                "deletionGracePeriodSeconds": 2,
                "deletionTimestamp": _micro_now(),
            }
            worker.update({**worker.pod, "metadata": meta})
        for worker in list(self.workers.values()):
            worker.join(20)
        cgroups.remove_agent_dir(self.node.cgroup_dir)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--node-name", default="testenv-node")
    parser.add_argument("--gpus", type=int, default=0, help="fake nvidia.com/gpu capacity")
    parser.add_argument("--apiserver-port", type=int, required=True)
    parser.add_argument(
        "--restart-backoff",
        type=float,
        nargs=2,
        default=(1.0, 10.0),
        metavar=("FIRST", "MAX"),
        help="container restart back-off (s)",
    )
    args = parser.parse_args(argv)
    node = NodeConfig(
        args.node_name,
        "127.0.0.1",
        args.apiserver_port,
        args.state_dir,
        tuple(args.restart_backoff),
        cgroups.agent_name(),
    )
    cgroups.remove_orphaned()
    agent = Agent(Rest(args.kubeconfig), node, args.gpus)

    def on_signal(signum: int, frame: object) -> None:
        agent.stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    agent.register()
    threading.Thread(target=agent._lease_loop, name="lease", daemon=True).start()
    threading.Thread(target=agent.watch_pods, name="pods", daemon=True).start()
    agent.stop.wait()
    agent.shutdown()


if __name__ == "__main__":
    main()
