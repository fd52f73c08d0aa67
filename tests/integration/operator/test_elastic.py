"""Elastic size on the real API server: parallelism.nodes of a running job with minNodes/maxNodes
changes → the group checkpoints, restarts at the new size and resumes; without bounds the API
server refuses the change."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes.client.exceptions import ApiException
from operator_helpers import Jobs, Operator, standin_job, until

pytestmark = pytest.mark.timeout(180)


def test_a_running_elastic_job_shrinks_and_resumes(
    operator: Operator, jobs: Jobs, tmp_path: Path
):
    run = tmp_path / "run"
    run.mkdir()
    parallelism = {"nodes": 2, "minNodes": 1, "maxNodes": 2}
    jobs.create(standin_job("elastic", run, "ok", "600", parallelism=parallelism,
                            runPolicy={"restartBackoffSeconds": 1, "maxRestarts": 0}))  # fmt: skip
    jobs.wait_phase("elastic", "Running", 60)
    until(lambda: (jobs.status("elastic").get("progress") or {}).get("lastCheckpoint"), 60,
          "a first checkpoint")  # fmt: skip

    jobs.patch_spec("elastic", {"parallelism": {"nodes": 1}})

    def one_new_pod() -> bool:
        pods = [p for p in jobs.pods("elastic") if not p.metadata.deletion_timestamp]
        return len(pods) == 1 and pods[0].metadata.labels["kubetrain.io/nodes"] == "1"

    until(one_new_pod, 60, "one pod of the new size")
    (pod,) = [p for p in jobs.pods("elastic") if not p.metadata.deletion_timestamp]
    env = {e.name: e.value for e in pod.spec.containers[0].env}
    assert (env["PET_NNODES"], pod.metadata.labels["kubetrain.io/restart-generation"]) == ("1", "1")
    status = jobs.wait_phase("elastic", "Succeeded", 120)

    assert (status["restarts"], status["disruptions"]) == (1, 1)  # maxRestarts 0: not a failure
    assert status["plan"]["worldSize"] == 1
    assert status["progress"]["step"] == 600
    events = {e.reason: e.message for e in jobs.events("elastic")}
    assert events["Resized"] == "Restarting: restarting at 1 node(s)"


def test_nodes_of_a_fixed_size_job_cannot_change(operator: Operator, jobs: Jobs, tmp_path: Path):
    jobs.create(standin_job("fixed", tmp_path, "ok", "10"))

    with pytest.raises(ApiException) as e:
        jobs.patch_spec("fixed", {"parallelism": {"nodes": 1}})

    assert e.value.status == 422
    assert "parallelism are immutable (but parallelism.nodes of an elastic job" in e.value.body


def test_an_elastic_job_cannot_leave_its_bounds(operator: Operator, jobs: Jobs, tmp_path: Path):
    parallelism = {"nodes": 2, "minNodes": 2, "maxNodes": 4}
    jobs.create(standin_job("bounded", tmp_path, "ok", "10", parallelism=parallelism))

    with pytest.raises(ApiException) as e:
        jobs.patch_spec("bounded", {"parallelism": {"nodes": 1}})

    assert e.value.status == 422 and "nodes must lie within minNodes and maxNodes" in e.value.body
