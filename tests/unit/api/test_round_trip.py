"""YAML that kubetrain writes reads back through the loader unchanged: `validate -o yaml` and the
resolved document the operator hands the trainer in a pod (read there by `kubetrain run`)."""

from __future__ import annotations

import pytest
from spec_cases import example_files

from kubetrain.api.loader import load_file, load_text
from kubetrain.api.yamlsource import dump_yaml
from kubetrain_operator.names import JobMeta
from kubetrain_operator.render import resolved_job_document


@pytest.mark.parametrize("path", example_files(), ids=lambda p: p.name)
def test_dumped_job_reads_back_unchanged(path) -> None:
    (job,) = load_file(path)
    (again,) = load_text(dump_yaml([job.to_yaml_dict()]))
    assert again.to_yaml_dict() == job.to_yaml_dict()


@pytest.mark.parametrize("path", example_files(), ids=lambda p: p.name)
def test_operator_document_reads_back_in_the_pod(path) -> None:
    (job,) = load_file(path)
    meta = JobMeta.from_object(
        {"metadata": {"name": job.metadata.name, "namespace": "ns", "uid": "u-1"}}
    )
    (in_pod,) = load_text(resolved_job_document(meta, job.spec), "job.yaml")
    assert in_pod.spec == job.spec


def test_strings_that_look_like_other_things_survive_the_operator() -> None:
    (job,) = load_file(next(p for p in example_files() if p.name == "tabular-regression.yaml"))
    assert job.spec.dataset.tabular.columns.label == "y"  # type: ignore[union-attr]
    meta = JobMeta.from_object({"metadata": {"name": "r", "namespace": "ns", "uid": "u"}})
    text = resolved_job_document(meta, job.spec)
    assert "label: 'y'" in text
    (in_pod,) = load_text(text)
    assert in_pod.spec.dataset.tabular.columns.label == "y"  # type: ignore[union-attr]
