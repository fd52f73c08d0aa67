"""Kueue admission, pure parts: the Workload a job gets, what Kueue's answers mean, holding a
job, placing its pods on the admitted flavor, giving the quota back."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from operator_builders import NOW, cond, job, meta, pod, spec

from kubetrain_operator import kueue
from kubetrain_operator.names import KUEUE_QUEUE_LABEL, LABEL_JOB
from kubetrain_operator.render import render_worker_pod
from kubetrain_operator.status import decide


def queued_spec(**override: Any) -> Any:
    return spec(**{"queueName": "team-a", "resources": {"cpu": "2", "memory": "1Gi"}, **override})


def workload(*conditions: dict[str, Any], admission: dict[str, Any] | None = None) -> dict:
    status: dict[str, Any] = {"conditions": list(conditions)}
    if admission is not None:
        status["admission"] = admission
    return {
        "metadata": {"name": "w", "namespace": "ns", "resourceVersion": "7", "generation": 1},
        "spec": {},
        "status": status,
    }


ADMISSION = {
    "clusterQueue": "cq",
    "podSetAssignments": [
        {"name": "workers", "count": 2, "flavors": {"cpu": "spot", "memory": "spot"}}
    ],
}


def test_workload_asks_for_every_worker_at_once_owned_by_the_job() -> None:
    s = queued_spec()
    m = meta()
    w = kueue.render_workload(m, s, render_worker_pod(m, s, 0, 0))
    assert w["apiVersion"] == "kueue.x-k8s.io/v1beta1" and w["kind"] == "Workload"
    assert w["spec"]["queueName"] == "team-a"
    (pod_set,) = w["spec"]["podSets"]
    assert pod_set["count"] == 2
    (container,) = pod_set["template"]["spec"]["containers"]
    assert container["resources"]["requests"] == {"cpu": "2", "memory": "1Gi"}
    assert "env" not in container  # only what admission needs
    owner = w["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["uid"], owner["controller"]) == ("TrainingJob", "uid-1", True)
    assert w["metadata"]["labels"][LABEL_JOB] == "demo"
    assert w["metadata"]["labels"][KUEUE_QUEUE_LABEL] == "team-a"
    assert "priorityClassName" not in w["spec"]


def test_workload_carries_the_priority_class_and_its_value() -> None:
    s = queued_spec(template={"priorityClassName": "high"})
    m = meta()
    w = kueue.render_workload(m, s, render_worker_pod(m, s, 0, 0), priority=1000)
    assert w["spec"]["priorityClassName"] == "high"
    assert w["spec"]["priority"] == 1000
    assert w["spec"]["priorityClassSource"] == "scheduling.k8s.io/priorityclass"


def test_workload_name_is_a_dns_label_and_differs_per_uid() -> None:
    long = meta("x" * 70)
    name = kueue.workload_name(long)
    assert len(name) <= 63 and name.startswith("trainingjob-xxx")
    other = type(long)(long.name, "ns", "uid-2")
    assert kueue.workload_name(other) != name


def test_same_request_sees_a_change_of_nodes_or_resources() -> None:
    m = meta()
    a = kueue.render_workload(m, queued_spec(), render_worker_pod(m, queued_spec(), 0, 0))
    assert kueue.same_request(a, a)
    more = queued_spec(parallelism={"nodes": 4})
    b = kueue.render_workload(m, more, render_worker_pod(m, more, 0, 0))
    assert not kueue.same_request(a, b)
    bigger = queued_spec(resources={"cpu": "4", "memory": "1Gi"})
    c = kueue.render_workload(m, bigger, render_worker_pod(m, bigger, 0, 0))
    assert not kueue.same_request(a, c)


def test_read_admission_states() -> None:
    assert kueue.read_admission(None).state == "missing"
    pending = kueue.read_admission(workload(cond("QuotaReserved", "False", "Pending")))
    assert (pending.state, pending.reason) == ("pending", "Pending")
    assert kueue.read_admission(workload()).state == "pending"
    admitted = kueue.read_admission(
        workload(cond("QuotaReserved"), cond("Admitted", reason="Admitted"), admission=ADMISSION)
    )
    assert admitted.state == "admitted" and admitted.reserved
    assert admitted.flavors == {"cpu": "spot", "memory": "spot"}
    assert admitted.cluster_queue == "cq"
    # Quota reserved, admission checks pending: still waiting.
    checks = kueue.read_admission(
        workload(cond("QuotaReserved"), cond("Admitted", "False", "UnsatisfiedChecks"),
                 admission=ADMISSION)
    )  # fmt: skip
    assert (checks.state, checks.reason) == ("pending", "UnsatisfiedChecks")
    evicted = kueue.read_admission(
        workload(cond("QuotaReserved"), cond("Admitted"), cond("Evicted", reason="Preempted"),
                 admission=ADMISSION)
    )  # fmt: skip
    assert (evicted.state, evicted.reason) == ("evicted", "Preempted") and evicted.reserved
    finished = kueue.read_admission(workload(cond("Finished")))
    assert finished.state == "finished"


def test_placement_merges_flavors_and_place_adds_them_to_the_pod() -> None:
    toleration = {"key": "spot", "operator": "Exists", "effect": "NoSchedule"}
    flavors = [
        {"spec": {"nodeLabels": {"pool": "spot"}, "tolerations": [toleration]}},
        {"spec": {"nodeLabels": {"zone": "a"}, "tolerations": [toleration]}},
    ]
    where = kueue.placement(flavors)
    assert where.node_selector == {"pool": "spot", "zone": "a"}
    assert where.tolerations == [toleration]
    s = queued_spec(template={"nodeSelector": {"pool": "any", "disk": "ssd"}})
    p = kueue.place(render_worker_pod(meta(), s, 0, 0), where)
    assert p["spec"]["nodeSelector"] == {"pool": "spot", "disk": "ssd", "zone": "a"}
    assert p["spec"]["tolerations"] == [toleration]
    # Admitted as one Workload: nothing on the pods for Kueue's plain-pod integration.
    assert not [k for k in {**p["metadata"]["labels"], **p["metadata"]["annotations"]}
                if k.startswith("kueue.x-k8s.io/")]  # fmt: skip
    assert p["metadata"]["labels"]["kubetrain.io/job-name"] == "demo"


def test_hold_deletes_pods_and_queues_counting_a_disruption_not_a_failure() -> None:
    s = queued_spec()
    running = job("Running", s, restarts=1, startTime="2026-01-02T03:00:00Z",
                  conditions=[cond("Running", reason="Training")])  # fmt: skip
    pods = [pod(0, gen=1), pod(1, gen=1)]
    evicted = kueue.Admission("evicted", "Preempted", "preempted by a higher priority job")
    d = kueue.hold(running, pods, evicted, NOW)
    assert [r.name for r in d.delete] == ["demo-worker-0", "demo-worker-1"]
    assert d.force_delete == [] and d.create == []
    st = d.status
    assert (st.phase, st.reason, st.restarts, st.disruptions) == ("Queued", "Preempted", 2, 1)
    assert st.start_time is None  # queue time counts toward no deadline
    by_type = {c.type: c for c in st.conditions}
    assert by_type["Admitted"].status == "False" and by_type["Admitted"].reason == "Preempted"
    assert by_type["Running"].status == "False"
    assert [e.type for e in d.events] == ["Warning"]
    # Held again with the same reason: no new Event, pods being deleted are not re-deleted.
    again = kueue.hold(
        running.__class__(running.name, 1, s, st), [pod(0, gen=1, deleting=True)], evicted, NOW
    )
    assert again.events == [] and again.delete == []
    assert (again.status.restarts, again.status.disruptions) == (2, 1)  # counted once
    # Not admitted yet (no pods to stop): nothing is counted.
    fresh = kueue.hold(job("Queued", s), [], evicted, NOW)
    assert (fresh.status.restarts, fresh.status.disruptions) == (0, 0)


def test_admitted_job_is_pending_again_and_starts_its_pods_at_the_same_generation() -> None:
    s = queued_spec()
    queued = job("Queued", s, restarts=1)
    admission = kueue.Admission("admitted", "Admitted", "", "cq", {"cpu": "spot"})
    ready = kueue.admitted(queued, admission, NOW)
    assert ready.status.phase == "Pending"
    d = decide(ready, [], NOW)
    assert d.create == [0, 1] and d.status.restarts == 1 and d.status.phase == "Starting"
    assert any(c.type == "Admitted" and c.status == "True" for c in d.status.conditions)


def test_release_patch_gives_the_quota_back_like_kueues_job_reconciler() -> None:
    w = workload(
        cond("QuotaReserved", reason="QuotaReserved"), cond("Admitted", reason="Admitted"),
        cond("Evicted", reason="Preempted"), cond("PodsReady"), admission=ADMISSION,
    )  # fmt: skip
    patch = kueue.release_patch(w, NOW)
    assert patch["metadata"] == {"resourceVersion": "7"}
    assert patch["status"]["admission"] is None
    by_type = {c["type"]: c for c in patch["status"]["conditions"]}
    assert (by_type["QuotaReserved"]["status"], by_type["QuotaReserved"]["reason"]) == (
        "False", "Pending",
    )  # fmt: skip
    assert (by_type["Admitted"]["status"], by_type["Admitted"]["reason"]) == (
        "False", "NoReservation",
    )  # fmt: skip
    assert (by_type["Requeued"]["status"], by_type["Requeued"]["reason"]) == ("True", "Preempted")
    assert by_type["Evicted"] == w["status"]["conditions"][2]  # Kueue's own, untouched
    assert by_type["QuotaReserved"]["lastTransitionTime"] == "2026-01-02T03:04:05Z"
    # Evicted for another reason: Kueue itself decides when it is requeued.
    other = workload(cond("QuotaReserved"), cond("Evicted", reason="ClusterQueueStopped"),
                     admission=ADMISSION)  # fmt: skip
    requeued = {c["type"]: c for c in kueue.release_patch(other, NOW)["status"]["conditions"]}
    assert requeued["Requeued"]["status"] == "False"


def test_finished_patch() -> None:
    w = workload(cond("QuotaReserved"), cond("Admitted"), admission=ADMISSION)
    patch = kueue.finished_patch(w, True, "training finished", NOW)
    finished = [c for c in patch["status"]["conditions"] if c["type"] == "Finished"]
    assert finished[0]["status"] == "True" and finished[0]["reason"] == "Succeeded"
    assert kueue.finished_patch(w, False, "x", NOW)["status"]["conditions"][-1]["reason"] == (
        "Failed"
    )
    assert kueue.read_admission({**w, "status": patch["status"]}).state == "finished"


def test_job_key_of_a_workload() -> None:
    m = meta()
    w = kueue.render_workload(m, queued_spec(), render_worker_pod(m, queued_spec(), 0, 0))
    assert kueue.job_key(w) == ("ns", "demo")
    assert kueue.job_key({"metadata": {"namespace": "ns"}}) is None


def test_the_kueue_module_imports_neither_kopf_nor_kubernetes_nor_torch() -> None:
    script = (
        "import sys\n"
        "for name in ('kopf', 'kubernetes', 'torch'):\n"
        "    sys.modules[name] = None\n"
        "import kubetrain_operator.kueue\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
