"""A job with a queueName on a cluster without Kueue says so (its own control plane: the shared
one may have Kueue's CRDs from test_kueue.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes import client
from operator_helpers import CRD, Jobs, Operator, kubectl, standin_job

from kubetrain_testenv import wait_for
from kubetrain_testenv.clients import kubernetes_client
from kubetrain_testenv.pytest_support import started_control_plane

pytestmark = pytest.mark.timeout(180)


def test_a_queue_name_without_kueue_holds_the_job_with_a_clear_reason(tmp_path: Path):
    with started_control_plane() as cp:
        kubectl(cp, "apply", "--server-side", "-f", str(CRD))
        cp.wait_crd_established("trainingjobs.kubetrain.io")
        api = kubernetes_client(cp.kubeconfig)
        client.CoreV1Api(api).create_namespace({"metadata": {"name": "lonely"}})
        jobs = Jobs(api, "lonely")
        op = Operator(cp, "lonely", tmp_path / "operator.log").start()
        try:
            (tmp_path / "run").mkdir()
            jobs.create(standin_job("waits", tmp_path / "run", "ok", "20", queueName="team"))
            status = wait_for(
                lambda: (s := jobs.status("waits")).get("reason") == "KueueNotInstalled" and s,
                60, what="the job to say Kueue is missing",
            )  # fmt: skip
        finally:
            op.stop()
        assert status["phase"] == "Queued"
        assert "install Kueue" in status["message"]
        assert jobs.pods("waits") == []
        assert not [c for c in status.get("conditions", []) if c["type"] == "ReconcileError"]
