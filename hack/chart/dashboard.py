"""The Grafana dashboard the chart ships (charts/kubetrain/dashboards/kubetrain.json)."""

from __future__ import annotations

import json
from typing import Any

# Series the operator exports (operator/kubetrain_operator/metrics.py): jobs by phase, and per
# job (labels namespace, name) the latest loss and throughput from status.progress.
# tests/unit/chart/test_chart_dashboard.py checks the operator registers each name.
JOBS_BY_PHASE = "kubetrain_jobs"
JOB_LOSS = "kubetrain_job_loss"
JOB_SAMPLES_PER_SECOND = "kubetrain_job_samples_per_second"
JOB_TOKENS_PER_SECOND = "kubetrain_job_tokens_per_second"
METRICS = (JOBS_BY_PHASE, JOB_LOSS, JOB_SAMPLES_PER_SECOND, JOB_TOKENS_PER_SECOND)

_DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def _panel(
    pid: int, title: str, expr: str, legend: str, grid: dict[str, int], kind: str = "timeseries"
) -> dict[str, Any]:
    return {
        "id": pid,
        "type": kind,
        "title": title,
        "datasource": _DATASOURCE,
        "gridPos": grid,
        "targets": [
            {"refId": "A", "datasource": _DATASOURCE, "expr": expr, "legendFormat": legend}
        ],
    }


def render_dashboard() -> dict[str, Any]:
    """Jobs by phase, then loss and throughput per job; filterable by namespace."""
    ns = 'namespace=~"$namespace"'
    panels = [
        _panel(
            1,
            "TrainingJobs by phase",
            f"sum by (phase) ({JOBS_BY_PHASE})",
            "{{phase}}",
            {"x": 0, "y": 0, "w": 24, "h": 6},
            kind="bargauge",
        ),
        _panel(
            2,
            "Loss per job",
            f"{JOB_LOSS}{{{ns}}}",
            "{{namespace}}/{{name}}",
            {"x": 0, "y": 6, "w": 12, "h": 9},
        ),
        _panel(
            3,
            "Samples/s per job",
            f"{JOB_SAMPLES_PER_SECOND}{{{ns}}}",
            "{{namespace}}/{{name}}",
            {"x": 12, "y": 6, "w": 12, "h": 9},
        ),
        _panel(
            4,
            "Tokens/s per job",
            f"{JOB_TOKENS_PER_SECOND}{{{ns}}}",
            "{{namespace}}/{{name}}",
            {"x": 0, "y": 15, "w": 24, "h": 8},
        ),
    ]
    return {
        "uid": "kubetrain",
        "title": "kubetrain",
        "tags": ["kubetrain"],
        "schemaVersion": 39,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                {"name": "datasource", "type": "datasource", "query": "prometheus"},
                {
                    "name": "namespace",
                    "type": "query",
                    "datasource": _DATASOURCE,
                    "query": f"label_values({JOB_LOSS}, namespace)",
                    "includeAll": True,
                    "multi": True,
                    "current": {"text": "All", "value": "$__all"},
                },
            ]
        },
        "panels": panels,
    }


def render_dashboard_json() -> str:
    return json.dumps(render_dashboard(), indent=2, sort_keys=True) + "\n"
