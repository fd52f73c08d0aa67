"""The test control plane and node agent behave like a small real cluster."""

from __future__ import annotations

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
from kubetrain_testenv.objects import python_container, python_pod
from kubetrain_testenv.procs import alive, free_port

pytestmark = pytest.mark.timeout(120)


def finished(core: client.CoreV1Api, namespace: str, name: str, timeout: float = 60) -> Any:
    """Wait until the pod is Succeeded or Failed; return it."""

    def done() -> Any:
        pod = core.read_namespaced_pod(name, namespace)
        return pod if pod.status.phase in ("Succeeded", "Failed") else None

    return wait_for(done, timeout, what=f"pod {namespace}/{name} to finish")


def gone(core: client.CoreV1Api, namespace: str, name: str) -> bool:
    try:
        core.read_namespaced_pod(name, namespace)
        return False
    except ApiException as exc:
        return exc.status == 404


def test_pod_succeeds(control_plane: ControlPlane, core_v1: client.CoreV1Api, namespace: str):
    core_v1.create_namespaced_pod(namespace, python_pod("ok", "print('hello from a pod')"))

    pod = finished(core_v1, namespace, "ok")

    assert pod.status.phase == "Succeeded"
    term = pod.status.container_statuses[0].state.terminated
    assert (term.exit_code, term.reason) == (0, "Completed")
    assert term.started_at and term.finished_at and pod.status.start_time
    assert pod.status.pod_ip.startswith("127.1.")
    conditions = {c.type: c.status for c in pod.status.conditions}
    assert conditions["PodScheduled"] == conditions["Initialized"] == "True"
    assert conditions["Ready"] == "False"
    assert control_plane.pod_log(namespace, "ok") == "hello from a pod\n"


def test_pod_fails_with_exit_code_and_message(core_v1: client.CoreV1Api, namespace: str):
    code = "open('/dev/termination-log', 'w').write('out of cheese'); raise SystemExit(3)"
    core_v1.create_namespaced_pod(namespace, python_pod("bad", code))

    pod = finished(core_v1, namespace, "bad")

    assert pod.status.phase == "Failed"
    term = pod.status.container_statuses[0].state.terminated
    assert (term.exit_code, term.reason, term.message) == (3, "Error", "out of cheese")


def test_on_failure_restarts_until_success(
    control_plane: ControlPlane, core_v1: client.CoreV1Api, namespace: str
):
    # The emptyDir outlives restarts: fail twice, then succeed.
    code = textwrap.dedent("""
        import pathlib, sys
        f = pathlib.Path('/scratch/attempts')
        n = int(f.read_text() or 0) + 1 if f.exists() else 1
        f.write_text(str(n))
        print('attempt', n)
        sys.exit(0 if n == 3 else 1)
    """)
    pod = python_pod(
        "flaky",
        code,
        restart_policy="OnFailure",
        container={"volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}]},
        volumes=[{"name": "scratch", "emptyDir": {}}],
    )
    core_v1.create_namespaced_pod(namespace, pod)

    pod = finished(core_v1, namespace, "flaky")

    status = pod.status.container_statuses[0]
    assert pod.status.phase == "Succeeded"
    assert status.restart_count == 2
    assert status.last_state.terminated.exit_code == 1
    log = control_plane.pod_log(namespace, "flaky")
    assert log.splitlines() == ["attempt 1", "attempt 2", "attempt 3"]


def test_deleting_a_pod_terminates_its_process(
    control_plane: ControlPlane, core_v1: client.CoreV1Api, namespace: str
):
    # The worker starts its own session, as torchrun's workers do: it must die too.
    code = textwrap.dedent("""
        import os, signal, subprocess, sys, time
        def bye(*_):
            print('got SIGTERM', flush=True)
            sys.exit(0)
        signal.signal(signal.SIGTERM, bye)
        worker = subprocess.Popen(['sleep', '600'], start_new_session=True)
        print('pids', os.getpid(), worker.pid, flush=True)
        while True:
            time.sleep(1)
    """)
    core_v1.create_namespaced_pod(namespace, python_pod("sleeper", code))
    log = wait_for(
        lambda: "pids" in (text := control_plane.pod_log(namespace, "sleeper")) and text, 30
    )
    pid, worker = (int(p) for p in log.split()[1:3])
    # Pod processes are tagged like the control plane's, so the session-end check sees them.
    assert pid in [p for p, _ in control_plane.survivors()]

    core_v1.delete_namespaced_pod("sleeper", namespace)

    wait_for(lambda: gone(core_v1, namespace, "sleeper"), 30, what="the pod to be removed")
    assert not alive(pid)
    assert not alive(worker), Path(f"/proc/{worker}/status").read_text()
    assert "got SIGTERM" in control_plane.pod_log(namespace, "sleeper")


def test_grace_period_ends_in_sigkill(
    control_plane: ControlPlane, core_v1: client.CoreV1Api, namespace: str
):
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('up', flush=True); time.sleep(600)"
    )
    pod = python_pod("stubborn", code, terminationGracePeriodSeconds=1)
    core_v1.create_namespaced_pod(namespace, pod)
    wait_for(lambda: "up" in control_plane.pod_log(namespace, "stubborn"), 30)

    core_v1.delete_namespaced_pod("stubborn", namespace)

    wait_for(lambda: gone(core_v1, namespace, "stubborn"), 20, what="the pod to be removed")


def test_indexed_job_pods_see_their_completion_index(
    control_plane: ControlPlane, api_client: client.ApiClient, namespace: str
):
    index_env = {
        "name": "INDEX",
        "valueFrom": {
            "fieldRef": {
                "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"
            }
        },
    }
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "indexed"},
        "spec": {
            "completions": 3,
            "parallelism": 3,
            "completionMode": "Indexed",
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        python_container(
                            "main",
                            "import os; print('index', os.environ['INDEX'])",
                            env=[index_env],
                        )
                    ],
                }
            },
        },
    }
    batch = client.BatchV1Api(api_client)
    batch.create_namespaced_job(namespace, job)

    def complete() -> bool:
        status = batch.read_namespaced_job("indexed", namespace).status
        return (status.succeeded or 0) == 3

    wait_for(complete, 60, what="the Job to complete")
    core = client.CoreV1Api(api_client)
    pods = core.list_namespaced_pod(namespace, label_selector="job-name=indexed").items
    seen = set()
    for pod in pods:
        annotation = pod.metadata.annotations["batch.kubernetes.io/job-completion-index"]
        log = control_plane.pod_log(namespace, pod.metadata.name)
        assert log == f"index {annotation}\n"
        seen.add(annotation)
    assert seen == {"0", "1", "2"}


def test_pods_reach_each_other_by_hostname_and_subdomain(
    control_plane: ControlPlane, core_v1: client.CoreV1Api, namespace: str
):
    port = free_port()
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
    client_code = textwrap.dedent(f"""
        import socket, time
        for name in ('server.peers', 'server.peers.{namespace}.svc.cluster.local'):
            deadline = time.monotonic() + 30
            while True:  # the server may not listen yet
                try:
                    conn = socket.create_connection((name, {port}), timeout=5)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            conn.sendall(b'client')
            print(name, socket.gethostbyname(name), conn.recv(100).decode(), flush=True)
    """)
    for name, code in (("server", server_code), ("client", client_code)):
        pod = python_pod(name, code, hostname=name, subdomain="peers")
        pod["metadata"]["labels"] = {"app": "peers"}
        core_v1.create_namespaced_pod(namespace, pod)

    client_pod = finished(core_v1, namespace, "client")
    server_pod = finished(core_v1, namespace, "server")

    log = control_plane.pod_log(namespace, "client")
    assert client_pod.status.phase == "Succeeded", log
    assert server_pod.status.phase == "Succeeded", control_plane.pod_log(namespace, "server")
    server_ip = server_pod.status.pod_ip
    assert log.splitlines() == [
        f"server.peers {server_ip} hello client",
        f"server.peers.{namespace}.svc.cluster.local {server_ip} hello client",
    ]
    assert control_plane.pod_log(namespace, "server") == "listening on server\n"


def test_env_and_volumes_from_configmaps_secrets_and_downward_api(
    control_plane: ControlPlane, core_v1: client.CoreV1Api, namespace: str
):
    core_v1.create_namespaced_config_map(
        namespace, {"metadata": {"name": "settings"}, "data": {"mode": "fast", "a.yaml": "x: 1"}}
    )
    core_v1.create_namespaced_secret(
        namespace, {"metadata": {"name": "creds"}, "stringData": {"password": "hunter2"}}
    )
    code = textwrap.dedent("""
        import os
        for key in ('MODE', 'PASSWORD', 'POD_NAME', 'POD_NS', 'POD_IP', 'TEAM', 'NODE', 'GREETING'):
            print(key, os.environ[key])
        print('file', open('/etc/settings/a.yaml').read())
        print('secret', open('/etc/creds/password').read())
        print('cwd', os.getcwd())
        print('subPath', open('/etc/app/a.yaml').read())
        open('/cache/x', 'w').write('ok')
        print('emptyDir subPath', open('/work-dir/cache/x').read())
    """)

    def field(path: str) -> dict[str, Any]:
        return {"valueFrom": {"fieldRef": {"fieldPath": path}}}

    env = [
        {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
        {"name": "POD_NAME", **field("metadata.name")},
        {"name": "POD_NS", **field("metadata.namespace")},
        {"name": "POD_IP", **field("status.podIP")},
        {"name": "TEAM", **field("metadata.labels['team']")},
        {"name": "NODE", **field("spec.nodeName")},
        {"name": "GREETING", "value": "hi $(POD_NAME)"},
    ]
    mounts = [
        {"name": "settings", "mountPath": "/etc/settings", "readOnly": True},
        {"name": "creds", "mountPath": "/etc/creds"},
        {"name": "work", "mountPath": "/work-dir"},
        {"name": "settings", "mountPath": "/etc/app/a.yaml", "subPath": "a.yaml"},
        {"name": "work", "mountPath": "/cache", "subPath": "cache"},
    ]
    pod = python_pod(
        "envy",
        code,
        container={"env": env, "volumeMounts": mounts, "workingDir": "/work-dir"},
        volumes=[
            {"name": "settings", "configMap": {"name": "settings"}},
            {"name": "creds", "secret": {"secretName": "creds"}},
            {"name": "work", "emptyDir": {}},
        ],
    )
    pod["metadata"]["labels"] = {"team": "ml"}
    core_v1.create_namespaced_pod(namespace, pod)

    pod = finished(core_v1, namespace, "envy")

    log = control_plane.pod_log(namespace, "envy")
    assert pod.status.phase == "Succeeded", log
    assert log.splitlines() == [
        "MODE fast",
        "PASSWORD hunter2",
        "POD_NAME envy",
        f"POD_NS {namespace}",
        f"POD_IP {pod.status.pod_ip}",
        "TEAM ml",
        f"NODE {control_plane.node_name}",
        "GREETING hi envy",
        "file x: 1",
        "secret hunter2",
        "cwd /work-dir",
        "subPath x: 1",
        "emptyDir subPath ok",
    ]


def test_init_containers_run_first(
    control_plane: ControlPlane, core_v1: client.CoreV1Api, namespace: str
):
    mount = {"volumeMounts": [{"name": "shared", "mountPath": "/shared"}]}
    init = python_container("prepare", "open('/shared/msg', 'w').write('prepared')", **mount)
    pod = python_pod(
        "initialized",
        "print(open('/shared/msg').read())",
        container=mount,
        initContainers=[init],
        volumes=[{"name": "shared", "emptyDir": {}}],
    )
    core_v1.create_namespaced_pod(namespace, pod)

    pod = finished(core_v1, namespace, "initialized")

    assert pod.status.phase == "Succeeded"
    assert pod.status.init_container_statuses[0].state.terminated.exit_code == 0
    assert control_plane.pod_log(namespace, "initialized", "main") == "prepared\n"


def test_deleting_an_owner_collects_its_children(core_v1: client.CoreV1Api, namespace: str):
    owner = core_v1.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}})
    reference = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": "owner",
        "uid": owner.metadata.uid,
    }
    child = python_pod("child", "import time; time.sleep(600)")
    child["metadata"]["ownerReferences"] = [reference]
    core_v1.create_namespaced_pod(namespace, child)
    core_v1.create_namespaced_config_map(
        namespace, {"metadata": {"name": "child-config", "ownerReferences": [reference]}}
    )

    core_v1.delete_namespaced_config_map("owner", namespace)

    wait_for(lambda: gone(core_v1, namespace, "child"), 60, what="the child pod to be collected")

    def config_gone() -> bool:
        names = [c.metadata.name for c in core_v1.list_namespaced_config_map(namespace).items]
        return "child-config" not in names

    wait_for(config_gone, 30, what="the child ConfigMap to be collected")


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
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "reader"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "pod-reader",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": namespace}],
        },
    )

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


def test_pods_use_in_cluster_config_as_their_service_account(
    control_plane: ControlPlane,
    core_v1: client.CoreV1Api,
    api_client: client.ApiClient,
    namespace: str,
):
    core_v1.create_namespaced_service_account(namespace, {"metadata": {"name": "lister"}})
    client.RbacAuthorizationV1Api(api_client).create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "lister-view"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "view",
            },
            "subjects": [{"kind": "ServiceAccount", "name": "lister", "namespace": namespace}],
        },
    )
    code = textwrap.dedent("""
        from kubernetes import client, config
        config.load_incluster_config()
        ns = open('/var/run/secrets/kubernetes.io/serviceaccount/namespace').read()
        pods = client.CoreV1Api().list_namespaced_pod(ns).items
        print(sorted(p.metadata.name for p in pods))
        try:
            client.CoreV1Api().list_namespaced_secret(ns)
        except client.exceptions.ApiException as exc:
            print('secrets', exc.status)
    """)
    core_v1.create_namespaced_pod(
        namespace, python_pod("in-cluster", code, serviceAccountName="lister")
    )

    pod = finished(core_v1, namespace, "in-cluster")

    log = control_plane.pod_log(namespace, "in-cluster")
    assert pod.status.phase == "Succeeded", log
    assert log.splitlines() == ["['in-cluster']", "secrets 403"]


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


def test_torchrun_rendezvous_by_pod_names(
    control_plane: ControlPlane, core_v1: client.CoreV1Api, namespace: str
):
    port = free_port()
    script = textwrap.dedent("""
        import torch, torch.distributed as dist
        dist.init_process_group("gloo")
        total = torch.tensor([dist.get_rank() + 1.0])
        dist.all_reduce(total)
        print("rank", dist.get_rank(), "of", dist.get_world_size(), "sum", total.item())
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
    for rank in (0, 1):
        argv = [
            "python",
            "-m",
            "torch.distributed.run",
            "--nnodes=2",
            "--nproc-per-node=1",
            f"--node-rank={rank}",
            "--master-addr=trainer-0.trainers",
            f"--master-port={port}",
            "/opt/script/train.py",
        ]
        pod = python_pod(
            f"trainer-{rank}",
            "",
            container={
                "command": argv,
                "volumeMounts": [{"name": "script", "mountPath": "/opt/script"}],
            },
            hostname=f"trainer-{rank}",
            subdomain="trainers",
            volumes=[{"name": "script", "configMap": {"name": "script"}}],
        )
        pod["metadata"]["labels"] = {"app": "trainers"}
        core_v1.create_namespaced_pod(namespace, pod)

    for rank in (0, 1):
        pod = finished(core_v1, namespace, f"trainer-{rank}", timeout=90)
        log = control_plane.pod_log(namespace, f"trainer-{rank}")
        assert pod.status.phase == "Succeeded", log
        assert f"rank {rank} of 2 sum 3.0" in log


def test_dev_cluster_up_status_down(control_plane: ControlPlane, tmp_path: Path):
    env = {**os.environ, "KUBETRAIN_DEV_CLUSTER_DIR": str(tmp_path / "dev")}
    script = str(Path(__file__).parents[2] / "hack" / "dev-cluster.sh")

    def dev(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", script, command], capture_output=True, text=True, env=env, timeout=120
        )

    up = dev("up")
    assert up.returncode == 0, up.stderr
    export = up.stdout.strip().splitlines()[-1]
    assert export.startswith("export KUBECONFIG=")
    kubeconfig = export.removeprefix("export KUBECONFIG=")
    run_id = json.loads((tmp_path / "dev" / "ready.json").read_text())["run_id"]
    try:
        assert dev("status").returncode == 0
        nodes = subprocess.run(
            [str(control_plane.assets / "kubectl"), "--kubeconfig", kubeconfig, "get", "nodes"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert " Ready " in nodes.stdout, nodes.stderr
    finally:
        assert dev("down").returncode == 0
    assert dev("status").returncode == 1
    assert survivors(run_id) == []


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
