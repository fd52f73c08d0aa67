"""docs/cluster.md, run as a new user would, on a fresh cluster: the chart installs, its
operator (the chart's Deployment, under the chart's ServiceAccount) trains the example to
Succeeded, its RBAC is exactly the audited table, trainer credentials reach nothing but their
own job's progress, and upgrade and uninstall behave as documented.

The tests run in file order and build on each other (one install, one job). The only
departure from the documented commands: `helm install` gets free ports for the operator's
metrics and health endpoints, since pods here share the machine's network.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import urllib.request
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

from kubetrain_testenv import ControlPlane, wait_for
from kubetrain_testenv.clients import kubernetes_client
from kubetrain_testenv.procs import free_port

pytestmark = pytest.mark.timeout(600)

NS = "kubetrain-system"
SA = "kubetrain-operator"
GROUP, VERSION, PLURAL = "kubetrain.io", "v1alpha1", "trainingjobs"
PORTS = {"metrics": free_port(), "health": free_port()}
PORT_FLAGS = f" --set ports.metrics={PORTS['metrics']} --set ports.health={PORTS['health']}"
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


def fetch(port: int, path: str) -> tuple[int, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
        return answer.status, answer.read().decode()


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


def test_install_and_the_operator_comes_up(cluster: ControlPlane, user: User) -> None:
    notes = user.run(INSTALL + PORT_FLAGS)
    assert "kubectl get tj -w" in notes, "NOTES.txt tells how to watch jobs"
    user.run(ROLLOUT, timeout=150)
    wait_for(lambda: fetch(PORTS["health"], "/healthz")[0] == 200, 60, what="/healthz")
    assert "kubetrain_jobs" in fetch(PORTS["metrics"], "/metrics")[1]
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


def test_submit_watch_and_succeed(cluster: ControlPlane, user: User) -> None:
    user.run(APPLY)
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
    assert "cpu-ddp-worker-0" in user.run(PODS) or "No resources" in user.run(PODS)
    assert "cpu-ddp" in user.run(EVENTS)


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


def test_upgrade_replaces_the_operator(cluster: ControlPlane, user: User) -> None:
    user.run(UPGRADE, timeout=60)
    user.run(ROLLOUT, timeout=150)
    apps = client.AppsV1Api(kubernetes_client(cluster.kubeconfig))
    deployment = apps.read_namespaced_deployment(SA, NS)
    assert "--workers=8" in deployment.spec.template.spec.containers[0].args
    assert deployment.spec.strategy.type == "Recreate"
    wait_for(lambda: fetch(PORTS["health"], "/healthz")[0] == 200, 60, what="/healthz")
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


def _small_job(name: str) -> dict[str, Any]:
    """The CPU example cut down: one node, a few steps and checkpoints."""
    job = yaml.safe_load((ROOT / "examples" / "cpu-cluster.yaml").read_text())
    job["metadata"] = {"name": name}
    spec = job["spec"]
    spec["parallelism"]["nodes"] = 1
    spec["training"].update(maxSteps=30, eval={"everySteps": 10, "metrics": ["r2"]})
    spec["training"]["logging"] = {"everySteps": 5}
    spec["checkpoint"] = {"everySteps": 10}
    return job


def test_namespaced_install_grants_only_there_and_trains(
    cluster: ControlPlane, user: User, tmp_path: Path
) -> None:
    user.run("kubectl create namespace team-a")
    user.run(INSTALL + PORT_FLAGS + " --set-json 'watchNamespaces=[\"team-a\"]'")
    user.run(ROLLOUT, timeout=150)
    assert granted(cluster, NS, SA, "team-a") == _expected(namespaced_mode=True)
    from chart_rbac import CLUSTER_NAMESPACED_MODE

    cluster_only = {k: set(v) for k, v in CLUSTER_NAMESPACED_MODE.items()}
    assert granted(cluster, NS, SA, "default") == cluster_only
    path = tmp_path / "small.yaml"
    path.write_text(json.dumps(_small_job("small")))
    user.run(f"kubectl apply -n team-a -f {path}")
    wait_for_phase(cluster, user, "team-a", "small")
    user.run(UNINSTALL, timeout=60)


def test_removing_everything(cluster: ControlPlane, user: User) -> None:
    user.run(DELETE_JOBS, timeout=60)
    user.run(DELETE_CRD, timeout=60)
    assert "trainingjobs" not in user.run("kubectl api-resources --api-group=kubetrain.io")


def test_the_kustomize_base_installs_and_runs(cluster: ControlPlane, user: User) -> None:
    """docs/gitops.md's `kubectl apply -k`: the same operator, without Helm."""
    user.run("kubectl apply --server-side -k deploy/kustomize/base", timeout=60)
    user.run(ROLLOUT, timeout=150)
    assert granted(cluster, NS, SA, "default") == _expected(namespaced_mode=False)
    user.run("kubectl delete -k deploy/kustomize/base --wait=false", timeout=60)
