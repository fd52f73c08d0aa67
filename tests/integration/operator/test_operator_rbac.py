"""The operator runs with exactly operator/manifests/operator-rbac.yaml (what the chart grants)."""

from __future__ import annotations

from pathlib import Path

import pytest
from operator_helpers import REPO, Jobs, Operator, kubectl, standin_job, until

from kubetrain_testenv import ControlPlane

pytestmark = pytest.mark.timeout(120)
RBAC = REPO / "operator" / "manifests" / "operator-rbac.yaml"


def test_operator_needs_nothing_beyond_its_cluster_role(
    kubetrain_installed: ControlPlane, namespace: str, jobs: Jobs, tmp_path: Path
):
    cp = kubetrain_installed
    kubectl(cp, "apply", "--server-side", "-f", str(RBAC))
    kubectl(cp, "-n", namespace, "create", "serviceaccount", "kubetrain-operator")
    # Namespaced mode: the ClusterRole bound in one watched namespace only.
    kubectl(cp, "-n", namespace, "create", "rolebinding", "kubetrain-operator",
            "--clusterrole=kubetrain-operator", f"--serviceaccount={namespace}:kubetrain-operator")
    kubectl(cp, "create", "clusterrolebinding", f"kubetrain-operator-framework-{namespace}",
            "--clusterrole=kubetrain-operator-framework",
            f"--serviceaccount={namespace}:kubetrain-operator")
    kubeconfig = cp.service_account_kubeconfig(namespace, "kubetrain-operator")
    op = Operator(cp, namespace, tmp_path / "operator.log", kubeconfig=kubeconfig).start()
    try:
        run = tmp_path / "run"
        run.mkdir()
        jobs.create(standin_job("least", run, "ok", "20", runPolicy={"ttlSecondsAfterFinished": 3}))
        jobs.wait_phase("least", "Succeeded", 60)
        # ttlSecondsAfterFinished: the operator may delete the job, and does.
        until(lambda: not jobs.exists("least"), 30, "the TTL deletion")
    finally:
        op.stop()
        kubectl(cp, "delete", "clusterrolebinding", f"kubetrain-operator-framework-{namespace}")
    log = op.output()
    assert "403" not in log and "Forbidden" not in log, log[-3000:]
    assert any(e.reason == "Completed" for e in jobs.events("least"))
