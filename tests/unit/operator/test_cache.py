"""The informer cache of jobs and Workloads (cache.py) and the wait for Kueue's first
word before a queued job's first status (kueue.awaiting_first_word): pure, table-driven."""

from __future__ import annotations

from typing import Any

import pytest
from operator_builders import NOW, ago, cond, job, pod

from kubetrain_operator import kueue
from kubetrain_operator.cache import Bodies, by_label
from kubetrain_operator.names import LABEL_JOB

JOB = ("ns", "demo")


def obj(name: str, version: str | None, job_: str | None = "demo", **extra: Any) -> dict:
    labels = {LABEL_JOB: job_} if job_ else {}
    meta = {"name": name, "namespace": "ns", "resourceVersion": version, "labels": labels,
            "managedFields": [{"manager": "x"}]}  # fmt: skip
    return {"kind": "Pod", "metadata": meta, **extra}


def names(cache: Bodies) -> list[str]:
    return [o["metadata"]["name"] for o in cache.of_job(JOB)]


def test_newer_versions_win_and_late_events_are_ignored() -> None:
    cache = Bodies(by_label)
    cache.wrote(obj("p0", "12", phase="ours"))  # our apply's answer
    cache.event("MODIFIED", obj("p0", "10", phase="late"))  # the watch catches up
    got = cache.get(("ns", "p0"))
    assert got is not None and got["phase"] == "ours"
    assert "managedFields" not in got["metadata"]
    cache.event("MODIFIED", obj("p0", "13", phase="kubelet"))
    got = cache.get(("ns", "p0"))
    assert got is not None and got["phase"] == "kubelet"


def test_a_deletion_is_not_undone_by_an_older_answer() -> None:
    cache = Bodies(by_label)
    cache.event(None, obj("p0", "10"))
    cache.event("DELETED", obj("p0", "11"))
    cache.wrote(obj("p0", "10"))  # a reconcile's answer that arrived after the watch's delete
    assert cache.get(("ns", "p0")) is None and names(cache) == []
    cache.event("ADDED", obj("p0", "20"))  # a new pod of that name
    assert names(cache) == ["p0"]


def test_a_late_deletion_of_an_older_object_keeps_the_new_one() -> None:
    cache = Bodies(by_label)
    cache.wrote(obj("p0", "13"))  # made again under that name, from our apply
    cache.event("DELETED", obj("p0", "12"))  # the watch's deletion of the old one, late
    assert names(cache) == ["p0"]


def test_index_by_job_and_forget() -> None:
    cache = Bodies(by_label)
    cache.wrote(obj("p0", "1"))
    cache.wrote(obj("other-0", "2", job_="other"))
    cache.wrote(obj("stray", "3", job_=None))
    assert names(cache) == ["p0"] and len(cache) == 3
    cache.forget(JOB)
    assert names(cache) == [] and cache.get(("ns", "p0")) is None
    assert cache.get(("ns", "other-0")) is not None


def test_jobs_cache_keeps_a_deleted_jobs_tombstone_after_forget() -> None:
    jobs = Bodies()
    jobs.event(None, obj("demo", "3"))
    jobs.event("DELETED", obj("demo", "4"))
    jobs.forget(JOB)
    jobs.wrote(obj("demo", "3"))  # a status patch's answer arriving late
    assert jobs.get(JOB) is None
    jobs.event("ADDED", obj("demo", "9"))  # a new job of the same name
    assert jobs.get(JOB) is not None


def test_versions_that_are_not_numbers_are_replaced_in_arrival_order() -> None:
    cache = Bodies(by_label)
    cache.wrote(obj("p0", "b", phase="first"))
    cache.event("MODIFIED", obj("p0", "a", phase="second"))
    assert cache.get(("ns", "p0"))["phase"] == "second"  # type: ignore[index]


def workload(created: float, *conditions: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"name": "w", "namespace": "ns", "creationTimestamp": ago(created)},
        "status": {"conditions": list(conditions)} if conditions else {},
    }


@pytest.mark.parametrize(
    ("case", "wl", "state", "pods", "wait"),
    [
        ("new job, Kueue silent: wait the rest", workload(1), None, [], 4.0),
        ("Kueue said Pending: write now", workload(1, cond("QuotaReserved", "False", "Pending")),
         None, [], None),
        ("Kueue silent too long: write Queued", workload(6), None, [], None),
        ("a status already: write now", workload(1), "Queued", [], None),
        ("pods to stop: act now", workload(1), None, [pod(0)], None),
        ("no Workload", None, None, [], None),
        ("a clock behind the server's waits no longer", workload(-30), None, [], 5.0),
    ],
)  # fmt: skip
def test_awaiting_first_word(
    case: str, wl: dict | None, state: str | None, pods: list, wait: float | None
) -> None:
    got = kueue.awaiting_first_word(wl, job(state), pods, NOW)
    assert got == (pytest.approx(wait) if wait is not None else None), case
