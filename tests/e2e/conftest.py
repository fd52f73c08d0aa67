"""The cluster the end-to-end tests run on: real containers either way.

- Default (`make test`): a local control plane with kube-scheduler and two real nodes on one
  LAN (each: containerd + runc, kubelet, kube-proxy in its own network namespace; CoreDNS on the
  first; kubetrain_testenv.real_node) running the images hack/images/build.sh builds. Needs root
  and Debian's packages (hack/node/install.sh).
- `tests/e2e/kind/run.sh` (Docker + kind): it makes the cluster (two workers), loads the images
  and runs these same tests with KUBETRAIN_E2E_KIND_CLUSTER, KUBECONFIG and
  KUBETRAIN_E2E_*_IMAGE set.

Tests see a `Cluster` (kubetrain_testenv.e2e_cluster).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator

import pytest
from e2e_helpers import uninstall_chart

from kubetrain_testenv.e2e_cluster import Cluster, KindCluster, LocalCluster
from kubetrain_testenv.pytest_support import check_cleaned_up, started_real_cluster


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    kind = os.environ.get("KUBETRAIN_E2E_KIND_CLUSTER")
    if kind:
        yield KindCluster(kind)
        return
    with started_real_cluster(nodes=2) as (cp, nodes):
        local = LocalCluster(cp, nodes)
        yield local
        # Installed by the first module that needed it, uninstalled by test_product's last
        # test; if that did not run, here (its pods must go before the leftovers check).
        with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
            uninstall_chart(local)
    check_cleaned_up(cp, nodes, request, "the real node")
