"""A fresh cluster per module for the chart's tests, and a shell that acts as its user.

The chart's operator watches the whole cluster by default, so these tests do not share the
session's control plane (whose other tests run operators of their own): `cluster` is a
ControlPlane + node agent of their own. The chart's Deployment then really runs there: the
node agent starts its container's command as a local process with the pod's projected
ServiceAccount token, so the operator holds exactly the chart's RBAC.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from chart_user import User

from kubetrain_testenv import ControlPlane
from kubetrain_testenv.pytest_support import started_control_plane


@pytest.fixture(scope="module")
def cluster() -> Iterator[ControlPlane]:
    with started_control_plane() as cp:
        yield cp
    left = cp.survivors()
    if not left:
        cp.remove_files()
    assert not left, f"processes survived the chart's control plane: {left}"


@pytest.fixture(scope="module")
def user(cluster: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> User:
    return User(cluster, tmp_path_factory.mktemp("user"))
