"""The project's images where no registry is: what the tests on real nodes (tests/e2e, the
chart's tests) give the chart and the examples so that pods run the images hack/images/build.sh
built and imported into the nodes' containerd, never pulled."""

from __future__ import annotations

from typing import Any

import yaml
from kubetrain_chart import ROOT

EXAMPLE = ROOT / "examples" / "cpu-cluster.yaml"


def chart_image_args(operator_ref: str) -> list[str]:
    """`helm install` flags for the operator image `operator_ref` ("repository:tag"), used as
    it is on the node (`pullPolicy: Never`: a missing image fails at once, not after pulls)."""
    repository, tag = operator_ref.rsplit(":", 1)
    return [
        "--set", f"image.repository={repository}", "--set", f"image.tag={tag}",
        "--set", "image.pullPolicy=Never",
    ]  # fmt: skip


def local_example(trainer_ref: str) -> dict[str, Any]:
    """examples/cpu-cluster.yaml as it is but for `spec.image`: the trainer image `trainer_ref`
    (its tag is not `latest`, so the pods' default pull policy, IfNotPresent, finds it)."""
    job = yaml.safe_load(EXAMPLE.read_text())
    job["spec"]["image"] = trainer_ref
    return job
