"""hf models and instruct data in process, on the tiny Llama: response-only labels, chat spans,
truncation, padding and packing; the loss normaliser; activation checkpointing, bf16 autocast,
gradient accumulation and torch.compile give the same training signal as the plain model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hf_models import write_tiny_llama

from kubetrain.api.data import InstructData
from kubetrain.api.model import HFArgs
from kubetrain.data.instruct import (
    PackedSequences,
    PaddedSequences,
    encode,
    truncate,
)
from kubetrain.data.shapes import DataShapes
from kubetrain.metrics.losses import IGNORE, summed_loss
from kubetrain.models.hf import build_hf, tokenizer_for
from kubetrain.trainer.step import accumulate_gradients, autocast_for


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_llama(tmp_path_factory.mktemp("hf-unit") / "tiny")


@pytest.fixture(scope="module")
def tok(model_dir: Path):
    return tokenizer_for(HFArgs(path=str(model_dir)), None)


def _src(**kw: object) -> InstructData:
    return InstructData.model_validate({"path": "x.jsonl", **kw})


def test_prompt_tokens_carry_no_loss(tok) -> None:
    ids, labels = encode(_src(), tok, {"prompt": "Reverse the word: apple", "response": "elppa"},
                         "x:1")
    p = [tok.bos_token_id, *tok("Reverse the word: apple", add_special_tokens=False)["input_ids"]]
    r = [*tok("elppa", add_special_tokens=False)["input_ids"], tok.eos_token_id]
    assert ids.tolist() == p + r
    assert labels.tolist() == [IGNORE] * len(p) + r
    _, every = encode(_src(lossOn="all"), tok, {"prompt": "a", "response": "b"}, "x:1")
    assert IGNORE not in every.tolist()


def test_chat_assistant_turns_alone_carry_loss(tok) -> None:
    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "bye"}, {"role": "assistant", "content": "ciao"}]
    ids, labels = encode(_src(), tok, {"messages": msgs}, "x:1")
    learned = tok.decode([i for i, y in zip(ids, labels, strict=True) if y != IGNORE])
    assert learned == "hello<|eos|>ciao<|eos|>"


def test_truncation_shifts_and_cuts() -> None:
    ids, labels = np.arange(10), np.array([IGNORE] * 4 + list(range(4, 10)))
    x, y = truncate(_src(), ids, labels, 5)
    assert x.tolist() == [0, 1, 2, 3, 4] and y.tolist() == [IGNORE, IGNORE, IGNORE, 4, 5]
    x, y = truncate(_src(truncation="keepEnd"), ids, labels, 5)
    assert x.tolist() == [4, 5, 6, 7, 8] and y.tolist() == [5, 6, 7, 8, 9]
    x, _ = truncate(_src(truncation="drop"), ids, labels, 5)
    assert len(x) == 0


def test_padding_and_packing_keep_every_target_once() -> None:
    ex = [(np.arange(3), np.array([IGNORE, 5, 6])), (np.arange(5), np.array([1, 2, 3, 4, 5]))]
    padded = PaddedSequences(ex, pad=0)
    x, y = padded.batch(np.array([0, 1]))
    assert x.shape == (2, 5) and y[0].tolist() == [IGNORE, 5, 6, IGNORE, IGNORE]
    assert padded.target_count(np.array([0, 1])) == 7
    packed = PackedSequences.pack(ex, 4)
    assert len(packed) == 2 and packed.target_count(np.array([0, 1])) == 7
    assert packed.y.reshape(-1).tolist() == [IGNORE, 5, 6, 1, 2, 3, 4, 5]


def _model(model_dir: Path, **lora: object):
    torch.manual_seed(0)
    args = HFArgs.model_validate({"path": str(model_dir), "lora": {
        "rank": 4, "dropout": 0.0, "targetModules": ["q_proj", "v_proj"], **lora}})
    m = build_hf(args, DataShapes("lm", (16,), 512, 16), None)
    for n, p in m.named_parameters():  # LoRA B starts at zero: give the adapters a signal
        if "lora_B" in n:
            torch.nn.init.normal_(p, std=0.1)
    return m


def _grads(model: torch.nn.Module, batches: list, count: float, **kw: object) -> dict:
    model.zero_grad()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.0)
    accumulate_gradients(model, opt, batches, summed_loss("cross_entropy"), count,
                         **kw)  # type: ignore[arg-type]
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_checkpointing_accumulation_bf16_and_compile_train_alike(model_dir: Path) -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randint(3, 512, (4, 16), generator=g)
    y = torch.randint(3, 512, (4, 16), generator=g)
    y[:, :5] = IGNORE  # prompt tokens
    count = float((y != IGNORE).sum())
    plain = _model(model_dir)
    want = _grads(plain, [(x, y)], count)
    assert want and all("lora_" in n for n in want)
    # Two micro-batches, normalised by the whole batch's loss-carrying tokens: same gradient.
    split = _grads(plain, [(x[:2], y[:2]), (x[2:], y[2:])], count)
    for n in want:
        torch.testing.assert_close(split[n], want[n], rtol=1e-4, atol=1e-6)
    ckpt = _model(model_dir)
    ckpt.activation_checkpointing = True
    ckpt.train()
    got = _grads(ckpt, [(x, y)], count)
    for n in want:
        torch.testing.assert_close(got[n], want[n], rtol=1e-4, atol=1e-6)
    bf16 = _grads(plain, [(x, y)], count,
                  autocast=autocast_for(torch.device("cpu"), "bf16-mixed"))
    for n in want:
        assert torch.nn.functional.cosine_similarity(bf16[n].flatten(), want[n].flatten(),
                                                     dim=0) > 0.98
    compiled = torch.compile(plain)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), plain(x), rtol=1e-4, atol=1e-5)


def test_sequence_classifier_masks_padding(model_dir: Path, tok) -> None:
    args = HFArgs.model_validate({"path": str(model_dir), "task": "sequenceClassification"})
    torch.manual_seed(0)
    m = build_hf(args, DataShapes("classification", (8,), 3), None).eval()
    ids = tok("color: red", add_special_tokens=True)["input_ids"]
    one = torch.tensor([ids])
    padded = torch.tensor([ids + [tok.pad_token_id] * 4])
    with torch.no_grad():
        torch.testing.assert_close(m(padded), m(one), rtol=1e-5, atol=1e-6)
    assert m(one).shape == (1, 3)
    assert json.loads((model_dir / "config.json").read_text())["pad_token_id"] == tok.pad_token_id
