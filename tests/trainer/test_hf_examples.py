"""The hf examples run as users run them: after writing the tiny model the examples refer to
(examples/models/make_tiny_llama.py, here into a temporary directory named with --set)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hf_models import write_tiny_llama
from trainer_cli import kubetrain, losses

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
SHAKESPEARE = ROOT.parent / "shared" / "data" / "tinyshakespeare" / "input.txt"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_llama(tmp_path_factory.mktemp("hf-examples") / "tiny-llama")


def _run(example: str, run_dir: Path, *sets: str) -> None:
    args = [a for s in sets for a in ("--set", s)]
    r = kubetrain("validate", EXAMPLES / example, *args)
    assert r.returncode == 0, r.stderr
    r = kubetrain("run", EXAMPLES / example, "--run-dir", run_dir, "--no-progress", *args,
                  timeout=600)
    assert r.returncode == 0, r.stderr


def test_lora_instruction_example(model_dir: Path, tmp_path: Path) -> None:
    _run("hf-lora-instruct.yaml", tmp_path / "run", f"spec.model.hf.path={model_dir}",
         "spec.training.maxSteps=20", "spec.training.eval.everySteps=20",
         "spec.checkpoint.everySteps=20")
    curve = losses(tmp_path / "run")
    assert curve[20] < curve[5]


def test_classifier_example(model_dir: Path, tmp_path: Path) -> None:
    _run("hf-classifier-finetune.yaml", tmp_path / "run", f"spec.model.hf.path={model_dir}",
         "spec.training.maxSteps=20", "spec.training.eval.everySteps=20",
         "spec.training.logging.everySteps=5")
    r = kubetrain("eval", tmp_path / "run", "--json")
    assert r.returncode == 0, r.stderr
    assert '"accuracy"' in r.stdout


@pytest.mark.skipif(not SHAKESPEARE.is_file(), reason="../shared/data/tinyshakespeare absent")
def test_llama_pretraining_example_exports_for_transformers(tmp_path: Path) -> None:
    import torch
    import transformers

    from kubetrain.trainer.run_dir import load_trained

    run_dir, out = tmp_path / "run", tmp_path / "export"
    _run("hf-llama-pretrain-shakespeare.yaml", run_dir, "spec.training.maxSteps=10",
         "spec.training.eval.everySteps=10", "spec.training.logging.everySteps=5",
         "spec.preprocessing.text.vocabSize=300")
    assert losses(run_dir)[10] < losses(run_dir)[5]
    r = kubetrain("export", run_dir, "-o", out)
    assert r.returncode == 0, r.stderr
    model = transformers.AutoModelForCausalLM.from_pretrained(out)
    tok = transformers.AutoTokenizer.from_pretrained(out)
    ids = torch.tensor([tok("To be, or not to be")["input_ids"]])
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, load_trained(run_dir).model(ids),
                                   rtol=0, atol=1e-5)
