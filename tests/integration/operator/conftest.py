"""Operator tests: the CRD and admission policy installed once, the operator as a subprocess
per test (bound to the test's namespace), the jobs' pods on the session's real nodes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import operator_helpers
import pytest
from kubernetes import client
from kueue_queues import Queues
from operator_helpers import CRD, POLICY, Jobs, Operator, kubectl

from kubetrain_testenv import ControlPlane, wait_for
from kubetrain_testenv.kueue import Kueue
from kubetrain_testenv.real_node import RealNode


@pytest.fixture(scope="session")
def kubetrain_installed(control_plane: ControlPlane) -> ControlPlane:
    """The CRD (Established) and the trainer-progress admission policy."""
    kubectl(control_plane, "apply", "--server-side", "-f", str(CRD))
    kubectl(control_plane, "apply", "--server-side", "-f", str(POLICY))
    path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/trainingjobs.kubetrain.io"

    def established() -> bool:
        conditions = control_plane.request("GET", path).get("status", {}).get("conditions", [])
        return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

    wait_for(established, 60, what="the CRD to be Established")
    return control_plane


@pytest.fixture
def operator(
    kubetrain_installed: ControlPlane, namespace: str, tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[Operator]:  # fmt: skip
    op = Operator(kubetrain_installed, namespace, tmp_path / "operator.log").start()
    yield op
    op.stop()
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        print(f"--- operator log ---\n{op.output()[-6000:]}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    outcome = yield
    setattr(item, f"rep_{call.when}", outcome.get_result())


@pytest.fixture(scope="session")
def trainer_image(nodes: list[RealNode]) -> str:
    """The trainer image the nodes have, which cpu_job and standin_job put in their jobs."""
    operator_helpers.TRAINER_IMAGE = nodes[0].images["trainer"].ref
    return operator_helpers.TRAINER_IMAGE


@pytest.fixture
def jobs(api_client: client.ApiClient, namespace: str, trainer_image: str) -> Jobs:
    return Jobs(api_client, namespace)


@pytest.fixture(scope="module")
def kueue(kubetrain_installed: ControlPlane) -> Iterator[Kueue]:
    """Real Kueue's manager and webhooks, for the tests of one module."""
    k = Kueue(kubetrain_installed).start()
    yield k
    k.stop()


@pytest.fixture
def queues(kueue: Kueue, api_client: client.ApiClient, namespace: str) -> Iterator[Queues]:
    """The test's queues (created by `queues.create`), removed afterwards."""
    q = Queues(api_client, namespace)
    yield q
    q.delete()
