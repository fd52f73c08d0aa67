"""What the e2e test modules share: the chart installed with the built operator image, jobs
made from examples/cpu-cluster.yaml with the local trainer image, and reading their status."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import yaml
from local_images import chart_image_args, local_example

from kubetrain_testenv import wait_for
from kubetrain_testenv.e2e_cluster import Cluster, Container
from kubetrain_testenv.pytest_support import TIMINGS

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "kubetrain"
SYSTEM = "kubetrain-system"


def chart_installed(cluster: Cluster) -> bool:
    return bool(cluster.helm("list", "-n", SYSTEM, "-q").strip())


def install_chart(cluster: Cluster) -> None:
    """The chart with the built operator image, its Deployment Ready; nothing to do if a
    module before installed it (the modules share it: one operator start per session)."""
    if chart_installed(cluster):
        return
    started = time.monotonic()
    cluster.helm(
        "upgrade", "--install", "kubetrain", str(CHART), "--namespace", SYSTEM,
        "--create-namespace", "--wait", "--timeout", "5m",
        *chart_image_args(cluster.operator_image),
    )  # fmt: skip
    TIMINGS.setdefault("e2e: helm install to operator Ready", time.monotonic() - started)


def uninstall_chart(cluster: Cluster) -> None:
    if chart_installed(cluster):
        cluster.helm("uninstall", "kubetrain", "-n", SYSTEM, "--wait")


def example_job(cluster: Cluster, name: str, cpu: str | None = None,
                **training: Any) -> dict[str, Any]:  # fmt: skip
    """examples/cpu-cluster.yaml as it is but for the local trainer image, `name`, and the
    `cpu` and `training` changes given."""
    job = local_example(cluster.trainer_image)
    job["metadata"]["name"] = name
    if cpu is not None:
        job["spec"]["resources"]["cpu"] = cpu
    job["spec"]["training"].update(training)
    return job


def apply_job(cluster: Cluster, namespace: str, job: dict[str, Any], run_dirs: list[str]) -> None:
    """`kubectl apply` the job; where its run directory lands on the nodes (the hostPath, then
    the operator's name-uid subPath) goes to `run_dirs`, for the caller to remove."""
    name = job["metadata"]["name"]
    manifest = Path(cluster.kubeconfig).parent / f"{namespace}-{name}.yaml"
    manifest.write_text(yaml.safe_dump(job))
    cluster.kubectl("apply", "-n", namespace, "-f", str(manifest))
    (volume,) = [v for v in job["spec"]["template"]["volumes"] if v["name"] == "kubetrain-run"]
    uid = cluster.kubectl("get", "tj", name, "-n", namespace, "-o", "jsonpath={.metadata.uid}")
    run_dirs.append(f"{volume['hostPath']['path']}/{name}-{uid}")


def status(cluster: Cluster, namespace: str, name: str) -> dict[str, Any]:
    return cluster.kubectl_json("get", "tj", name, "-n", namespace).get("status") or {}


def step(s: dict[str, Any]) -> int:
    return int((s.get("progress") or {}).get("step") or 0)


def checkpoint_step(s: dict[str, Any]) -> int:
    return int(((s.get("progress") or {}).get("lastCheckpoint") or {}).get("step") or 0)


def containers_of(cluster: Cluster, namespace: str, pod_prefix: str = "") -> list[Container]:
    return [
        c for c in cluster.containers()
        if c.namespace == namespace and c.pod.startswith(pod_prefix)
    ]  # fmt: skip


def wait_phase(
    cluster: Cluster, namespace: str, name: str, phases: tuple[str, ...], timeout: float,
    seen: Any = None, interval: float = 1.0,
) -> dict[str, Any]:  # fmt: skip
    """Poll the job's status until its phase is one of `phases`; `seen` gets every status."""

    def check() -> dict[str, Any] | None:
        s = status(cluster, namespace, name)
        if seen is not None:
            seen(s)
        return s if s.get("phase") in phases else None

    return wait_for(check, timeout, interval, f"TrainingJob {name} to be {'/'.join(phases)}")


class PodWatch:
    """`kubectl get pods --watch` in the background, for what polling can miss: the exit code
    of a container the kubelet reports in the moments before its deleted pod goes."""

    def __init__(self, cluster: Cluster, namespace: str, selector: str) -> None:
        self.argv = [cluster.kubectl_bin, "--kubeconfig", str(cluster.kubeconfig), "get",
                     "pods", "-n", namespace, "-l", selector, "--watch", "-o", "json",
                     "--output-watch-events"]  # fmt: skip
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def __enter__(self) -> PodWatch:
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)  # fmt: skip
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self.proc.stdout is not None
        pending = ""
        for line in self.proc.stdout:
            # One event per line as kubectl prints them; joined until whole, should it ever
            # pretty-print them over several lines.
            pending += line
            try:
                event = json.loads(pending)
            except json.JSONDecodeError:
                continue
            pending = ""
            with self._lock:
                self.events.append(event)

    def exit_codes(self) -> dict[str, int]:
        """Pod name → the exit code of its (first) container that terminated, as seen."""
        codes: dict[str, int] = {}
        with self._lock:
            events = list(self.events)
        for event in events:
            pod = event.get("object") or {}
            for c in (pod.get("status") or {}).get("containerStatuses") or []:
                done = (c.get("state") or {}).get("terminated")
                if done is not None:
                    codes.setdefault(pod["metadata"]["name"], int(done["exitCode"]))
        return codes

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self._reader.join(timeout=10)
