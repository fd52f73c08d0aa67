"""The children of jobs as last seen (watch events, our own applies): a small informer cache.

Filled from the event loop (kopf's watches of Services, ConfigMaps, ServiceAccounts, Roles and
RoleBindings labelled with the job) and read by the reconcile threads, hence the lock. Reading
it costs no request: a reconcile compares every rendered child with its entry here and writes
only what is missing or drifted (drift.py).
"""

from __future__ import annotations

import threading
from typing import Any

from kubetrain.api.job import API_VERSION, KIND
from kubetrain_operator.cache import by_label, slim
from kubetrain_operator.drift import Written

Obj = dict[str, Any]
Key = tuple[str, str]  # a job: namespace, name
Ref = tuple[str, str, str]  # a child: namespace, kind, name

# The kinds the operator renders besides pods (render.render_children), as kopf watches them.
WATCHED = (
    ("", "v1", "services"),
    ("", "v1", "configmaps"),
    ("", "v1", "serviceaccounts"),
    ("rbac.authorization.k8s.io", "v1", "roles"),
    ("rbac.authorization.k8s.io", "v1", "rolebindings"),
)


def ref_of(obj: Obj) -> Ref:
    meta = obj["metadata"]
    return meta.get("namespace", ""), obj["kind"], meta["name"]


def job_of(obj: Obj) -> Key | None:
    """The job a child belongs to: its controller reference, else its job label."""
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace", "")
    for owner in meta.get("ownerReferences") or []:
        if owner.get("controller") and (owner.get("apiVersion"), owner.get("kind")) == (
            API_VERSION,
            KIND,
        ):
            return namespace, owner["name"]
    return by_label(obj)


class Children:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[Ref, Obj] = {}
        self._written: dict[Ref, Written] = {}
        self._by_job: dict[Key, set[Ref]] = {}

    def event(self, kind: str | None, obj: Obj) -> Key | None:
        """Record one watch event; returns the job to reconcile (None: not a job's child, or
        the echo of our own apply, which the reconcile that sent it knows already)."""
        job = job_of(obj)
        ref = ref_of(obj)
        version = str((obj.get("metadata") or {}).get("resourceVersion"))
        with self._lock:
            if kind == "DELETED":  # what we wrote there is gone with it
                self._seen.pop(ref, None)
                self._written.pop(ref, None)
                if job is not None and job in self._by_job:
                    self._by_job[job].discard(ref)
                    if not self._by_job[job]:
                        del self._by_job[job]
            else:
                self._seen[ref] = slim(obj)
                if job is not None:
                    self._by_job.setdefault(job, set()).add(ref)
                written = self._written.get(ref)
                if written is not None and written.resource_version == version:
                    return None
        return job

    def get(self, ref: Ref) -> Obj | None:
        with self._lock:
            return self._seen.get(ref)

    def written(self, ref: Ref) -> Written | None:
        with self._lock:
            return self._written.get(ref)

    def wrote(self, job: Key, answer: Obj, fingerprint: str) -> None:
        """Our apply's answer: the child as the server now has it."""
        ref = ref_of(answer)
        version = str(answer["metadata"].get("resourceVersion"))
        with self._lock:
            self._seen[ref] = slim(answer)
            self._written[ref] = Written(version, fingerprint)
            self._by_job.setdefault(job, set()).add(ref)

    def forget(self, job: Key) -> None:
        """The job is gone: so are its children (the garbage collector deletes them)."""
        with self._lock:
            for ref in self._by_job.pop(job, set()):
                self._seen.pop(ref, None)
                self._written.pop(ref, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._seen)
