"""Helpers of the operator integration tests: the operator process, job builders, polling.

The jobs run on the session's real nodes (tests/integration/conftest.py) with the trainer image
hack/images/build.sh built; the operator runs as a local process."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from local_images import local_example

from kubetrain_testenv import ControlPlane, wait_for
from kubetrain_testenv.procs import free_port

REPO = Path(__file__).resolve().parents[3]
CRD = REPO / "crds" / "kubetrain.io_trainingjobs.yaml"
POLICY = REPO / "operator" / "manifests" / "trainer-progress-policy.yaml"
STANDIN = Path(__file__).with_name("standin_trainer.py")
# Where a stand-in job's containers see STANDIN's folder (a read-only hostPath: the nodes are
# this machine).
STANDIN_MOUNT = "/kubetrain-tests"
# The trainer image the nodes have, set once per session by the `trainer_image` fixture
# (conftest.py); before that (no real node: the job never runs a pod), a name no node has.
TRAINER_IMAGE = "localhost/kubetrain/trainer:no-node"
GROUP, VERSION, PLURAL = "kubetrain.io", "v1alpha1", "trainingjobs"
LABEL_JOB = "kubetrain.io/job-name"


def kubectl(cp: ControlPlane, *args: str) -> str:
    assert cp.assets is not None
    done = subprocess.run(
        [str(cp.assets / "kubectl"), "--kubeconfig", str(cp.kubeconfig), *args],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


class Operator:
    """`python -m kubetrain_operator` watching one namespace; restartable, killable."""

    def __init__(
        self, cp: ControlPlane, namespace: str, log: Path, kubeconfig: Path | None = None
    ) -> None:
        self.cp, self.namespace, self.log = cp, namespace, log
        self.kubeconfig = kubeconfig or cp.kubeconfig
        self.proc: subprocess.Popen[bytes] | None = None
        self.metrics_port = 0

    def start(self) -> Operator:
        self.metrics_port, self.health_port = free_port(), free_port()
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "kubetrain_operator", "--namespace", self.namespace,
                 "--metrics-port", str(self.metrics_port), "--health-port", str(self.health_port),
                 "--log-format", "plain"],
                stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
            )  # fmt: skip
        return self

    def kill(self) -> None:
        """SIGKILL: no cleanup at all, like a crashed or evicted operator pod."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics") as r:
            return r.read().decode()

    def healthy(self) -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz") as r:
            return r.status == 200

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in override.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def cpu_job(name: str, run_dir: Path, **spec: Any) -> dict[str, Any]:
    """examples/cpu-cluster.yaml with the local trainer image, its run directory on a hostPath
    both pods share: `run_dir`, made writable for the trainer's uid 1000 (1777, like the
    example's /var/tmp: the kubelet makes the job's subPath directory with the same mode)."""
    job = local_example(TRAINER_IMAGE)
    job["metadata"] = {"name": name}
    run_dir.chmod(0o1777)
    run = {"name": "kubetrain-run", "hostPath": {"path": str(run_dir), "type": "Directory"}}
    base = {"runPolicy": {"progressIntervalSeconds": 1}, "template": {"volumes": [run]}}
    job["spec"] = merge(merge(job["spec"], base), spec)
    return job


def standin_job(name: str, run_dir: Path, *args: str, **spec: Any) -> dict[str, Any]:
    """A job whose pods run the stand-in trainer (no torch) with `args`: the trainer image's
    python and kubetrain, standin_trainer.py from this folder mounted read-only."""
    job = cpu_job(name, run_dir, **spec)
    template = job["spec"]["template"]
    folder = {"name": "standin", "hostPath": {"path": str(STANDIN.parent), "type": "Directory"}}
    template["volumes"] = [*template.get("volumes", []), folder]
    mount = {"name": "standin", "mountPath": STANDIN_MOUNT, "readOnly": True}
    template["volumeMounts"] = [*template.get("volumeMounts", []), mount]
    command = ["python", f"{STANDIN_MOUNT}/{STANDIN.name}", *args]
    job["metadata"]["annotations"] = {"kubetrain.io/command": json.dumps(command)}
    return job


class Jobs:
    """TrainingJobs in one namespace, through the admin's client."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.namespace = namespace

    def create(self, job: dict[str, Any]) -> dict[str, Any]:
        return self.custom.create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, job
        )

    def get(self, name: str) -> dict[str, Any]:
        return self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name
        )

    def status(self, name: str) -> dict[str, Any]:
        return self.get(name).get("status") or {}

    def patch_spec(self, name: str, spec: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, name, {"spec": spec}
        )

    def delete(self, name: str) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name)

    def exists(self, name: str) -> bool:
        try:
            self.get(name)
            return True
        except ApiException as e:
            if e.status == 404:
                return False
            raise

    def pods(self, name: str) -> list[client.V1Pod]:
        return self.core.list_namespaced_pod(
            self.namespace, label_selector=f"{LABEL_JOB}={name}"
        ).items

    def events(self, name: str) -> list[client.CoreV1Event]:
        return [
            e for e in self.core.list_namespaced_event(self.namespace).items
            if e.involved_object.name == name and e.involved_object.kind == "TrainingJob"
        ]  # fmt: skip

    def wait_phase(
        self, name: str, phases: str | tuple[str, ...], timeout: float,
        seen: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """Poll until the phase is one of `phases`; `seen` gets every status polled."""
        wanted = (phases,) if isinstance(phases, str) else phases
        last: dict[str, Any] = {}

        def check() -> dict[str, Any] | None:
            status = self.status(name)
            last.update(status)
            if seen:
                seen(status)
            return status if status.get("phase") in wanted else None

        try:
            return wait_for(check, timeout, interval=0.25, what=f"{name} to be {'/'.join(wanted)}")
        except TimeoutError as e:
            brief = {k: last.get(k) for k in ("phase", "reason", "message", "restarts")}
            raise TimeoutError(f"{e}; last status {brief}") from e


def kill_pod_processes(namespace: str, pod: str, sig: int = signal.SIGKILL) -> int:
    """Signal every process of a pod's container, found by the env the operator sets (the
    containers of the real nodes are processes of this machine: /proc shows them as root)."""
    wanted = {f"KUBETRAIN_POD_NAME={pod}".encode(), f"KUBETRAIN_JOB_NAMESPACE={namespace}".encode()}
    killed = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = set((entry / "environ").read_bytes().split(b"\0"))
        except OSError:
            continue
        if wanted <= env:
            try:
                os.kill(int(entry.name), sig)
                killed += 1
            except ProcessLookupError:
                pass
    return killed


def until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    return wait_for(predicate, timeout, interval=0.25, what=what)

