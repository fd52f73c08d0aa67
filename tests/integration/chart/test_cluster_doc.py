"""docs/cluster.md, run as a new user would, on a fresh cluster with a real node: the chart
installs, its operator (the chart's Deployment: the operator image as a real container, under
the chart's ServiceAccount) trains the example to Succeeded in trainer containers, its RBAC is
exactly the audited table, trainer credentials reach nothing but their own job's progress, and
upgrade and uninstall behave as documented.

The tests run in file order and build on each other (one install, one job). The only
departures from the documented commands are the images, since no registry is reachable here:
`helm install` gets the operator image hack/images/build.sh built (local_images.
chart_image_args), the example is applied from a copy naming the local trainer image, and
`kubectl apply -k` applies an overlay of deploy/kustomize/base that sets the operator image (as
docs/gitops.md tells users to).
"""

from __future__ import annotations

import json
import os
import queue
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_user import User
from cluster_doc import (
    APPLY,
    APPLY_CRD,
    DELETE_CRD,
    DELETE_JOBS,
    DESCRIBE,
    EVENTS,
    GET_WIDE,
    INSTALL,
    OPERATOR,
    PODS,
    ROLLOUT,
    UNINSTALL,
    UPGRADE,
    WAIT,
    WATCH,
)
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubetrain_chart import ROOT
from local_images import chart_image_args, local_example

from kubetrain_testenv import ControlPlane, wait_for
from kubetrain_testenv.clients import kubernetes_client
from kubetrain_testenv.real_node import RealNode

# Per test; the first one's includes starting the cluster (minutes if the images must be
# imported into the machine's image store first).
pytestmark = pytest.mark.timeout(900)

NS = "kubetrain-system"
SA = "kubetrain-operator"
GROUP, VERSION, PLURAL = "kubetrain.io", "v1alpha1", "trainingjobs"
EXAMPLE = "examples/cpu-cluster.yaml"
# The chart's default ports (values.yaml): the operator's health port, its metrics Service's.
HEALTH_PORT, METRICS_PORT = 8081, 8080
JOB_TIMEOUT = 480.0


def _jobs(cp: ControlPlane) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kubernetes_client(cp.kubeconfig))


def diagnostics(cp: ControlPlane, user: User, namespace: str = "default") -> str:
    """What a person would look at when a job does not succeed."""
    parts = [user.run("kubectl get tj,pods -A -o wide; kubectl get events -A", check=False)]
    core = client.CoreV1Api(kubernetes_client(cp.kubeconfig))
    for ns in (NS, namespace):
        for pod in core.list_namespaced_pod(ns).items:
            log = cp.pod_log(ns, pod.metadata.name)[-3000:]
            parts.append(f"--- log of {ns}/{pod.metadata.name}:\n{log}")
    return "\n".join(parts)


def wait_for_phase(cp: ControlPlane, user: User, namespace: str, name: str) -> dict[str, Any]:
    """Poll until the job Succeeded; fail at once, with diagnostics, if it Failed."""
    api = _jobs(cp)

    def finished() -> dict[str, Any] | None:
        job = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        phase = (job.get("status") or {}).get("phase")
        if phase == "Failed":
            pytest.fail(
                f"{name} Failed: {job['status']}\n{diagnostics(cp, user, namespace)}",
                pytrace=False,
            )
        return job if phase == "Succeeded" else None

    try:
        return wait_for(finished, JOB_TIMEOUT, what=f"TrainingJob {namespace}/{name} to succeed")
    except TimeoutError as exc:
        pytest.fail(f"{exc}\n{diagnostics(cp, user, namespace)}", pytrace=False)


def install(node: RealNode) -> str:
    """The documented `helm install`, with the operator image built here."""
    return f"{INSTALL} {shlex.join(chart_image_args(node.images['operator'].ref))}"


def apply_job(
    cp: ControlPlane, user: User, run_dirs: list[Path], command: str, job: dict[str, Any],
    path: Path, namespace: str = "default",
) -> None:  # fmt: skip
    """Run `command` (a `kubectl apply -f` of examples/cpu-cluster.yaml or `path`) on `job`
    written to `path`; the job's run directory on the node goes to `run_dirs`."""
    path.write_text(json.dumps(job))
    user.run(command.replace(EXAMPLE, str(path)))
    name = job["metadata"]["name"]
    uid = _jobs(cp).get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)[
        "metadata"
    ]["uid"]
    (volume,) = [v for v in job["spec"]["template"]["volumes"] if v["name"] == "kubetrain-run"]
    run_dirs.append(Path(volume["hostPath"]["path"]) / f"{name}-{uid}")


# Run in the node's network namespace, where pod and Service addresses are reachable (as from
# any pod; this machine itself has no route to them).
_GET = (
    "import sys, urllib.request\n"
    "with urllib.request.urlopen(sys.argv[1], timeout=5) as answer:\n"
    "    print(answer.status); print(answer.read().decode())"
)


def fetch(node: RealNode, url: str) -> tuple[int, str]:
    """GET `url` from the node's network: (HTTP status, body)."""
    done = subprocess.run(
        [*node.net.nsenter(), sys.executable, "-c", _GET, url],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    if done.returncode != 0:
        raise AssertionError(f"GET {url} failed: {done.stderr[-500:]}")
    status, _, body = done.stdout.partition("\n")
    return int(status), body


def operator_pod(cp: ControlPlane) -> client.V1Pod:
    """The operator's running pod (not one on its way out)."""
    core = client.CoreV1Api(kubernetes_client(cp.kubeconfig))
    pods = core.list_namespaced_pod(NS, label_selector="app.kubernetes.io/component=operator")
    (pod,) = [
        p for p in pods.items
        if p.metadata.deletion_timestamp is None and p.status.phase == "Running"
    ]  # fmt: skip
    return pod


def assert_operator_serves(cp: ControlPlane, node: RealNode) -> None:
    """The running operator container is the image built here, answers /healthz on its pod's
    address, and /metrics through its Service (kube-proxy's rules on the node)."""
    pod = wait_for(lambda: operator_pod(cp), 60, what="the operator's running pod")
    assert pod.spec.containers[0].image == node.images["operator"].ref
    (running,) = pod.status.container_statuses
    assert running.ready and running.state.running is not None, running
    health = f"http://{pod.status.pod_ip}:{HEALTH_PORT}/healthz"
    wait_for(lambda: fetch(node, health)[0] == 200, 60, what=health)
    core = client.CoreV1Api(kubernetes_client(cp.kubeconfig))
    service = core.read_namespaced_service(f"{SA}-metrics", NS)
    metrics = f"http://{service.spec.cluster_ip}:{METRICS_PORT}/metrics"
    body = wait_for(lambda: fetch(node, metrics)[1], 60, what=metrics)
    assert "kubetrain_jobs" in body


def granted(cp: ControlPlane, namespace: str, account: str, in_ns: str) -> dict[tuple, set]:
    """(apiGroup, resource) → verbs that ServiceAccount `namespace/account` holds in `in_ns`,
    as the API server computes it (SelfSubjectRulesReview with the account's own token);
    the rules every authenticated user has (self reviews) are left out."""
    kubeconfig = cp.service_account_kubeconfig(namespace, account)
    api = client.AuthorizationV1Api(kubernetes_client(kubeconfig))
    review = api.create_self_subject_rules_review({"spec": {"namespace": in_ns}})
    table: dict[tuple, set] = {}
    for rule in review.status.resource_rules:
        for group in rule.api_groups or []:
            if group in ("authorization.k8s.io", "authentication.k8s.io"):
                continue
            for resource in rule.resources or []:
                table.setdefault((group, resource), set()).update(rule.verbs)
    return table


def _expected(namespaced_mode: bool) -> dict[tuple, set]:
    from chart_rbac import CLUSTER, CLUSTER_NAMESPACED_MODE, NAMESPACED

    cluster = CLUSTER_NAMESPACED_MODE if namespaced_mode else CLUSTER
    return {k: set(v) for k, v in {**NAMESPACED, **cluster}.items()}


# -- install ---------------------------------------------------------------------------------


def test_install_and_the_operator_comes_up(
    cluster: ControlPlane, node: RealNode, user: User
) -> None:
    notes = user.run(install(node))
    assert "kubectl get tj -w" in notes, "NOTES.txt tells how to watch jobs"
    user.run(ROLLOUT, timeout=150)
    assert_operator_serves(cluster, node)
    assert "kubetrain-operator" in user.run(OPERATOR)


def test_operator_holds_exactly_the_audited_rbac(cluster: ControlPlane) -> None:
    for namespace in ("default", NS):
        assert granted(cluster, NS, SA, namespace) == _expected(namespaced_mode=False)


# -- submit, watch, succeed --------------------------------------------------------------


def _watch_until_running(user: User, timeout: float = 180) -> list[str]:
    """`kubectl get tj -w` until a row shows the job Running at some step; then stop it."""
    proc = user.popen(WATCH)
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    threading.Thread(target=lambda: [lines.put(x) for x in proc.stdout], daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                seen.append(lines.get(timeout=max(deadline - time.monotonic(), 0.1)))
            except queue.Empty:
                break
            cells = seen[-1].split()
            if len(cells) > 2 and cells[1] == "Running" and cells[2].isdigit():
                return seen
    finally:
        proc.kill()
        proc.wait()
    pytest.fail(f"`{WATCH}` never showed the job Running:\n{''.join(seen)}", pytrace=False)


def test_submit_watch_and_succeed(
    cluster: ControlPlane, node: RealNode, user: User, run_dirs: list[Path], tmp_path: Path
) -> None:
    job = local_example(node.images["trainer"].ref)
    apply_job(cluster, user, run_dirs, APPLY, job, tmp_path / "cpu-cluster.yaml")
    seen = _watch_until_running(user)
    assert seen[0].split()[:4] == ["NAME", "PHASE", "STEP", "%"]
    job = wait_for_phase(cluster, user, "default", "cpu-ddp")
    user.run(WAIT, timeout=30)
    progress = job["status"]["progress"]
    assert progress["step"] == job["spec"]["training"]["maxSteps"]
    assert progress["loss"] is not None and progress["samplesPerSecond"] > 0
    assert progress["lastCheckpoint"]
    assert "Succeeded" in user.run(GET_WIDE)
    described = user.run(DESCRIBE)
    assert "Succeeded" in described and "Events:" in described
    pods = user.run(PODS)
    # Finished workers stay for their logs (the default cleanPodPolicy, Running, deletes only
    # running ones): the containers' own output, read through the kubelet as on any cluster.
    assert "cpu-ddp-worker-0" in pods and "Completed" in pods, pods
    worker = user.run("kubectl logs cpu-ddp-worker-0")
    assert "step" in worker and "loss" in worker, worker[-2000:]
    assert "cpu-ddp" in user.run(EVENTS)
    # The troubleshooting section's `kubectl logs` of the operator.
    operator = user.run("kubectl -n kubetrain-system logs deployment/kubetrain-operator")
    assert "default/cpu-ddp" in operator, operator[-2000:]


# -- what trainer pods may do ------------------------------------------------------------


def test_trainer_credentials_reach_only_their_own_progress(cluster: ControlPlane) -> None:
    """The per-job account the operator creates, under the chart's admission policy."""
    kubeconfig = cluster.service_account_kubeconfig("default", "cpu-ddp-trainer")
    api = client.CustomObjectsApi(kubernetes_client(kubeconfig))
    core = client.CoreV1Api(kubernetes_client(kubeconfig))
    own = api.get_namespaced_custom_object_status(GROUP, VERSION, "default", PLURAL, "cpu-ddp")
    progress = own["status"]["progress"]
    # Its own progress: allowed (the same values: this is about the permission, not the data).
    api.patch_namespaced_custom_object_status(
        GROUP, VERSION, "default", PLURAL, "cpu-ddp", {"status": {"progress": progress}}
    )
    denied = [
        lambda: api.patch_namespaced_custom_object_status(
            GROUP, VERSION, "default", PLURAL, "cpu-ddp", {"status": {"phase": "Pending"}}
        ),
        lambda: api.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL),
        lambda: api.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "cpu-ddp"),
        lambda: core.list_namespaced_secret("default"),
        lambda: core.list_namespaced_pod("default"),
        lambda: core.list_namespaced_config_map("default"),
    ]
    for attempt in denied:
        with pytest.raises(ApiException) as caught:
            attempt()
        assert caught.value.status in (403, 422), caught.value.body
    # The phase patch is stopped by the chart's ValidatingAdmissionPolicy, not by RBAC.
    with pytest.raises(ApiException) as caught:
        denied[0]()
    assert "status.progress only" in caught.value.body


# -- upgrade, uninstall ------------------------------------------------------------------


def test_upgrade_replaces_the_operator(cluster: ControlPlane, node: RealNode, user: User) -> None:
    before = operator_pod(cluster).metadata.name
    user.run(UPGRADE, timeout=60)
    user.run(ROLLOUT, timeout=150)
    apps = client.AppsV1Api(kubernetes_client(cluster.kubeconfig))
    deployment = apps.read_namespaced_deployment(SA, NS)
    assert "--workers=8" in deployment.spec.template.spec.containers[0].args
    assert deployment.spec.strategy.type == "Recreate"
    assert_operator_serves(cluster, node)
    assert operator_pod(cluster).metadata.name != before, "the operator pod was not replaced"
    user.run(APPLY_CRD)
    assert "REVISION: 2" in user.run("helm status kubetrain --namespace kubetrain-system")


def test_uninstall_keeps_the_crd_and_the_jobs(cluster: ControlPlane, user: User) -> None:
    user.run(UNINSTALL, timeout=60)
    apps = client.AppsV1Api(kubernetes_client(cluster.kubeconfig))
    rbac = client.RbacAuthorizationV1Api(kubernetes_client(cluster.kubeconfig))
    wait_for(lambda: not apps.list_namespaced_deployment(NS).items, 30, what="no Deployment")
    names = [r.metadata.name for r in rbac.list_cluster_role().items]
    assert not [n for n in names if n.startswith("kubetrain-operator")]
    assert "trainingjobs.kubetrain.io" in user.run("kubectl get crd")
    assert user.run(GET_WIDE).splitlines()[1].startswith("cpu-ddp ")


# -- watching named namespaces -----------------------------------------------------------


def _small_job(name: str, trainer_ref: str) -> dict[str, Any]:
    """The CPU example (with the local trainer image) cut down: one node, a few steps and
    checkpoints."""
    job = local_example(trainer_ref)
    job["metadata"] = {"name": name}
    spec = job["spec"]
    spec["parallelism"]["nodes"] = 1
    spec["training"].update(maxSteps=30, eval={"everySteps": 10, "metrics": ["r2"]})
    spec["training"]["logging"] = {"everySteps": 5}
    spec["checkpoint"] = {"everySteps": 10}
    return job


def test_namespaced_install_grants_only_there_and_trains(
    cluster: ControlPlane, node: RealNode, user: User, run_dirs: list[Path], tmp_path: Path
) -> None:
    user.run("kubectl create namespace team-a")
    user.run(install(node) + " --set-json 'watchNamespaces=[\"team-a\"]'")
    user.run(ROLLOUT, timeout=150)
    assert granted(cluster, NS, SA, "team-a") == _expected(namespaced_mode=True)
    from chart_rbac import CLUSTER_NAMESPACED_MODE

    cluster_only = {k: set(v) for k, v in CLUSTER_NAMESPACED_MODE.items()}
    assert granted(cluster, NS, SA, "default") == cluster_only
    job = _small_job("small", node.images["trainer"].ref)
    path = tmp_path / "small.yaml"
    apply_job(cluster, user, run_dirs, f"kubectl apply -n team-a -f {path}", job, path, "team-a")
    wait_for_phase(cluster, user, "team-a", "small")
    user.run(UNINSTALL, timeout=60)


def test_removing_everything(cluster: ControlPlane, user: User) -> None:
    user.run(DELETE_JOBS, timeout=60)
    user.run(DELETE_CRD, timeout=60)
    assert "trainingjobs" not in user.run("kubectl api-resources --api-group=kubetrain.io")


def _overlay(directory: Path, operator_ref: str) -> Path:
    """A kustomize overlay of deploy/kustomize/base that only sets the operator image."""
    base = ROOT / "deploy" / "kustomize" / "base"
    (deployment,) = [
        d for d in yaml.safe_load_all((base / "operator.yaml").read_text())
        if d and d["kind"] == "Deployment"
    ]  # fmt: skip
    default = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    repository, tag = operator_ref.rsplit(":", 1)
    directory.mkdir()
    (directory / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        # kustomize takes a base outside the overlay only by a relative path.
        "resources": [os.path.relpath(base, directory)],
        "images": [{"name": default.rsplit(":", 1)[0], "newName": repository, "newTag": tag}],
    }))  # fmt: skip
    return directory


def test_the_kustomize_base_installs_and_runs(
    cluster: ControlPlane, node: RealNode, user: User, tmp_path: Path
) -> None:
    """docs/gitops.md's `kubectl apply -k`: the same operator, without Helm (through an
    overlay that sets the image, as that page tells users to)."""
    overlay = _overlay(tmp_path / "overlay", node.images["operator"].ref)
    user.run(f"kubectl apply --server-side -k {overlay}", timeout=60)
    user.run(ROLLOUT, timeout=150)
    assert_operator_serves(cluster, node)
    assert granted(cluster, NS, SA, "default") == _expected(namespaced_mode=False)
    user.run(f"kubectl delete -k {overlay} --wait=false", timeout=60)
