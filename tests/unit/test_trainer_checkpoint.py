"""Checkpoints: atomic publish, keep last K, newest complete one wins, corrupt ones skipped."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from kubetrain.trainer.checkpoint import Checkpointer, load_part, rng_state, set_rng_state, verify
from kubetrain.trainer.distributed import DistContext


def _save(c: Checkpointer, step: int) -> Path:
    return c.save(step, {"model": {"w": torch.full((3,), float(step))}, "trainer": {"step": step}},
                  {"job.yaml": "x: 1\n"})


def test_keeps_the_last_k_and_leaves_no_temp_dirs(tmp_path: Path) -> None:
    c = Checkpointer(tmp_path, keep_last=2, ctx=DistContext())
    for step in (10, 20, 30):
        _save(c, step)
    assert [p.name for p in c.complete()] == ["step-00000020", "step-00000030"]
    assert not list(tmp_path.glob(".tmp-*"))
    newest = c.newest_valid()
    assert newest is not None and load_part(newest, "trainer")["step"] == 30
    assert (newest / "rng-rank0.pt").is_file()


def test_a_corrupt_or_partial_newest_is_skipped(tmp_path: Path) -> None:
    c = Checkpointer(tmp_path, keep_last=5, ctx=DistContext())
    _save(c, 10)
    bad = _save(c, 20)
    with (bad / "model.pt").open("r+b") as f:
        f.truncate(10)
    (tmp_path / "step-00000030").mkdir()  # published name, but no manifest: partial
    assert "truncated" in (verify(bad) or "")
    with pytest.warns(UserWarning, match="skipping checkpoint"):
        newest = c.newest_valid()
    assert newest is not None and newest.name == "step-00000010"


def test_rng_state_round_trips() -> None:
    state = rng_state()
    a = torch.rand(3)
    set_rng_state(state)
    assert torch.equal(torch.rand(3), a)
