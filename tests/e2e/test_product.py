"""The product as a user meets it, on real containers: the chart installed with the operator
image, examples/cpu-cluster.yaml run with the trainer image, observed through kubectl and the
node's container runtime. The tests run in file order and share the installed chart."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from e2e_helpers import (
    SYSTEM,
    apply_job,
    checkpoint_step,
    containers_of,
    example_job,
    install_chart,
    step,
    uninstall_chart,
)
from e2e_helpers import status as job_status
from e2e_helpers import wait_phase as wait_job_phase

from kubetrain_testenv import wait_for
from kubetrain_testenv.e2e_cluster import Cluster, Container
from kubetrain_testenv.pytest_support import TIMINGS

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

JOBS = "kubetrain-e2e"
NO_CAPS = "0000000000000000"
RUN_DIRS: list[str] = []


def status(cluster: Cluster, name: str) -> dict[str, Any]:
    return job_status(cluster, JOBS, name)


def assert_unprivileged(cluster: Cluster, container: Container, uid: int) -> None:
    """Observed on the running process: its uids, no capabilities, no privilege escalation."""
    proc = cluster.proc_status(container)
    assert proc["Uid"].split() == [str(uid)] * 4, proc["Uid"]
    assert proc["Gid"].split()[0] != "0", proc["Gid"]
    for field in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert proc[field] == NO_CAPS, f"{container.pod}: {field} {proc[field]}"
    assert proc["NoNewPrivs"] == "1", "allowPrivilegeEscalation: false not in force"


def apply_example(cluster: Cluster, name: str, cpu: str | None = None, **training: Any) -> None:
    """examples/cpu-cluster.yaml with the local trainer image (e2e_helpers.example_job)."""
    apply_job(cluster, JOBS, example_job(cluster, name, cpu, **training), RUN_DIRS)


def wait_phase(cluster: Cluster, name: str, phases: tuple[str, ...], timeout: float,
               seen: Any = None) -> dict[str, Any]:  # fmt: skip
    return wait_job_phase(cluster, JOBS, name, phases, timeout, seen)


@pytest.fixture(scope="module")
def installed(cluster: Cluster) -> Iterator[Cluster]:
    """The chart installed with the built operator image (if no module before did);
    uninstalled at the end if a test did not already. The jobs' run directories on the nodes
    go too (the trainer made them)."""
    install_chart(cluster)
    cluster.kubectl("create", "namespace", JOBS)
    yield cluster
    cluster.kubectl("delete", "namespace", JOBS, "--wait=false", check=False)
    if RUN_DIRS:
        cluster.on_nodes("rm", "-rf", *RUN_DIRS)
    uninstall_chart(cluster)


def test_operator_is_a_ready_pod_without_privileges(installed: Cluster) -> None:
    cluster = installed
    cluster.kubectl("rollout", "status", "-n", SYSTEM, "deployment/kubetrain-operator",
                    "--timeout=120s")  # fmt: skip
    (operator,) = containers_of(cluster, SYSTEM, "kubetrain-operator-")
    assert operator.name == "operator"
    assert_unprivileged(cluster, operator, 65532)
    probe = cluster.kubectl("exec", "-n", SYSTEM, "deployment/kubetrain-operator", "--",
                            "sh", "-c", "touch /probe 2>&1; echo rc=$?", check=False)  # fmt: skip
    assert "Read-only file system" in probe and "rc=1" in probe, probe


def test_cpu_example_succeeds_with_progress_and_logs(installed: Cluster) -> None:
    cluster = installed
    started = time.monotonic()
    apply_example(cluster, "cpu-ddp")
    running: list[dict[str, Any]] = []
    checked: dict[str, Any] = {}

    def watch(s: dict[str, Any]) -> None:
        if s.get("phase") == "Running" and step(s) > 0:
            running.append(s["progress"])
            if "worker" not in checked:
                workers = containers_of(cluster, JOBS, "cpu-ddp-worker-")
                if workers:
                    assert_unprivileged(cluster, workers[0], 1000)
                    checked["worker"] = workers[0].pod

    final = wait_phase(cluster, "cpu-ddp", ("Succeeded", "Failed"), 900, seen=watch)
    TIMINGS["e2e: cpu example apply to Succeeded"] = time.monotonic() - started

    assert final["phase"] == "Succeeded", final
    assert final["progress"]["step"] == final["progress"]["totalSteps"] == 300
    assert final["progress"]["loss"] > 0 and final["progress"]["lastCheckpoint"]["step"] == 300
    assert final["replicas"]["succeeded"] == 2 and final["restarts"] == 0
    assert running, "no progress was reported while the job ran"
    assert checked, "no worker container was seen running"
    logs = cluster.kubectl("logs", "-n", JOBS, "cpu-ddp-worker-0")
    assert "kubetrain" in logs and "step" in logs, logs[-2000:]


# Run inside a worker's container with its own ServiceAccount token, through the `kubernetes`
# Service: the HTTP status of each "METHOD PATH" in argv[1] (a JSON list).
IN_POD_CHECK = """
import json, os, ssl, sys, urllib.error, urllib.request
sa = "/var/run/secrets/kubernetes.io/serviceaccount"
token = open(sa + "/token").read()
tls = ssl.create_default_context(cafile=sa + "/ca.crt")
server = "https://%s:%s" % (os.environ["KUBERNETES_SERVICE_HOST"],
                            os.environ["KUBERNETES_SERVICE_PORT"])
body = json.dumps({"status": {"progress": {"step": 1, "loss": 1.0}}}).encode()
def code(call):
    method, path = call.split(" ", 1)
    req = urllib.request.Request(server + path, method=method,
                                 data=body if method == "PATCH" else None)
    req.add_header("Authorization", "Bearer " + token)
    req.add_header("Content-Type", "application/merge-patch+json")
    try:
        with urllib.request.urlopen(req, context=tls, timeout=10) as answer:
            return answer.status
    except urllib.error.HTTPError as e:
        return e.code
print(json.dumps({call: code(call) for call in json.loads(sys.argv[1])}))
"""


def test_trainer_pod_credentials_reach_only_its_own_job(installed: Cluster) -> None:
    """From inside a running worker (its token, its image, the cluster's network): its own
    job's status is readable; Secrets, pods and every other job are not."""
    cluster = installed
    other = "cpu-ddp"  # the example's job, left by the test above
    cluster.kubectl("get", "tj", other, "-n", JOBS)  # it exists: a 403 is RBAC, not absence
    apply_example(cluster, "cpu-creds", maxSteps=100000)
    wait_for(lambda: containers_of(cluster, JOBS, "cpu-creds-worker-0"), 300, 1.0,
             "cpu-creds' worker 0 container")  # fmt: skip
    jobs = f"/apis/kubetrain.io/v1alpha1/namespaces/{JOBS}/trainingjobs"
    expected = {
        f"GET {jobs}/cpu-creds/status": 200,  # the control: token, CA and network work
        f"GET {jobs}/{other}/status": 403,
        f"PATCH {jobs}/{other}/status": 403,
        f"GET {jobs}": 403,
        f"GET /api/v1/namespaces/{JOBS}/secrets": 403,
        f"GET /api/v1/namespaces/{SYSTEM}/secrets": 403,
        "GET /api/v1/secrets": 403,
        f"GET /api/v1/namespaces/{JOBS}/pods": 403,
    }
    out = cluster.kubectl("exec", "-n", JOBS, "cpu-creds-worker-0", "-c", "trainer", "--",
                          "python", "-c", IN_POD_CHECK, json.dumps(list(expected)))  # fmt: skip
    assert json.loads(out.strip().splitlines()[-1]) == expected
    cluster.kubectl("delete", "tj", "cpu-creds", "-n", JOBS, "--wait=true", "--timeout=180s")


def test_two_workers_on_two_nodes_rendezvous_across_the_network(installed: Cluster) -> None:
    """Workers too big to share a node (1.5 CPU of a node's 2) land on different nodes, find
    each other through the headless Service's DNS names and train to the end."""
    cluster = installed
    started = time.monotonic()
    apply_example(cluster, "cpu-2node", cpu="1500m", maxSteps=100)
    nodes: dict[str, tuple[str, str]] = {}

    def watch(s: dict[str, Any]) -> None:
        if s.get("phase") == "Running" and len(nodes) < 2:
            for pod in cluster.kubectl_json("get", "pods", "-n", JOBS)["items"]:
                name = pod["metadata"]["name"]
                if name.startswith("cpu-2node-worker-") and pod["status"].get("podIP"):
                    nodes[name] = (pod["spec"]["nodeName"], pod["status"]["podIP"])

    final = wait_phase(cluster, "cpu-2node", ("Succeeded", "Failed"), 900, seen=watch)
    TIMINGS["e2e: 2-node job apply to Succeeded"] = time.monotonic() - started

    assert final["phase"] == "Succeeded", final
    assert final["replicas"]["succeeded"] == 2 and final["restarts"] == 0
    assert len(nodes) == 2, nodes
    (node_a, ip_a), (node_b, ip_b) = nodes.values()
    assert node_a != node_b, f"both workers ran on {node_a}"
    assert ip_a.rsplit(".", 1)[0] != ip_b.rsplit(".", 1)[0], "one pod subnet: not two nodes"
    logs = cluster.kubectl("logs", "-n", JOBS, "cpu-2node-worker-0")  # rank 0 reports
    assert "step" in logs, logs[-2000:]


def test_killed_worker_container_restarts_the_group_from_its_checkpoint(
    installed: Cluster,
) -> None:
    cluster = installed
    # Longer than the example, so that the kill lands mid-run.
    apply_example(cluster, "cpu-restart", maxSteps=500)
    s = wait_for(lambda: (x := status(cluster, "cpu-restart")) and checkpoint_step(x) >= 50 and x,
                 600, 1.0, "a first checkpoint")  # fmt: skip
    saved = checkpoint_step(s)
    victims = containers_of(cluster, JOBS, "cpu-restart-worker-1")
    assert victims, "worker 1's container is not running"
    cluster.kill(victims[0])
    after: list[dict[str, Any]] = []

    def watch(x: dict[str, Any]) -> None:
        if x.get("restarts") == 1 and step(x) > 0:
            after.append(x)

    final = wait_phase(cluster, "cpu-restart", ("Succeeded", "Failed"), 1200, seen=watch)

    assert final["phase"] == "Succeeded", final
    assert final["restarts"] == 1
    assert after and min(step(x) for x in after) >= saved, "went back before the checkpoint"
    logs = cluster.kubectl("logs", "-n", JOBS, "cpu-restart-worker-0")
    resumed = [int(m) for m in re.findall(r"kubetrain: resuming from \S+ at step (\d+)", logs)]
    assert resumed and resumed[0] >= saved, logs[-3000:]


def test_deleting_the_jobs_leaves_no_containers(installed: Cluster) -> None:
    cluster = installed
    cluster.kubectl("delete", "tj", "--all", "-n", JOBS, "--wait=true", "--timeout=180s")
    wait_for(lambda: not containers_of(cluster, JOBS), 120, 1.0, "the jobs' containers to go")


def test_helm_uninstall_leaves_no_containers(installed: Cluster) -> None:
    cluster = installed
    cluster.helm("uninstall", "kubetrain", "-n", SYSTEM, "--wait")
    wait_for(lambda: not containers_of(cluster, SYSTEM), 120, 1.0, "the operator's container to go")
