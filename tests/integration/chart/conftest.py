"""A cluster of their own for the chart's tests, and a shell that acts as its user.

The chart's operator watches the whole cluster by default, so these tests do not share the
session's cluster (whose other tests run operators of their own): `chart_cluster` is a control
plane with kube-scheduler and one real node (containerd + runc, kubelet, kube-proxy, CoreDNS:
kubetrain_testenv.real_node) of the module's own. The chart's Deployment then runs the operator
image hack/images/build.sh built as a real container, with the pod's projected ServiceAccount
token, so the operator holds exactly the chart's RBAC; the jobs' workers run the trainer image.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from chart_user import User

from kubetrain_testenv import ControlPlane
from kubetrain_testenv.pytest_support import check_cleaned_up, started_real_cluster
from kubetrain_testenv.real_node import RealNode


@pytest.fixture(scope="module")
def chart_cluster(
    request: pytest.FixtureRequest, run_dirs: list[Path]
) -> Iterator[tuple[ControlPlane, list[RealNode]]]:
    with started_real_cluster(nodes=1) as (cp, nodes):
        yield cp, nodes
    # The jobs' run directories (hostPath /var/tmp on this machine), once no pod writes there.
    for path in run_dirs:
        shutil.rmtree(path, ignore_errors=True)
    check_cleaned_up(cp, nodes, request, "the chart's cluster")


@pytest.fixture(scope="module")
def run_dirs() -> list[Path]:
    """Where the tests' jobs keep their runs on the node; removed with the cluster."""
    return []


@pytest.fixture(scope="module")
def cluster(chart_cluster: tuple[ControlPlane, list[RealNode]]) -> ControlPlane:
    return chart_cluster[0]


@pytest.fixture(scope="module")
def node(chart_cluster: tuple[ControlPlane, list[RealNode]]) -> RealNode:
    return chart_cluster[1][0]


@pytest.fixture(scope="module")
def user(cluster: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> User:
    return User(cluster, tmp_path_factory.mktemp("user"))
