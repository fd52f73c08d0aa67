"""YAML loading: line numbers, several documents, --set overrides, unreadable input."""

from __future__ import annotations

import pytest

from kubetrain.api.errors import SpecError, suggest
from kubetrain.api.loader import load_file, load_text

JOB = """\
apiVersion: kubetrain.io/v1alpha1
kind: TrainingJob
metadata: {name: small}
spec:
  dataset: {type: synthetic}
  model: {type: linear}
  training:
    maxSteps: 10
"""


def test_overrides_apply_and_are_validated_like_the_file() -> None:
    (job,) = load_text(
        JOB, overrides=["spec.training.maxSteps=50", "spec.parallelism.procsPerNode=2"]
    )
    assert job.spec.training.max_steps == 50
    assert job.spec.parallelism.procs_per_node == 2
    with pytest.raises(SpecError) as info:
        load_text(JOB, source="job.yaml", overrides=["spec.training.maxStep=5"])
    (issue,) = info.value.issues
    assert issue.path == "spec.training.maxStep"
    assert "did you mean 'maxSteps'?" in issue.message


def test_override_needs_path_and_value() -> None:
    with pytest.raises(SpecError, match="expected path=value"):
        load_text(JOB, overrides=["spec.training.maxSteps"])


def test_override_cannot_descend_into_a_scalar() -> None:
    with pytest.raises(SpecError, match=r"spec\.training\.maxSteps is not a mapping"):
        load_text(JOB, overrides=["spec.training.maxSteps.x=1"])


def test_errors_carry_the_line_of_the_offending_key() -> None:
    bad = JOB.replace("maxSteps: 10", "maxSteps: -3")
    with pytest.raises(SpecError) as info:
        load_text(bad, source="job.yaml")
    (issue,) = info.value.issues
    assert (issue.source, issue.line, issue.path) == ("job.yaml", 8, "spec.training.maxSteps")
    assert str(issue).startswith("job.yaml:8: spec.training.maxSteps: ")


def test_every_document_is_checked_and_all_errors_come_together() -> None:
    second = JOB.replace("name: small", "name: other").replace("type: linear", "type: lineer")
    third = JOB.replace("maxSteps: 10", "maxSteps: 0")
    with pytest.raises(SpecError) as info:
        load_text("---\n".join([JOB, second, third]), source="many.yaml")
    paths = [(i.line, i.path) for i in info.value.issues]
    assert paths == [(15, "spec.model.type"), (26, "spec.training.maxSteps")]
    assert "did you mean 'linear'?" in info.value.issues[0].message


def test_invalid_yaml_names_the_line() -> None:
    with pytest.raises(SpecError) as info:
        load_text(JOB + "  bad: [unclosed\n", source="y.yaml")
    assert info.value.issues[0].line == 10
    assert "invalid YAML" in info.value.issues[0].message


def test_missing_file_is_one_clear_issue(tmp_path) -> None:
    with pytest.raises(SpecError, match="cannot read file"):
        load_file(tmp_path / "nope.yaml")


def test_other_kinds_are_refused() -> None:
    with pytest.raises(SpecError) as info:
        load_text("apiVersion: v1\nkind: Pod\n")
    found = {(i.path, i.message) for i in info.value.issues}
    assert ("apiVersion", "expected kubetrain.io/v1alpha1, got 'v1'") in found
    assert ("kind", "expected TrainingJob, got 'Pod'") in found


@pytest.mark.parametrize(
    ("word", "choices", "expected"),
    [
        ("lerning_rate", ["lr", "eps", "betas"], "lr"),
        ("learningRate", ["lr", "eps"], "lr"),
        ("batch_size", ["globalBatchSize", "microBatchSize"], "globalBatchSize"),
        ("max_steps", ["maxSteps", "epochs"], "maxSteps"),
        ("adamW", ["sgd", "adam", "adamw"], "adamw"),
        ("bf16", ["fp32", "bf16-mixed", "fp16-mixed"], "bf16-mixed"),
        ("zzz", ["lr", "eps"], None),
        ("batch_size", ["lr"], None),  # a synonym only counts when its target is allowed here
    ],
)
def test_suggest(word, choices, expected) -> None:
    assert suggest(word, choices) == expected


def test_a_rule_reading_a_bad_value_is_not_reported() -> None:
    """maxSteps is wrong, so whether 'exactly one of maxSteps or epochs' holds is unknown: only the
    type error is reported, not a rule broken by leaving the bad value out."""
    bad = JOB.replace("maxSteps: 10", "maxSteps: ten")
    with pytest.raises(SpecError) as info:
        load_text(bad, source="job.yaml")
    assert [(i.path, "valid integer" in i.message) for i in info.value.issues] == [
        ("spec.training.maxSteps", True)
    ]


def test_rules_of_every_level_come_with_a_type_error() -> None:
    bad = JOB.replace("maxSteps: 10", "maxSteps: 10\n    epochs: 2\n    seed: x").replace(
        "model: {type: linear}", "model: {type: linear}\n  parallelism: {procsPerNode: 3}"
    )
    with pytest.raises(SpecError) as info:
        load_text(bad, source="job.yaml")
    found = {i.path for i in info.value.issues}
    assert found == {
        "spec.training.seed",
        "spec.training.maxSteps",
        "spec.training.globalBatchSize",
    }


def test_issues_about_set_values_name_set_as_their_source() -> None:
    with pytest.raises(SpecError) as info:
        load_text(JOB, source="job.yaml", overrides=["spec.training.maxSteps=x", "a.b=1"])
    found = {(i.source, i.line, i.path) for i in info.value.issues}
    assert found == {("--set", None, "spec.training.maxSteps"), ("--set", None, "a")}
