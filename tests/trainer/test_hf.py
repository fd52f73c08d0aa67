"""Hugging Face models (issue 12) on a tiny random Llama written locally with save_pretrained:
LoRA arithmetic, bad input found by validate, a 2-process DDP LoRA fine-tune (loss falls, kill -9
resumes to identical losses, checkpoints hold adapters only), export that transformers loads back
to the same logits, sample/eval on the run, FSDP2 over the decoder layers with resume."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from hf_models import write_tiny_llama
from trainer_cli import (
    kill_launcher,
    kubetrain,
    logged_step,
    losses,
    metrics,
    start,
    wait_for,
    write_job,
)
from trainer_jobs import job_dict

ROOT = Path(__file__).resolve().parents[2]
INSTRUCT = ROOT / "examples" / "data" / "instruct.jsonl"
STEPS, CKPT = 40, 10


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hf")


@pytest.fixture(scope="module")
def model_dir(work: Path) -> Path:
    return write_tiny_llama(work / "tiny-llama")


def _lora_job(work: Path, model_dir: Path, name: str, **spec: Any) -> Path:
    base = {
        "dataset": {"type": "instruct",
                    "instruct": {"path": str(INSTRUCT), "maxLength": 32},
                    "split": {"val": 0.1}},
        "model": {"type": "hf", "hf": {"path": str(model_dir),
                                       "lora": {"rank": 4, "alpha": 8, "dropout": 0.1,
                                                "targetModules": ["q_proj", "v_proj"],
                                                "trainable": ["lm_head"]}}},
        "optimizer": {"type": "adamw", "lr": 0.02, "weightDecay": 0.0},
        "training": {"maxSteps": STEPS, "globalBatchSize": 8, "microBatchSize": 2,
                     "logging": {"everySteps": 1}, "eval": {"everySteps": STEPS}},
        "checkpoint": {"everySteps": CKPT, "keepLast": 2},
        **spec,
    }
    return write_job(work / f"{name}.yaml", job_dict(base, name=name))


# -- LoRA arithmetic and bad input (no training) ---------------------------------------------
def test_trainable_parameters_are_the_lora_formula(model_dir: Path) -> None:
    from kubetrain.api.model import HFArgs
    from kubetrain.data.shapes import DataShapes
    from kubetrain.models.hf import build_hf, parameter_counts

    cfg = json.loads((model_dir / "config.json").read_text())
    h, inter, layers = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    kv = cfg["num_key_value_heads"] * cfg["head_dim"]
    r = 4
    args = HFArgs.model_validate({"path": str(model_dir), "lora": {
        "rank": r, "targetModules": ["q_proj", "v_proj", "down_proj"]}})
    model = build_hf(args, DataShapes("lm", (16,), cfg["vocab_size"], 16), None)
    total, trainable = parameter_counts(model)
    # A is r × in, B is out × r: r·(in + out) per adapted layer.
    want = layers * r * ((h + h) + (h + kv) + (inter + h))
    assert trainable == want
    assert total == sum(p.numel() for p in model.parameters())
    assert all("lora_" in n for n, p in model.named_parameters() if p.requires_grad)
    # A classifier's new head is trained in full beside the adapters.
    args = HFArgs.model_validate({"path": str(model_dir), "task": "sequenceClassification",
                                  "lora": {"rank": r, "targetModules": ["q_proj"]}})
    cls = build_hf(args, DataShapes("classification", (16,), 3), None)
    assert parameter_counts(cls)[1] == layers * r * (h + h) + h * 3


def test_validate_finds_bad_models_without_loading_weights(work: Path, model_dir: Path) -> None:
    not_a_model = work / "not-a-model"
    not_a_model.mkdir(exist_ok=True)
    (not_a_model / "weights.bin").write_bytes(b"\0" * 16)
    no_template = write_tiny_llama(work / "no-template", chat_template=False)
    chat = work / "chat.jsonl"
    chat.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"},
                                             {"role": "assistant", "content": "hello"}]}) + "\n")
    cases = {
        "not-a-model": ({"path": str(not_a_model)}, INSTRUCT,
                        "spec.model.hf.path: " + f"{not_a_model}: not a model directory"),
        "bad-target": ({"path": str(model_dir), "lora": {"targetModules": ["q_proj", "qkv"]}},
                       INSTRUCT, "spec.model.hf.lora.targetModules: no module named qkv in"
                       " LlamaForCausalLM (it has: down_proj, gate_proj, k_proj, lm_head,"
                       " o_proj, q_proj, up_proj, v_proj)"),
        "small-embeddings": ({"path": str(model_dir), "config": {"vocab_size": 100}}, INSTRUCT,
                             "spec.model.hf: the tokenizer has 512 tokens but the model's"
                             " embeddings hold 100"),
        "no-template": ({"path": str(no_template)}, chat,
                        "spec.dataset.instruct: the examples are chat messages but the tokenizer"
                        " has no chat template"),
    }
    files = [write_job(work / f"{name}.yaml", job_dict({
        "dataset": {"type": "instruct", "instruct": {"path": str(data)}},
        "model": {"type": "hf", "hf": hf}}, name=name)) for name, (hf, data, _) in cases.items()]
    r = kubetrain("validate", *files)
    assert r.returncode == 2, r.stderr
    for f, (_, _, want) in zip(files, cases.values(), strict=True):
        assert f"{f}: {want}" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 + len(cases)  # one line per problem
    # `run` refuses the same way, before training: one line, exit 2.
    r = kubetrain("run", files[1], "--run-dir", work / "bad-run", "--no-progress")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith(
        "kubetrain run: error: model.hf.lora.targetModules: no module named qkv")


# -- DDP LoRA: loss falls, kill -9 resumes identically, export reloads -----------------------
@pytest.fixture(scope="module")
def lora_ref(work: Path, model_dir: Path) -> Path:
    run_dir = work / "lora-ref"
    r = kubetrain("run", _lora_job(work, model_dir, "lora"), "--procs", "2", "--run-dir",
                  run_dir, "--no-progress", timeout=600)
    assert r.returncode == 0, r.stderr
    # Adapters, 2 layers × 4·((32 + 32) + (32 + 16)), and the output layer, 32 × 512.
    assert f"{896 + 32 * 512:,} trainable" in r.stderr
    return run_dir


def test_ddp_lora_loss_falls_and_checkpoints_hold_adapters_only(lora_ref: Path) -> None:
    curve = losses(lora_ref)
    assert sorted(curve) == list(range(1, STEPS + 1))
    first, last = sum(curve[s] for s in range(1, 6)) / 5, sum(
        curve[s] for s in range(STEPS - 4, STEPS + 1)) / 5
    assert last < first - 0.5, (first, last)
    ckpt = torch.load(lora_ref / "checkpoints" / f"step-{STEPS:08d}" / "model.pt",
                      weights_only=True)
    # Adapters and the trained copy of lm_head (peft modules_to_save); no frozen base weight.
    assert ckpt and all("lora_" in k or "modules_to_save" in k for k in ckpt), sorted(ckpt)
    assert sum(v.numel() for v in ckpt.values()) == 896 + 32 * 512


def test_kill9_during_lora_finetune_resumes_to_identical_losses(
        work: Path, model_dir: Path, lora_ref: Path) -> None:
    run_dir = work / "lora-killed"
    job = _lora_job(work, model_dir, "lora")
    proc = start("run", job, "--procs", "2", "--run-dir", run_dir, "--no-progress")
    wait_for(lambda: logged_step(run_dir) >= CKPT + 3, 300, "steps after a checkpoint")
    kill_launcher(proc)
    assert logged_step(run_dir) < STEPS
    r = kubetrain("run", job, "--procs", "2", "--run-dir", run_dir, "--no-progress",
                  timeout=600)
    assert r.returncode == 0, r.stderr
    assert "resuming from" in r.stderr
    a, b = losses(run_dir), losses(lora_ref)
    assert a == b  # bit for bit, dropout included


def test_merged_export_reproduces_the_finetuned_logits(work: Path, lora_ref: Path) -> None:
    import transformers

    from kubetrain.trainer.run_dir import load_trained

    merged, adapter = work / "export-merged", work / "export-adapter"
    r = kubetrain("export", lora_ref, "--merge-lora", "-o", merged)
    assert r.returncode == 0, r.stderr
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {
        p.name for p in merged.iterdir()}
    r = kubetrain("export", lora_ref, "-o", adapter)
    assert r.returncode == 0, r.stderr
    assert (adapter / "adapter_model.safetensors").is_file()
    ids = torch.randint(0, 512, (3, 24), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = load_trained(lora_ref).model(ids)
        got = transformers.AutoModelForCausalLM.from_pretrained(merged)(ids).logits
        via_peft = transformers.AutoModelForCausalLM.from_pretrained(adapter)(ids).logits
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    torch.testing.assert_close(via_peft, want, rtol=0, atol=1e-5)
    tok = transformers.AutoTokenizer.from_pretrained(merged)
    assert len(tok) == 512 and tok.chat_template


def test_sample_and_eval_work_on_the_hf_run(lora_ref: Path) -> None:
    r = kubetrain("sample", lora_ref, "--prompt", "Reverse the word: apple", "--tokens", "5")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("Reverse the word: apple")
    r = kubetrain("eval", lora_ref, "--split", "val", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    val = [m["valLoss"] for m in metrics(lora_ref) if "valLoss" in m][-1]
    assert out["loss"] == pytest.approx(val, rel=1e-4)


# -- FSDP2 over the decoder layers -----------------------------------------------------------
def test_fsdp_trains_the_hf_model_and_resumes_from_a_sharded_checkpoint(
        work: Path, model_dir: Path) -> None:
    job = _lora_job(work, model_dir, "fsdp", parallelism={"strategy": "fsdp", "procsPerNode": 2},
                    training={"maxSteps": 20, "globalBatchSize": 8, "microBatchSize": 4,
                              "logging": {"everySteps": 1}},
                    model={"type": "hf", "hf": {"path": str(model_dir), "freeze": [
                        "model.embed_tokens.*"]}},  # full fine-tuning, embeddings frozen
                    checkpoint={"everySteps": 10})
    full = work / "fsdp-full"
    r = kubetrain("run", job, "--run-dir", full, "--no-progress", timeout=600)
    assert r.returncode == 0, r.stderr
    curve = losses(full)
    assert curve[20] < curve[1] - 0.5
    assert (full / "checkpoints" / "step-00000010" / "dcp").is_dir()
    resumed = work / "fsdp-resumed"
    shutil.copytree(full / "checkpoints" / "step-00000010",
                    resumed / "checkpoints" / "step-00000010")
    r = kubetrain("run", job, "--run-dir", resumed, "--no-progress", timeout=600)
    assert r.returncode == 0, r.stderr
    after = losses(resumed)
    assert min(after) == 11
    for s in range(11, 21):
        assert after[s] == pytest.approx(curve[s], rel=1e-5), f"step {s}"


# -- hf://org/name through huggingface_hub's cache (offline: the only path testable here) ----
def test_hf_uri_reads_huggingface_hubs_cache_offline(work: Path, model_dir: Path) -> None:
    cache = work / "hub-cache"
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / "models--tiny-org--tiny-llama"
    shutil.copytree(model_dir, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    env = {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "HF_HOME": str(work / "hf-home")}

    def job(uri: str, targets: list[str]) -> Path:
        return write_job(work / f"uri-{len(targets)}.yaml", job_dict({
            "dataset": {"type": "instruct", "instruct": {"path": str(INSTRUCT)}},
            "model": {"type": "hf", "hf": {"path": uri, "lora": {"targetModules": targets}}}},
            name="uri"))

    r = kubetrain("validate", job("hf://tiny-org/tiny-llama", ["q_proj"]), **env)
    assert r.returncode == 0, r.stderr
    # Found in the cache: the architecture was built from it (a wrong target is reported).
    r = kubetrain("validate", job("hf://tiny-org/tiny-llama", ["q_proj", "nope"]), **env)
    assert r.returncode == 2 and "no module named nope" in r.stderr, r.stderr
    r = kubetrain("validate", job("hf://tiny-org/missing", ["q_proj"]), **env)
    assert r.returncode == 2
    assert "spec.model.hf.path: hf://tiny-org/missing: not available" in r.stderr, r.stderr
