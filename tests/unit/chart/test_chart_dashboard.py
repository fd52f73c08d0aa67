"""The Grafana dashboard: valid JSON whose series the operator exports."""

from __future__ import annotations

import json
import re

from kubetrain_chart import CHART

from kubetrain_operator.metrics import Metrics


def _dashboard() -> dict:
    return json.loads((CHART / "dashboards" / "kubetrain.json").read_text())


def _series() -> set[str]:
    exprs = [t["expr"] for p in _dashboard()["panels"] for t in p["targets"]]
    return {m for e in exprs for m in re.findall(r"\bkubetrain_[a-z_]+", e)}


def test_dashboard_shows_phases_loss_and_throughput() -> None:
    titles = [p["title"] for p in _dashboard()["panels"]]
    assert titles[0] == "TrainingJobs by phase"
    assert any("Loss" in t for t in titles)
    assert any("/s" in t for t in titles)


def test_every_series_is_exported_by_the_operator() -> None:
    registered = {s.name for metric in Metrics().registry.collect() for s in metric.samples} | {
        metric.name for metric in Metrics().registry.collect()
    }
    missing = _series() - registered
    assert not missing, f"the operator does not export {sorted(missing)}"
