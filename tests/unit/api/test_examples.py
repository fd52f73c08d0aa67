"""Every example is a valid TrainingJob, and a valid cluster job."""

from __future__ import annotations

import pytest
from spec_cases import example_files

from kubetrain.api.loader import load_file
from kubetrain.api.plan import resolve_plan
from kubetrain.cli.main import main

EXAMPLES = example_files()


def test_the_examples_the_issue_asks_for_exist() -> None:
    names = {p.stem for p in EXAMPLES}
    assert {
        "quickstart",
        "char-gpt-shakespeare",
        "tabular-regression",
        "tabular-classification",
        "image-classification",
        "gpu-ddp-multinode",
        "fsdp-gpt",
        "cpu-cluster",
    } <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_validates(path) -> None:
    (job,) = load_file(path)
    assert job.spec.image, "examples carry an image so they also apply to a cluster"
    plan = resolve_plan(job.spec)
    assert plan.global_batch_size == plan.micro_batch_size * plan.grad_accum_steps * plan.world_size


def test_validate_cli_accepts_all_examples(capsys) -> None:
    assert main(["validate", "--cluster", *map(str, EXAMPLES)]) == 0
    out = capsys.readouterr().out
    assert out.count("is valid") == len(EXAMPLES)
    assert "accumulation 2 × world 16" in out  # gpu-ddp-multinode: 512 = 16 × 2 × 16
    # Counted on the meta device: a 12-layer, 768-wide GPT over bytes (256 tokens, context 1024).
    assert "parameters: 85,936,896" in out
    assert "parameters: known once the data is read" in out  # char vocabulary of a text file
