"""Prometheus metrics of the operator (its own registry, so tests can run several)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from kubetrain.api.conditions import Phase

PHASES = tuple(Phase)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.jobs = Gauge("kubetrain_jobs", "TrainingJobs by phase", ["phase"], registry=r)
        self.reconcile_seconds = Histogram(
            "kubetrain_reconcile_duration_seconds", "Time of one reconcile of one job",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=r,
        )  # fmt: skip
        self.restarts = Counter(
            "kubetrain_group_restarts_total", "Group restarts", ["reason"], registry=r
        )
        self.errors = Counter(
            "kubetrain_reconcile_errors_total", "Reconciles that raised", registry=r
        )
        self.api_requests = Counter(
            "kubetrain_api_requests_total", "Requests the reconciler sent, by verb and resource",
            ["verb", "resource"], registry=r,
        )
        # Server-side applies of a job's children (not pods), by why: "missing" (first apply,
        # or deleted by hand) or "changed" (drift, or a spec change).
        self.child_applies = Counter(
            "kubetrain_child_applies_total", "Children applied", ["kind", "cause"], registry=r
        )
        # Per job, from status.progress (what the dashboard plots); labels namespace, name.
        self.progress = {
            field: Gauge(f"kubetrain_job_{metric}", help_, ["namespace", "name"], registry=r)
            for field, metric, help_ in (
                ("loss", "loss", "Latest training loss"),
                ("samplesPerSecond", "samples_per_second", "Steady-state samples/s"),
                ("tokensPerSecond", "tokens_per_second", "Steady-state tokens/s"),
            )
        }
        self._phase: dict[tuple[str, str], str] = {}
        for phase in PHASES:
            self.jobs.labels(phase).set(0)

    def set_phase(self, key: tuple[str, str], phase: str | None) -> None:
        """Record a job's phase (None: the job is gone)."""
        if phase is None:
            self._phase.pop(key, None)
        else:
            self._phase[key] = phase
        counts = dict.fromkeys(PHASES, 0)
        for p in self._phase.values():
            counts[p] = counts.get(p, 0) + 1
        for p, n in counts.items():
            self.jobs.labels(p).set(n)

    def set_progress(self, key: tuple[str, str], progress: dict[str, Any] | None) -> None:
        """Mirror a job's progress into the per-job gauges (None: the job is gone)."""
        for field, gauge in self.progress.items():
            value = (progress or {}).get(field)
            if isinstance(value, int | float):
                gauge.labels(*key).set(value)
            elif progress is None:
                with contextlib.suppress(KeyError):
                    gauge.remove(*key)

    @contextmanager
    def reconcile_timer(self) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        except Exception:
            self.errors.inc()
            raise
        finally:
            self.reconcile_seconds.observe(time.perf_counter() - started)

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        """Expose /metrics on `port` (a daemon thread)."""
        start_http_server(port, addr=addr, registry=self.registry)
