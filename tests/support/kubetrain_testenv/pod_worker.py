"""One pod on the test node: sandbox, init containers, containers, status, deletion."""

from __future__ import annotations

import base64
import os
import shutil
import signal
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import pod_status, procs
from .cgroups import Cgroup
from .containers import Container, Launch, now, wait_all_dead
from .hosts_files import HostsFiles
from .pod_dns import pod_name
from .pod_env import EnvError, PodRuntime, container_argv, container_env, referenced_objects
from .pod_logs import pod_log_dir
from .pod_volumes import Mount, VolumeError, container_mounts, host_path, volume_files
from .rest import STRATEGIC_PATCH, ApiError, Rest

DEFAULT_TERMINATION_PATH = "/dev/termination-log"


@dataclass(frozen=True)
class NodeConfig:
    """What every pod on the node shares."""

    node_name: str
    host_ip: str
    apiserver_port: int
    state_dir: Path
    backoff: tuple[float, float]  # restart back-off: first, max (seconds)
    cgroup_dir: str = "default"  # this agent's directory among the containers' cgroups


class PodWorker(threading.Thread):
    """Plays the kubelet's part for one pod, from sandbox to deletion."""

    def __init__(self, pod: dict[str, Any], rest: Rest, node: NodeConfig, hosts: HostsFiles):
        meta = pod["metadata"]
        super().__init__(name=f"pod-{meta['namespace']}/{meta['name']}", daemon=True)
        self.pod = pod
        self.rest, self.node, self.hosts = rest, node, hosts
        self.ns, self.pod_name, self.uid = meta["namespace"], meta["name"], meta["uid"]
        self.sandbox = node.state_dir / "pods" / f"{self.ns}_{self.pod_name}_{self.uid}"
        self.log_dir = pod_log_dir(node.state_dir, self.ns, self.pod_name)
        self.ip = hosts.address(pod)
        self.start_time = now()
        self.deleting = threading.Event()
        self._wake = threading.Event()  # a container ended or the pod is being deleted
        self.gone = threading.Event()  # the API object is gone: nothing left to write
        self._lock = threading.Lock()
        self._containers: list[Container] = []
        spec = pod["spec"]
        self._init = {
            c["name"]: pod_status.waiting(c, "PodInitializing")
            for c in spec.get("initContainers", [])
        }
        self._main = {
            c["name"]: pod_status.waiting(c, "ContainerCreating") for c in spec["containers"]
        }

    # -- events from the agent -------------------------------------------------------

    def update(self, pod: dict[str, Any]) -> None:
        """The latest version of the pod; a deletionTimestamp starts the termination."""
        self.pod = pod
        if pod["metadata"].get("deletionTimestamp"):
            self.deleting.set()
            self._wake.set()
            for c in list(self._containers):
                c.terminate()

    def vanished(self) -> None:
        """The pod was removed without us (force deletion): kill at once."""
        self.gone.set()
        self.update({**self.pod, "metadata": {**self.pod["metadata"], "deletionTimestamp": now()}})
        for c in list(self._containers):
            c.signal(signal.SIGKILL)

    # -- the pod's life ----------------------------------------------------------------

    def run(self) -> None:
        try:
            self._publish()
            launches = self._prepare()
            if launches is not None and self._run_init(launches) and not self.deleting.is_set():
                self._run_main(launches)
            self.deleting.wait()  # a finished pod stays until it is deleted
            self._terminate()
        except Exception as exc:  # keep the agent alive; the pod reports the failure
            print(f"node agent: pod {self.ns}/{self.pod_name}: {exc!r}", file=sys.stderr)
            self._terminate()
        finally:
            self.hosts.close(self.sandbox / "hosts")
            shutil.rmtree(self.sandbox / "volumes", ignore_errors=True)

    def _prepare(self) -> dict[str, Launch] | None:
        """Build volumes and each container's launch; retry config errors like a kubelet."""
        self.sandbox.mkdir(parents=True, exist_ok=True)
        if self.log_dir.exists() and not (self.log_dir / f".{self.uid}").exists():
            shutil.rmtree(self.log_dir)  # an earlier pod of the same name
        self.log_dir.mkdir(parents=True, exist_ok=True)
        (self.log_dir / f".{self.uid}").touch()
        self.hosts.open(self.pod, self.sandbox / "hosts")
        delay = self.node.backoff[0]
        while not self.deleting.is_set():
            try:
                return self._launches()
            except (EnvError, VolumeError, ApiError) as exc:
                for name, status in self._main.items():
                    if "waiting" in status["state"]:
                        self._main[name] = pod_status.waiting(
                            self._spec_of(name), "CreateContainerConfigError", str(exc)
                        )
                self._publish()
                self.deleting.wait(delay)
                delay = min(delay * 2, self.node.backoff[1])
        return None

    def _spec_of(self, name: str) -> Mapping[str, Any]:
        spec = self.pod["spec"]
        return next(
            c for c in [*spec.get("initContainers", []), *spec["containers"]] if c["name"] == name
        )

    def _fetch(self, kind: str, names: set[str]) -> dict[str, dict[str, Any]]:
        found = {}
        for name in names:
            try:
                found[name] = self.rest.get(f"/api/v1/namespaces/{self.ns}/{kind}/{name}")
            except ApiError as exc:
                if exc.status != 404:
                    raise
        return found

    def _token(self, audience: str | None, expiration: int) -> str:
        sa = self.pod["spec"].get("serviceAccountName") or "default"
        spec: dict[str, Any] = {
            "expirationSeconds": expiration,
            "boundObjectRef": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": self.pod_name,
                "uid": self.uid,
            },
        }
        if audience:
            spec["audiences"] = [audience]
        answer = self.rest.request(
            "POST", f"/api/v1/namespaces/{self.ns}/serviceaccounts/{sa}/token", {"spec": spec}
        )
        return str(answer["status"]["token"])

    def _launches(self) -> dict[str, Launch]:
        pod, spec = self.pod, self.pod["spec"]
        cm_names, secret_names = referenced_objects(pod)
        configmaps = self._fetch("configmaps", cm_names)
        secrets = self._fetch("secrets", secret_names)
        runtime = PodRuntime(self.ip, self.node.host_ip, self.node.node_name)
        volume_dirs: dict[str, Path | str] = {}
        for volume in spec.get("volumes", []):
            files = volume_files(pod, volume, runtime, configmaps, secrets, self._token)
            if files is None:
                path = host_path(volume) or ""
                if volume.get("hostPath", {}).get("type") == "DirectoryOrCreate":
                    Path(path).mkdir(parents=True, exist_ok=True)  # as a kubelet does
                volume_dirs[volume["name"]] = path
                continue
            directory = self.sandbox / "volumes" / volume["name"]
            directory.mkdir(parents=True, exist_ok=True)
            for rel, content in files.items():
                (directory / rel).parent.mkdir(parents=True, exist_ok=True)
                (directory / rel).write_bytes(content)
            volume_dirs[volume["name"]] = directory
        env_cms = {n: o.get("data") or {} for n, o in configmaps.items()}
        env_secrets = {
            n: {
                k: base64.b64decode(v).decode(errors="replace")
                for k, v in (o.get("data") or {}).items()
            }
            for n, o in secrets.items()
        }
        name = pod_name(pod)
        base = self._base_env(name.hostname)
        launches = {}
        for c in [*spec.get("initContainers", []), *spec["containers"]]:
            env = container_env(pod, c, runtime, base, env_cms, env_secrets)
            termination = self.sandbox / f"{c['name']}.termination-log"
            for m in container_mounts(c, volume_dirs):
                if not os.path.exists(m.source):  # a subPath not there yet: kubelets create it
                    os.makedirs(m.source)
            mounts = [
                *container_mounts(c, volume_dirs),
                Mount(str(self.sandbox / "hosts"), "/etc/hosts"),
                Mount(
                    str(termination), c.get("terminationMessagePath") or DEFAULT_TERMINATION_PATH
                ),
            ]
            launches[c["name"]] = Launch(
                argv=container_argv(c, env),
                env=env,
                cwd=c.get("workingDir", ""),
                hostname=name.hostname,
                mounts=mounts,
                log=self.log_dir / f"{c['name']}.log",
                termination_log=termination,
                spec_file=self.sandbox / f"{c['name']}.launch.json",
                cgroup=Cgroup.create(f"{self.node.cgroup_dir}/{self.uid}_{c['name']}"),
            )
        return launches

    def _base_env(self, hostname: str) -> dict[str, str]:
        """What a container gets before its own env: PATH, HOME and in-cluster config."""
        port = str(self.node.apiserver_port)
        base = {
            # The agent's interpreter first, so `python` in a pod is the test venv's.
            "PATH": f"{os.path.dirname(sys.executable)}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": "/root",
            "HOSTNAME": hostname,
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": port,
            "KUBERNETES_SERVICE_PORT_HTTPS": port,
            "KUBERNETES_PORT": f"tcp://127.0.0.1:{port}",
        }
        for passthrough in ("LANG", "LC_ALL", "TZ", procs.RUN_ENV, procs.OWNER_ENV):
            if passthrough in os.environ:
                base[passthrough] = os.environ[passthrough]
        return base

    def _restart_policy(self) -> str:
        return str(self.pod["spec"].get("restartPolicy", "Always"))

    def _container(self, name: str, launch: Launch, init: bool) -> Container:
        policy = self._restart_policy()
        statuses = self._init if init else self._main

        def publish(status: dict[str, Any]) -> None:
            statuses[name] = status
            self._publish()

        def should_restart(code: int) -> bool:
            if init:
                return code != 0 and policy != "Never"
            return policy == "Always" or (policy == "OnFailure" and code != 0)

        container = Container(
            self._spec_of(name), launch, should_restart, publish, self.node.backoff
        )
        self._containers.append(container)
        if self.deleting.is_set():
            container.terminate()
        return container

    def _run(self, containers: list[Container]) -> bool:
        """Run containers concurrently until all end for good (True) or the pod is deleted."""
        threads = []
        for c in containers:

            def body(c: Container = c) -> None:
                try:
                    c.run()
                finally:
                    self._wake.set()

            threads.append(threading.Thread(target=body, name=f"{self.name}/{c.spec['name']}"))
            threads[-1].daemon = True
            threads[-1].start()
        # Deletion must not wait for processes that ignore SIGTERM: _terminate escalates.
        while not self.deleting.is_set() and any(t.is_alive() for t in threads):
            self._wake.wait()
            self._wake.clear()
        return not self.deleting.is_set()

    def _run_init(self, launches: Mapping[str, Launch]) -> bool:
        """Run init containers in order; False if one failed for good or the pod is deleted."""
        for c in self.pod["spec"].get("initContainers", []):
            container = self._container(c["name"], launches[c["name"]], init=True)
            if not self._run([container]) or container.exit_code != 0:
                return False
        return True

    def _run_main(self, launches: Mapping[str, Launch]) -> None:
        self._run(
            [
                self._container(c["name"], launches[c["name"]], init=False)
                for c in self.pod["spec"]["containers"]
            ]
        )

    def _terminate(self) -> None:
        """SIGTERM, wait the grace period, SIGKILL; then remove the pod object."""
        meta = self.pod["metadata"]
        grace = meta.get("deletionGracePeriodSeconds")
        grace = 30 if grace is None else int(grace)
        for c in self._containers:
            c.terminate()
        if not wait_all_dead(self._containers, grace):
            for c in self._containers:
                c.signal(signal.SIGKILL)
            wait_all_dead(self._containers, 10)
        for c in self._containers:
            c.kill_group()  # strays that left the leader behind
        if self.gone.is_set():
            return
        self._publish()
        try:
            self.rest.request(
                "DELETE",
                f"/api/v1/namespaces/{self.ns}/pods/{self.pod_name}",
                {"gracePeriodSeconds": 0, "preconditions": {"uid": self.uid}},
            )
        except ApiError as exc:
            if exc.status not in (404, 409):
                raise

    def _publish(self) -> None:
        """Write the pod's status (serialised: the latest state always lands last)."""
        if self.gone.is_set():
            return
        with self._lock:
            spec = self.pod["spec"]
            init = [self._init[c["name"]] for c in spec.get("initContainers", [])]
            main = [self._main[c["name"]] for c in spec["containers"]]
            status = pod_status.pod_status(
                self.pod, init, main, self.ip, self.node.host_ip, self.start_time, now()
            )
            # Remember conditions so transition times stay put across updates.
            self.pod = {**self.pod, "status": status}
            try:
                self.rest.request(
                    "PATCH",
                    f"/api/v1/namespaces/{self.ns}/pods/{self.pod_name}/status",
                    {"metadata": {"uid": self.uid}, "status": pod_status.as_patch(status)},
                    content_type=STRATEGIC_PATCH,
                )
            except Exception as exc:  # a container thread must not die of a failed write
                if not (isinstance(exc, ApiError) and exc.status in (404, 409)):
                    print(
                        f"node agent: status of {self.ns}/{self.pod_name}: {exc!r}", file=sys.stderr
                    )
