"""Jobs and Workloads as last seen by kopf's watches or our own writes' answers.

A small informer cache: handlers.py feeds it from the event loop, the reconcile threads read
it (hence the lock), so a reconcile reads its job and its Workload without a request.

Staleness is handled the way controllers do: an entry is replaced only by a newer
resourceVersion (a late watch event never undoes the answer of our own write, recorded by
`wrote`), and a deletion leaves a tombstone so that an older answer cannot bring the object
back. A cache is only as complete as the watch that fills it: a miss is read from the API
server (reconcile.py, queueing.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from kubetrain_operator.names import LABEL_JOB

Obj = dict[str, Any]
Key = tuple[str, str]  # namespace, name
# Tombstones kept (the oldest go first): they only need to outlive a reconcile in flight.
TOMBSTONES = 10_000


def key_of(obj: Obj) -> Key:
    meta = obj.get("metadata") or {}
    return meta.get("namespace", ""), meta.get("name", "")


def by_label(obj: Obj) -> Key | None:
    """The job an object (a Workload, a child) belongs to by its job label."""
    meta = obj.get("metadata") or {}
    job = (meta.get("labels") or {}).get(LABEL_JOB)
    return (meta.get("namespace", ""), job) if job else None


def _version(obj: Obj) -> int | None:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion"))
    except (TypeError, ValueError):
        return None


def newer(new: int | None, old: int | None) -> bool:
    """Whether a version replaces another. Versions that do not read as numbers (not etcd's)
    cannot be ordered: the later arrival wins, as in an informer."""
    return new is None or old is None or new >= old


def slim(obj: Obj) -> Obj:
    """The object without managedFields: they are most of its size and never read."""
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k != "managedFields"}
    return {**obj, "metadata": meta}


class Bodies:
    """Objects of one kind by namespace and name, indexed by the job they belong to."""

    def __init__(self, job_of: Callable[[Obj], Key | None] = key_of) -> None:
        self._job_of = job_of
        self._lock = threading.Lock()
        self._seen: dict[Key, Obj] = {}
        self._gone: dict[Key, int | None] = {}  # deleted: the version of the deletion
        self._by_job: dict[Key, set[Key]] = {}

    def event(self, kind: str | None, obj: Obj) -> None:
        """One watch event (kind DELETED removes)."""
        with self._lock:
            if kind == "DELETED":
                self._remove(key_of(obj), _version(obj))
            else:
                self._put(obj)

    def wrote(self, answer: Obj) -> None:
        """Our write's answer: the object as the server has it now."""
        with self._lock:
            self._put(answer)

    def get(self, key: Key) -> Obj | None:
        with self._lock:
            return self._seen.get(key)

    def of_job(self, job: Key) -> list[Obj]:
        with self._lock:
            return [self._seen[k] for k in sorted(self._by_job.get(job, ()))]

    def forget(self, job: Key) -> None:
        """The job is gone: drop what belongs to it (its own entry, for the jobs' cache).
        Tombstones stay: a reconcile in flight may still record an older answer."""
        with self._lock:
            for key in self._by_job.pop(job, set()) | {job}:
                self._seen.pop(key, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._seen)

    def _put(self, obj: Obj) -> None:
        key, version = key_of(obj), _version(obj)
        old = self._seen.get(key)
        if old is not None and not newer(version, _version(old)):
            return  # a late event: the cache has a newer version already
        if key in self._gone:
            gone = self._gone[key]
            if version is not None and gone is not None and version <= gone:
                return  # an answer older than the deletion the watch showed
            del self._gone[key]
        self._seen[key] = slim(obj)
        job = self._job_of(obj)
        if job is not None:
            self._by_job.setdefault(job, set()).add(key)

    def _remove(self, key: Key, version: int | None) -> None:
        old = self._seen.get(key)
        kept = _version(old) if old is not None else None
        if kept is not None and version is not None and kept > version:
            return  # the deletion of an older object of that name (made again since)
        self._seen.pop(key, None)
        self._gone.pop(key, None)
        self._gone[key] = version
        if len(self._gone) > TOMBSTONES:
            del self._gone[next(iter(self._gone))]
        job = self._job_of(old) if old is not None else None
        if job is not None and job in self._by_job:
            self._by_job[job].discard(key)
            if not self._by_job[job]:
                del self._by_job[job]
