"""What the test cluster itself gives the other tests: two real nodes whose pods find each other
by hostname and subdomain, reach the API server as their ServiceAccount, rendezvous torchrun
by pod names; kubectl, helm, CRDs and RBAC as on any cluster; and `make dev-cluster`.

(How a pod runs, restarts, stops or gets its env and volumes is the real kubelet's business
now: nothing here tests Kubernetes itself.)"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kubetrain_testenv import ControlPlane, survivors, wait_for
from kubetrain_testenv.clients import kubernetes_client
from kubetrain_testenv.objects import python_pod
from kubetrain_testenv.real_node import RealNode

pytestmark = pytest.mark.timeout(300)
REPO = Path(__file__).resolve().parents[2]


def finished(core: client.CoreV1Api, namespace: str, name: str, timeout: float = 120) -> Any:
    """Wait until the pod is Succeeded or Failed; return it."""

    def done() -> Any:
        pod = core.read_namespaced_pod(name, namespace)
        return pod if pod.status.phase in ("Succeeded", "Failed") else None

    return wait_for(done, timeout, what=f"pod {namespace}/{name} to finish")


def on_node(pod: dict[str, Any], node: RealNode) -> dict[str, Any]:
    """`pod` bound to `node` (no scheduler choice: the test wants the pods on two nodes)."""
    pod["spec"]["nodeName"] = node.name
    return pod


def bind(api: client.ApiClient, namespace: str, account: str, role: tuple[str, str]) -> None:
    """A RoleBinding of ServiceAccount `account` to `role` (kind, name)."""
    kind, name = role
    client.RbacAuthorizationV1Api(api).create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": f"{account}-{name}"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
        },
    )


def in_subnet(ip: str, node: RealNode) -> bool:
    return ipaddress.ip_address(ip) in ipaddress.ip_network(node.pod_subnet)


def test_pods_on_two_nodes_reach_each_other_by_hostname_and_subdomain(
    control_plane: ControlPlane, nodes: list[RealNode], core_v1: client.CoreV1Api, namespace: str
):
    port = 7000  # every pod has its own network namespace: no port to share
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "peers"},
        "spec": {"clusterIP": "None", "selector": {"app": "peers"}, "ports": [{"port": port}]},
    }
    core_v1.create_namespaced_service(namespace, service)
    # The server answers once per name the client tries.
    server_code = textwrap.dedent(f"""
        import socket
        s = socket.create_server(('0.0.0.0', {port}))
        print('listening on', socket.gethostname(), flush=True)
        for _ in range(2):
            conn, _ = s.accept()
            conn.sendall(b'hello ' + conn.recv(100))
    """)
    # The server's DNS record appears once it is Ready: retry until then.
    client_code = textwrap.dedent(f"""
        import socket, time
        for name in ('server.peers', 'server.peers.{namespace}.svc.cluster.local'):
            deadline = time.monotonic() + 90
            while True:
                try:
                    conn = socket.create_connection((name, {port}), timeout=5)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
            conn.sendall(b'client')
            print(name, socket.gethostbyname(name), conn.recv(100).decode(), flush=True)
    """)
    image = nodes[0].images["trainer"].ref
    for name, code, node in (("server", server_code, nodes[0]), ("client", client_code, nodes[1])):
        pod = python_pod(name, code, container={"image": image}, hostname=name, subdomain="peers")
        pod["metadata"]["labels"] = {"app": "peers"}
        core_v1.create_namespaced_pod(namespace, on_node(pod, node))

    client_pod = finished(core_v1, namespace, "client")
    server_pod = finished(core_v1, namespace, "server")

    log = control_plane.pod_log(namespace, "client")
    assert client_pod.status.phase == "Succeeded", log
    assert server_pod.status.phase == "Succeeded", control_plane.pod_log(namespace, "server")
    server_ip = server_pod.status.pod_ip
    assert in_subnet(server_ip, nodes[0]) and in_subnet(client_pod.status.pod_ip, nodes[1])
    assert log.splitlines() == [
        f"server.peers {server_ip} hello client",
        f"server.peers.{namespace}.svc.cluster.local {server_ip} hello client",
    ]
    assert control_plane.pod_log(namespace, "server") == "listening on server\n"


def test_pods_use_in_cluster_config_as_their_service_account(
    control_plane: ControlPlane,
    nodes: list[RealNode],
    core_v1: client.CoreV1Api,
    api_client: client.ApiClient,
    namespace: str,
):
    core_v1.create_namespaced_service_account(namespace, {"metadata": {"name": "lister"}})
    bind(api_client, namespace, "lister", ("ClusterRole", "view"))
    # The operator's image has the kubernetes client; the API server is reached through the
    # `kubernetes` Service (kube-proxy), with the pod's projected token.
    code = textwrap.dedent("""
        import os
        from kubernetes import client, config
        config.load_incluster_config()
        print(os.environ['KUBERNETES_SERVICE_HOST'])
        ns = open('/var/run/secrets/kubernetes.io/serviceaccount/namespace').read()
        pods = client.CoreV1Api().list_namespaced_pod(ns).items
        print(sorted(p.metadata.name for p in pods))
        try:
            client.CoreV1Api().list_namespaced_secret(ns)
        except client.exceptions.ApiException as exc:
            print('secrets', exc.status)
    """)
    image = nodes[0].images["operator"].ref
    pod = python_pod("in-cluster", code, container={"image": image}, serviceAccountName="lister")
    core_v1.create_namespaced_pod(namespace, pod)

    pod = finished(core_v1, namespace, "in-cluster")

    log = control_plane.pod_log(namespace, "in-cluster")
    assert pod.status.phase == "Succeeded", log
    service_ip = core_v1.read_namespaced_service("kubernetes", "default").spec.cluster_ip
    assert log.splitlines() == [service_ip, "['in-cluster']", "secrets 403"]


def test_torchrun_rendezvous_by_pod_names_across_the_nodes(
    control_plane: ControlPlane, nodes: list[RealNode], core_v1: client.CoreV1Api, namespace: str
):
    script = textwrap.dedent("""
        import socket, torch, torch.distributed as dist
        dist.init_process_group("gloo")
        total = torch.tensor([dist.get_rank() + 1.0])
        dist.all_reduce(total)
        print("rank", dist.get_rank(), "of", dist.get_world_size(), "sum", total.item(),
              "on", socket.gethostname())
    """)
    core_v1.create_namespaced_config_map(
        namespace, {"metadata": {"name": "script"}, "data": {"train.py": script}}
    )
    core_v1.create_namespaced_service(
        namespace,
        {
            "metadata": {"name": "trainers"},
            "spec": {"clusterIP": "None", "selector": {"app": "trainers"}},
        },
    )
    image = nodes[0].images["trainer"].ref
    for rank, node in enumerate(nodes[:2]):
        argv = [
            "python",
            "-m",
            "torch.distributed.run",
            "--nnodes=2",
            "--nproc-per-node=1",
            f"--node-rank={rank}",
            "--master-addr=trainer-0.trainers",
            "--master-port=29500",
            "/opt/script/train.py",
        ]
        pod = python_pod(
            f"trainer-{rank}",
            "",
            container={
                "image": image,
                "command": argv,
                "volumeMounts": [{"name": "script", "mountPath": "/opt/script"}],
            },
            hostname=f"trainer-{rank}",
            subdomain="trainers",
            volumes=[{"name": "script", "configMap": {"name": "script"}}],
        )
        pod["metadata"]["labels"] = {"app": "trainers"}
        core_v1.create_namespaced_pod(namespace, on_node(pod, node))

    for rank, node in enumerate(nodes[:2]):
        pod = finished(core_v1, namespace, f"trainer-{rank}", timeout=240)
        log = control_plane.pod_log(namespace, f"trainer-{rank}")
        assert pod.status.phase == "Succeeded", log
        assert pod.spec.node_name == node.name
        assert f"rank {rank} of 2 sum 3.0 on trainer-{rank}" in log


def test_rbac_denies_a_service_account_without_permission(
    control_plane: ControlPlane,
    core_v1: client.CoreV1Api,
    api_client: client.ApiClient,
    namespace: str,
):
    for sa in ("nobody", "reader"):
        core_v1.create_namespaced_service_account(namespace, {"metadata": {"name": sa}})
    rbac = client.RbacAuthorizationV1Api(api_client)
    rbac.create_namespaced_role(
        namespace,
        {
            "metadata": {"name": "pod-reader"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}],
        },
    )
    bind(api_client, namespace, "reader", ("Role", "pod-reader"))

    def as_sa(name: str) -> client.CoreV1Api:
        kubeconfig = control_plane.service_account_kubeconfig(namespace, name)
        return client.CoreV1Api(kubernetes_client(kubeconfig))

    with pytest.raises(ApiException) as denied:
        as_sa("nobody").list_namespaced_pod(namespace)
    assert denied.value.status == 403
    assert as_sa("reader").list_namespaced_pod(namespace).items == []
    with pytest.raises(ApiException) as denied:
        as_sa("reader").list_namespaced_secret(namespace)
    assert denied.value.status == 403


def _tool(control_plane: ControlPlane, *argv: str) -> str:
    assert control_plane.assets is not None
    env = {**os.environ, "KUBECONFIG": str(control_plane.kubeconfig), "HOME": "/tmp"}
    done = subprocess.run(
        [str(control_plane.assets / argv[0]), *argv[1:]],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_kubectl_and_helm_work_against_it(
    control_plane: ControlPlane, core_v1: client.CoreV1Api, namespace: str, tmp_path: Path
):
    assert "Server Version: v1.33" in _tool(control_plane, "kubectl", "version")
    nodes = _tool(control_plane, "kubectl", "get", "nodes", "--no-headers").splitlines()
    assert [line.split()[:2] for line in nodes] == [["node-1", "Ready"], ["node-2", "Ready"]]
    assert "v3." in _tool(control_plane, "helm", "version", "--short")
    chart = tmp_path / "demo"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(
        "apiVersion: v2\nname: demo\nversion: 0.1.0\nkubeVersion: '>=1.30.0-0'\n"
    )
    (chart / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-cm\n"
        "data:\n  kube: {{ .Capabilities.KubeVersion.Version | quote }}\n"
    )

    _tool(control_plane, "helm", "install", "demo", str(chart), "-n", namespace, "--wait")

    cm = core_v1.read_namespaced_config_map("demo-cm", namespace)
    assert cm.data["kube"].startswith("v1.33.")
    assert "demo" in _tool(control_plane, "helm", "list", "-n", namespace, "-q")


def test_a_crd_becomes_established(control_plane: ControlPlane, tmp_path: Path):
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.testenv.kubetrain.io"},
        "spec": {
            "group": "testenv.kubetrain.io",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object"}},
                }
            ],
        },
    }
    path = tmp_path / "crd.json"
    path.write_text(json.dumps(crd))

    applied = control_plane.kubectl("apply", "--server-side", "-f", str(path))
    assert applied.returncode == 0, applied.stderr

    control_plane.wait_crd_established("widgets.testenv.kubetrain.io")
    listed = control_plane.kubectl("get", "widgets", "-A")
    assert listed.returncode == 0, listed.stderr


def test_dev_cluster_up_status_logs_down(control_plane: ControlPlane, tmp_path: Path):
    # No operator: what is tested is the cluster a user gets (the operator is the chart's).
    env = {
        **os.environ,
        "KUBETRAIN_DEV_CLUSTER_DIR": str(tmp_path / "dev"),
        "KUBETRAIN_DEV_CLUSTER_THEN": "",
    }
    script = str(REPO / "hack" / "dev-cluster.sh")

    def dev(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", script, command], capture_output=True, text=True, env=env, timeout=600
        )

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*kubectl, *args], capture_output=True, text=True, timeout=60)

    up = dev("up")
    run_id = json.loads((tmp_path / "dev" / "ready.json").read_text())["run_id"]
    try:
        assert up.returncode == 0, up.stderr
        lines = up.stdout.strip().splitlines()
        assert lines[-1].startswith("export KUBECONFIG=")
        kubeconfig = lines[-1].removeprefix("export KUBECONFIG=")
        pause = next(line.split()[4] for line in lines if line.startswith("# local image pause:"))
        assert control_plane.assets is not None
        kubectl = [str(control_plane.assets / "kubectl"), "--kubeconfig", kubeconfig]
        assert dev("status").returncode == 0
        nodes = run("get", "nodes")
        assert " Ready " in nodes.stdout, nodes.stderr
        hello = run(
            "run", "hello", f"--image={pause}", "--image-pull-policy=Never", "--restart=Never",
            "--command", "--", "/bin/busybox", "echo", "hi there",
        )  # fmt: skip
        assert hello.returncode == 0, hello.stderr
        wait_for(lambda: run("logs", "hello").stdout == "hi there\n", 120,
                 what="`kubectl logs` of a pod on the dev cluster")  # fmt: skip
    finally:
        assert dev("down").returncode == 0
    assert dev("status").returncode == 1
    assert survivors(run_id) == []
