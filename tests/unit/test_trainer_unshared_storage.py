"""Two real gloo ranks whose checkpoint directories differ (one per node, nothing shared):
both stop at the first save with a configuration error, instead of one crashing and the other
waiting in a collective until the timeout."""

from __future__ import annotations

import datetime
import os
import socket
from pathlib import Path

import torch.distributed as dist
import torch.multiprocessing as mp

from kubetrain.errors import InvalidJob
from kubetrain.trainer.checkpoint import Checkpointer
from kubetrain.trainer.distributed import DistContext
from kubetrain.trainer.loop import LoopState


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank: int, port: int, root: str, results: dict[int, str]) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2, timeout=datetime.timedelta(seconds=30))
    try:
        # Each rank sees its own directory, as with an emptyDir per pod.
        ckpt = Checkpointer(Path(root) / f"node-{rank}", keep_last=2, ctx=DistContext(rank, 2))
        try:
            ckpt.save(10, main={"loop.pt": LoopState(step=10)})
            results[rank] = "saved"
        except InvalidJob as e:
            results[rank] = f"{type(e).__name__}: {e}"
    finally:
        dist.destroy_process_group()


def test_unshared_checkpoint_storage_is_a_clear_error_on_every_rank(tmp_path) -> None:
    results = mp.Manager().dict()
    mp.start_processes(
        _rank,
        args=(_free_port(), str(tmp_path), results),
        nprocs=2,
        start_method="spawn",
        join=True,
    )
    assert set(results) == {0, 1}
    for rank in (0, 1):
        # InvalidJob: exit code 2, since a retry cannot help.
        assert results[rank].startswith("InvalidJob: checkpoint directory"), results[rank]
        assert "ReadWriteMany" in results[rank]


def test_shared_storage_saves(tmp_path) -> None:
    ckpt = Checkpointer(tmp_path, keep_last=2, ctx=DistContext())
    path = ckpt.save(3, main={"loop.pt": LoopState(step=3)})
    assert path.name == "step-00000003" and (path / "manifest.json").is_file()
