"""Checkpoints: atomic publish, keep last K, newest verified one wins, damaged ones skipped,
every part round-trips with weights_only loading, the resume guard names what changed."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from trainer_jobs import make_job

from kubetrain.errors import InvalidJob
from kubetrain.trainer.checkpoint import Checkpointer, read_manifest, read_part, verify
from kubetrain.trainer.distributed import DistContext
from kubetrain.trainer.loop import LoopState
from kubetrain.trainer.resume_guard import guard_changes, mismatch_message, resume_guard
from kubetrain.trainer.state import ModelWeights, RNGState


class Weights:
    def __init__(self, value: float):
        self.w = torch.full((3,), value)

    def state_dict(self) -> dict[str, Any]:
        return {"w": self.w}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.w = state["w"]


def _save(c: Checkpointer, step: int) -> Path:
    return c.save(step, main={"model.pt": Weights(float(step)), "loop.pt": LoopState(step=step)},
                  per_rank={"rng": RNGState()}, guard={"spec": {"a": 1}})


def test_keeps_the_last_k_and_leaves_no_temp_dirs(tmp_path: Path) -> None:
    c = Checkpointer(tmp_path, keep_last=2, ctx=DistContext())
    for step in (10, 20, 30):
        _save(c, step)
    assert [p.name for p in c.complete()] == ["step-00000020", "step-00000030"]
    assert not list(tmp_path.glob(".tmp-*"))
    newest = c.resume_point("auto")
    assert newest is not None
    assert read_part(newest, "loop.pt")["step"] == 30
    assert (newest / "rank-0" / "rng.pt").is_file()
    m = read_manifest(newest)
    assert (m.step, m.world, m.guard) == (30, 1, {"spec": {"a": 1}})
    assert set(m.files) == {"model.pt", "loop.pt", "rank-0/rng.pt"}


@pytest.mark.parametrize("damage", ["truncated", "same size", "manifest gone"])
def test_a_damaged_newest_is_skipped(tmp_path: Path, damage: str,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    c = Checkpointer(tmp_path, keep_last=5, ctx=DistContext())
    _save(c, 10)
    bad = _save(c, 20)
    target = bad / "rank-0" / "rng.pt"  # any file counts, not only the weights
    if damage == "truncated":
        with target.open("r+b") as f:
            f.truncate(10)
    elif damage == "same size":
        target.write_bytes(b"\0" * target.stat().st_size)
    else:
        (bad / "manifest.json").unlink()
    assert verify(bad) is not None
    assert getattr(c.resume_point("auto"), "name", None) == "step-00000010"
    assert f"skipping checkpoint {bad}" in capsys.readouterr().err


def test_every_checkpoint_damaged_is_an_error_not_a_silent_restart(tmp_path: Path) -> None:
    c = Checkpointer(tmp_path, keep_last=5, ctx=DistContext())
    for step in (10, 20):
        with (_save(c, step) / "model.pt").open("r+b") as f:
            f.truncate(5)
    with pytest.raises(InvalidJob, match=r"every checkpoint in .* is unusable.*resume: never"):
        c.resume_point("auto")
    assert c.resume_point("never") is None


def test_an_older_format_is_refused_by_name(tmp_path: Path) -> None:
    old = tmp_path / "step-00000010"
    old.mkdir()
    (old / "model.pt").write_bytes(b"x")
    (old / "manifest.json").write_text(json.dumps({"step": 10, "files": {"model.pt": 1}}))
    assert "checkpoint format 1" in (verify(old) or "")
    with pytest.raises(InvalidJob, match="format 1"):
        Checkpointer(tmp_path, keep_last=2, ctx=DistContext()).resume_point(str(old))


def test_parts_load_back_with_weights_only(tmp_path: Path) -> None:
    c = Checkpointer(tmp_path, keep_last=2, ctx=DistContext())
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters())
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    path = c.save(1, main={"model.pt": ModelWeights(model), "optim.pt": opt,
                           "loop.pt": LoopState(step=1, best=0.5)}, per_rank={"rng": RNGState()})
    model2 = torch.nn.Linear(3, 2)
    opt2 = torch.optim.AdamW(model2.parameters())
    loop = LoopState()
    c.load(path, main={"model.pt": ModelWeights(model2), "optim.pt": opt2, "loop.pt": loop})
    assert torch.equal(model2.weight, model.weight) and (loop.step, loop.best) == (1, 0.5)
    assert torch.equal(opt2.state_dict()["state"][0]["exp_avg"],
                       opt.state_dict()["state"][0]["exp_avg"])


def test_rng_state_round_trips() -> None:
    rng = RNGState()
    state = rng.state_dict()
    a = (torch.rand(3), np.random.rand(3), random.random())
    rng.load_state_dict(state)
    b = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]


def test_the_resume_guard_names_what_changed() -> None:
    base = {"model": {"type": "mlp", "mlp": {"hidden": [8]}}}
    spec = make_job(base).spec
    shapes = {"net.0.weight": [8, 4]}
    saved = resume_guard(spec, shapes)
    # Lengths, lr and compile may change between a run and its resume.
    free = make_job({**base, "training": {"maxSteps": 999},
                     "optimizer": {"type": "adamw", "lr": 0.5}}).spec
    free.model.compile = True
    assert guard_changes(saved, resume_guard(free, shapes)) == []
    changed = make_job({"model": {"type": "mlp", "mlp": {"hidden": [16]}},
                        "optimizer": {"type": "sgd", "lr": 0.1}}).spec
    got = guard_changes(saved, resume_guard(changed, {"net.0.weight": [16, 4]}))
    assert got == ["spec.model.mlp.hidden [8] → [16]", "spec.optimizer.type adamw → sgd"]
    msg = mismatch_message("runs/x/checkpoints/step-00000010", got)
    assert "written for a different job" in msg and "resume: never" in msg
    # Same spec, other data (a wider vocabulary): the parameter shapes tell.
    assert guard_changes(saved, resume_guard(spec, {"net.0.weight": [8, 5]})) == [
        "parameter net.0.weight shape [8, 4] → [8, 5]"]
