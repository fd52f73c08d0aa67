"""`kubetrain export` of a registry model: safetensors + config.json that sample, eval and the
ten-line snippet of docs/export.md load back to the trained model's outputs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from trainer_cli import kubetrain, write_job
from trainer_jobs import job_dict

ROOT = Path(__file__).resolve().parents[2]


def _snippet() -> str:
    doc = (ROOT / "docs" / "export.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", doc, re.S)
    code = next(b for b in blocks if "load_model(model" in b)
    assert len([line for line in code.splitlines() if line.strip()]) <= 10
    return code


def _train_and_export(tmp_path: Path, name: str, tokenizer: dict, split: dict,
                      steps: int) -> tuple[Path, Path]:
    """A one-layer GPT trained on README.md for `steps` steps, then exported: (run, export)."""
    spec = {"dataset": {"type": "text", "text": {"path": str(ROOT / "README.md")},
                        "split": split},
            "preprocessing": {"text": tokenizer},
            "model": {"type": "gpt", "gpt": {"layers": 1, "heads": 2, "width": 16,
                                             "context": 16}},
            "training": {"maxSteps": steps, "globalBatchSize": 8}}  # fmt: skip
    run_dir, out = tmp_path / "run", tmp_path / "export"
    r = kubetrain("run", write_job(tmp_path / f"{name}.yaml", job_dict(spec, name)),
                  "--run-dir", run_dir, "--no-progress")  # fmt: skip
    assert r.returncode == 0, r.stderr
    r = kubetrain("export", run_dir, "-o", out)
    assert r.returncode == 0, r.stderr
    return run_dir, out


def test_registry_export_loads_in_sample_eval_and_the_documented_snippet(tmp_path: Path) -> None:
    from kubetrain.trainer.run_dir import load_trained

    run_dir, out = _train_and_export(tmp_path, "gpt", {"tokenizer": "byte"},
                                     {"val": 0.1, "test": 0.1}, steps=5)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    assert json.loads((out / "config.json").read_text())["format"] == "kubetrain"

    scope: dict[str, object] = {}
    exec(_snippet().replace('"DIR', f'"{out}'), scope)  # the documented ten lines, as written
    model = scope["model"]
    ids = torch.randint(0, 256, (2, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = load_trained(run_dir).model(ids)
        torch.testing.assert_close(model(ids), want, rtol=0, atol=0)  # type: ignore[operator]

    r = kubetrain("sample", out, "--prompt", "kube", "--tokens", "8")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("kube")
    from_run = json.loads(kubetrain("eval", run_dir, "--json").stdout)
    r = kubetrain("eval", out, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == from_run
    # Exporting again replaces the export; a directory of other files is refused.
    assert kubetrain("export", run_dir, "-o", out).returncode == 0
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    r = kubetrain("export", run_dir, "-o", other)
    assert r.returncode == 2 and "a directory with other files in it" in r.stderr
    assert (other / "notes.txt").read_text() == "mine"


def test_registry_export_carries_a_bpe_tokenizer_that_loads(tmp_path: Path) -> None:
    """A bpe (or pretrained) tokenizer is exported as tokenizer.json beside the weights, as the
    run's model/ has it: `tokenizers` and transformers load it and encode as training did."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    from kubetrain.trainer.run_dir import load_trained

    run_dir, out = _train_and_export(tmp_path, "bpe", {"tokenizer": "bpe", "vocabSize": 300},
                                     {"val": 0.1}, steps=2)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors",
                                                     "tokenizer.json"]
    assert (out / "tokenizer.json").read_text() == (run_dir / "model" / "tokenizer.json"
                                                    ).read_text()
    text = "kubetrain exports the tokenizer with the model"
    trained = load_trained(run_dir).preprocessing.tokenizer  # type: ignore[attr-defined]
    want = [int(i) for i in trained.encode(text)]
    assert Tokenizer.from_file(str(out / "tokenizer.json")).encode(text).ids == want
    fast = PreTrainedTokenizerFast(tokenizer_file=str(out / "tokenizer.json"))
    assert fast(text)["input_ids"] == want and fast.decode(want) == text
    r = kubetrain("sample", out, "--prompt", "kube", "--tokens", "4")
    assert r.returncode == 0 and r.stdout.startswith("kube"), r.stderr
