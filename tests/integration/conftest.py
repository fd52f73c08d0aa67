"""Fixtures for tests against a real control plane (see kubetrain_testenv).

- `control_plane` (session): a started `ControlPlane` with kube-scheduler and two real nodes
  (node-1, node-2: containerd + runc, kubelet, kube-proxy; CoreDNS on node-1) running the images
  hack/images/build.sh builds; its `kubeconfig` is the admin kubeconfig, `pod_log(ns, name)`
  reads pod output (through the kubelet, like `kubectl logs`),
  `service_account_kubeconfig(ns, sa)` acts as a ServiceAccount.
- `nodes` (session): the `RealNode`s (their `images[name].ref` are the images' references).
- `api_client` (session): a `kubernetes.client.ApiClient` for the admin.
- `core_v1` (session): `CoreV1Api` on it.
- `namespace` (function): a fresh namespace whose "default" ServiceAccount
  exists; deleted afterwards.
Plain helpers live in the package: `kubetrain_testenv.wait_for(predicate, timeout)`,
`kubetrain_testenv.clients.kubernetes_client(kubeconfig)`, and pod builders in
`kubetrain_testenv.objects`.

The binaries are built on first use by hack/control-plane/build.sh (minutes, once
per machine); if that fails, every test here errors with the build's output.
At the end of the session no process of the control plane may survive. Logs
(components' and pods') are kept under the printed directory when a test failed
or KUBETRAIN_TESTENV_KEEP is set.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from kubetrain_testenv import ControlPlane, wait_for
from kubetrain_testenv.clients import kubernetes_client
from kubetrain_testenv.pytest_support import RUN_IDS, check_cleaned_up, started_real_cluster
from kubetrain_testenv.real_node import RealNode


@pytest.fixture(scope="session")
def real_nodes(request: pytest.FixtureRequest) -> Iterator[tuple[ControlPlane, list[RealNode]]]:
    with started_real_cluster(nodes=2) as (cp, nodes):
        yield cp, nodes
    check_cleaned_up(cp, nodes, request, "the control plane or its nodes")


@pytest.fixture(scope="session")
def control_plane(real_nodes: tuple[ControlPlane, list[RealNode]]) -> ControlPlane:
    return real_nodes[0]


@pytest.fixture(scope="session")
def nodes(real_nodes: tuple[ControlPlane, list[RealNode]]) -> list[RealNode]:
    return real_nodes[1]


@pytest.fixture(scope="session")
def api_client(control_plane: ControlPlane) -> client.ApiClient:
    return kubernetes_client(control_plane.kubeconfig)


@pytest.fixture(scope="session")
def core_v1(api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


@pytest.fixture
def namespace(core_v1: client.CoreV1Api) -> Iterator[str]:
    """A fresh namespace, ready for pods (its default ServiceAccount exists)."""
    name = f"t-{secrets.token_hex(4)}"
    core_v1.create_namespace({"metadata": {"name": name}})
    wait_for(
        lambda: core_v1.read_namespaced_service_account("default", name),
        30,
        what=f"ServiceAccount {name}/default",
    )
    yield name
    # Namespace deletion is asynchronous (the controller manager empties it).
    core_v1.delete_namespace(name)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the session if any tagged process outlived it (even if a fixture did not run)."""
    from kubetrain_testenv import survivors

    left = [p for run_id in RUN_IDS for p in survivors(run_id)]
    if left:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"kubetrain_testenv: processes survived the session: {left}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.integration)
