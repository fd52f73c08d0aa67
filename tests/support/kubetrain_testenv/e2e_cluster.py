"""The cluster the end-to-end tests (tests/e2e) drive: kubectl/helm as the admin, the image
names, and the node's container runtime (list running containers, kill one, read a container
process's /proc status) — what a test observes, not what YAML says. Test support only."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .real_node import RealNode


@dataclass
class Container:
    """A running container, as the node's runtime reports it."""

    id: str
    namespace: str
    pod: str
    name: str
    pid: int
    node: str = ""


class Cluster:
    """What the e2e tests drive: kubectl, helm and the container runtime of the node(s)."""

    kubeconfig: Path
    kubectl_bin: str
    helm_bin: str
    operator_image: str
    trainer_image: str

    def kubectl(self, *args: str, timeout: float = 300, check: bool = True) -> str:
        return self._run([self.kubectl_bin, "--kubeconfig", str(self.kubeconfig), *args],
                         timeout, check)  # fmt: skip

    def kubectl_json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json"))

    def helm(self, *args: str, timeout: float = 600) -> str:
        return self._run([self.helm_bin, "--kubeconfig", str(self.kubeconfig), *args], timeout)

    @staticmethod
    def _run(argv: list[str], timeout: float, check: bool = True) -> str:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(argv[:4])}... failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def containers(self) -> list[Container]:
        """The running (non-sandbox) containers of every pod."""
        raise NotImplementedError

    def kill(self, container: Container) -> None:
        """SIGKILL a container's main process through the runtime (as an OOM kill would)."""
        raise NotImplementedError

    def proc_status(self, container: Container) -> dict[str, str]:
        """/proc/<pid>/status of the container's main process, read on its node."""
        raise NotImplementedError

    def on_nodes(self, *argv: str) -> None:
        """Run a command as root on every node's machine (to prepare a hostPath, say)."""
        raise NotImplementedError


def _parse_status(text: str) -> dict[str, str]:
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


class LocalCluster(Cluster):
    """The real nodes of kubetrain_testenv, on this machine."""

    def __init__(self, cp: Any, nodes: list[RealNode]) -> None:
        self.cp, self.nodes = cp, {node.name: node for node in nodes}
        self.kubeconfig = cp.kubeconfig
        self.kubectl_bin = str(cp.assets / "kubectl")
        self.helm_bin = str(cp.assets / "helm")
        self.operator_image = nodes[0].images["operator"].ref
        self.trainer_image = nodes[0].images["trainer"].ref

    def containers(self) -> list[Container]:
        return [c for node in self.nodes.values() for c in self._containers(node)]

    def _containers(self, node: RealNode) -> list[Container]:
        tasks = node.ctr("tasks", "ls").stdout.splitlines()[1:]
        found = []
        for line in tasks:
            task_id, pid, state = line.split()[:3]
            if state != "RUNNING":
                continue
            info = node.ctr("containers", "info", task_id)
            if info.returncode != 0:
                continue  # removed since
            labels = json.loads(info.stdout).get("Labels") or {}
            if labels.get("io.cri-containerd.kind") != "container":
                continue  # a pod's sandbox (pause)
            found.append(
                Container(
                    task_id,
                    labels.get("io.kubernetes.pod.namespace", ""),
                    labels.get("io.kubernetes.pod.name", ""),
                    labels.get("io.kubernetes.container.name", ""),
                    int(pid),
                    node.name,
                )
            )
        return found

    def kill(self, container: Container) -> None:
        done = self.nodes[container.node].ctr("tasks", "kill", "--signal", "SIGKILL", container.id)
        assert done.returncode == 0, done.stderr

    def proc_status(self, container: Container) -> dict[str, str]:
        return _parse_status(Path(f"/proc/{container.pid}/status").read_text())

    def on_nodes(self, *argv: str) -> None:
        self._run(list(argv), 60)


class KindCluster(Cluster):
    """A kind cluster made by tests/e2e/kind/run.sh (the runtime is reached by docker exec)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.kubeconfig = Path(os.environ["KUBECONFIG"])
        self.kubectl_bin = shutil.which("kubectl") or "kubectl"
        self.helm_bin = shutil.which("helm") or "helm"
        self.operator_image = os.environ["KUBETRAIN_E2E_OPERATOR_IMAGE"]
        self.trainer_image = os.environ["KUBETRAIN_E2E_TRAINER_IMAGE"]

    def _nodes(self) -> list[str]:
        out = subprocess.run(["kind", "get", "nodes", "--name", self.name],
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
        return out.split()

    def _exec(self, node: str, *argv: str) -> str:
        return self._run(["docker", "exec", node, *argv], 60)

    def containers(self) -> list[Container]:
        found = []
        for node in self._nodes():
            for c in json.loads(self._exec(node, "crictl", "ps", "-o", "json"))["containers"]:
                info = json.loads(self._exec(node, "crictl", "inspect", c["id"]))
                labels = c["labels"]
                found.append(
                    Container(
                        f"{node}/{c['id']}",
                        labels["io.kubernetes.pod.namespace"],
                        labels["io.kubernetes.pod.name"],
                        labels["io.kubernetes.container.name"],
                        int(info["info"]["pid"]),
                        node,
                    )
                )
        return found

    def kill(self, container: Container) -> None:
        node, cid = container.id.split("/", 1)
        self._exec(node, "ctr", "-n", "k8s.io", "tasks", "kill", "--signal", "SIGKILL", cid)

    def proc_status(self, container: Container) -> dict[str, str]:
        node = container.id.split("/", 1)[0]
        return _parse_status(self._exec(node, "cat", f"/proc/{container.pid}/status"))

    def on_nodes(self, *argv: str) -> None:
        for node in self._nodes():
            self._exec(node, *argv)
