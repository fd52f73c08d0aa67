"""A stand-in trainer for operator tests that need no torch: a real process that follows
docs/trainer-contract.md (PET_* env, run dir, termination log, exit codes) and reports
progress through the real Kubernetes status sink. It runs in the trainer image (its python and
kubetrain), from this folder mounted read-only (operator_helpers.standin_job).

    python standin_trainer.py ok STEPS       train STEPS steps (~20/s), checkpoint every 10, exit 0
    python standin_trainer.py invalid MSG    write MSG to the termination log, exit 2
    python standin_trainer.py freeze         report once, then hang without heartbeats
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

from kubetrain.api.status import CheckpointRef, Progress
from kubetrain.reporting.kube_status import sink_for_pod


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def main(mode: str, arg: str = "") -> int:
    rank = int(os.environ.get("PET_NODE_RANK", "0"))
    run_dir = Path(os.environ.get("KUBETRAIN_RUN_DIR", "/tmp/standin"))
    ckpt = run_dir / "standin-checkpoint"
    sink = sink_for_pod(None) if rank == 0 else None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if mode == "invalid":
        Path(os.environ["KUBETRAIN_TERMINATION_LOG"]).write_text(arg + "\n")
        return 2
    start = int(ckpt.read_text()) if ckpt.exists() else 0
    progress = Progress(step=start, heartbeat_time=now())
    if sink:
        sink.publish(progress, final=False)
    if mode == "freeze":
        stop.wait()  # no heartbeats: the operator must call this a stall
        return 1
    total = int(arg or 100)
    for step in range(start + 1, total + 1):
        if stop.wait(0.05):
            return 75
        progress.step, progress.total_steps = step, total
        progress.loss, progress.samples_per_second = 1.0 / step, 100.0
        progress.heartbeat_time = now()
        if rank == 0 and step % 10 == 0:
            run_dir.mkdir(parents=True, exist_ok=True)
            ckpt.write_text(str(step))
            progress.last_checkpoint = CheckpointRef(step=step, path=str(ckpt), time=now())
        if sink:
            sink.beat(progress)
    if sink:
        sink.publish(progress, final=True)
        sink.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
