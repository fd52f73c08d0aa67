"""The operator's Prometheus metrics: jobs by phase and per-job progress gauges."""

from __future__ import annotations

from prometheus_client import generate_latest

from kubetrain_operator.metrics import Metrics


def text(m: Metrics) -> str:
    return generate_latest(m.registry).decode()


def test_jobs_by_phase_follow_each_job():
    m = Metrics()
    m.set_phase(("ns", "a"), "Running")
    m.set_phase(("ns", "b"), "Running")
    m.set_phase(("ns", "a"), "Succeeded")
    out = text(m)
    assert 'kubetrain_jobs{phase="Running"} 1.0' in out
    assert 'kubetrain_jobs{phase="Succeeded"} 1.0' in out
    m.set_phase(("ns", "b"), None)
    assert 'kubetrain_jobs{phase="Running"} 0.0' in text(m)


def test_progress_gauges_per_job_and_removed_with_it():
    m = Metrics()
    m.set_progress(("ns", "a"), {"loss": 0.25, "samplesPerSecond": 1200.0, "step": 3})
    out = text(m)
    assert 'kubetrain_job_loss{name="a",namespace="ns"} 0.25' in out
    assert 'kubetrain_job_samples_per_second{name="a",namespace="ns"} 1200.0' in out
    assert 'kubetrain_job_tokens_per_second{name="a"' not in out
    m.set_progress(("ns", "a"), None)
    assert 'name="a"' not in text(m)
