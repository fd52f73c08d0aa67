"""`kubetrain run FILE`: validate, plan, then train here or start torchrun."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import traceback
from pathlib import Path

from kubetrain.api.errors import SpecError
from kubetrain.api.loader import load_job
from kubetrain.cli.main import add_overrides
from kubetrain.exitcodes import ExitCode

TERMINATION_LOG_ENV = "KUBETRAIN_TERMINATION_LOG"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="TrainingJob YAML")
    add_overrides(parser)
    parser.add_argument("--run-dir", help="run directory (default: $KUBETRAIN_RUN_DIR or "
                        "runs/<metadata.name>)")
    parser.add_argument("--procs", type=int, help="processes on this node (sets procsPerNode)")
    parser.add_argument("--no-progress", action="store_true", help="no console progress output")


def run(args: argparse.Namespace) -> int:
    overrides = list(args.overrides)
    if args.procs:
        overrides.append(f"spec.parallelism.procsPerNode={args.procs}")
    try:
        job = load_job(args.file, overrides)
    except SpecError as e:
        _termination_log(ExitCode.INVALID, f"invalid TrainingJob: {e.issues[0] if e.issues else e}")
        raise
    from kubetrain.trainer.run_dir import default_run_dir

    run_dir = default_run_dir(job, args.run_dir).resolve()
    base = Path(args.file).resolve().parent
    from kubetrain.trainer.distributed import torchrun_env

    worker = torchrun_env()
    if worker is None:
        from kubetrain.errors import InvalidJob
        from kubetrain.reporting import launch_time
        from kubetrain.trainer import run_lock
        from kubetrain.trainer.launch import exit_dir, run_torchrun, topology
        from kubetrain.trainer.run_dir_faults import RunDirFault

        par = job.spec.parallelism
        try:
            top = topology(par.nodes, _procs_here(par.procs_per_node), par.master_port)
            # Held by this process (not torchrun or the ranks) until it exits: one run per dir.
            lock = run_lock.acquire(run_dir, top.node_rank)
        except InvalidJob as e:
            return _finish(ExitCode.INVALID, str(e))
        except RunDirFault as e:
            return _finish(ExitCode.CRASHED, str(e))
        if top.world > 1:
            argv = ["run", str(Path(args.file).resolve()), "--run-dir", str(run_dir),
                    *(a for o in overrides for a in ("--set", o))]
            if args.no_progress:
                argv.append("--no-progress")
            if args.debug:
                argv.insert(0, "--debug")
            # The ranks' summaries count from this launcher's start (set for them only: an
            # in-process caller's environment must not keep a stale launch time).
            started = {launch_time.STARTED_ENV: str(launch_time.process_start_time())}
            code, reason = run_torchrun(top, argv, exit_dir(run_dir, top), started)
            lock.release()
            return _finish(code, reason, print_reason=False)
    if worker is not None:
        from kubetrain.trainer.launch import die_with_parent

        die_with_parent()  # a rank must not outlive its torchrun
    rank = worker[0] if worker else 0
    return _train_here(job, run_dir, base, args, rank)


def _procs_here(procs: int | str) -> int:
    """Processes on this node; torch (slow to import) is loaded only to count GPUs for auto."""
    if procs != "auto":
        return int(procs)
    from kubetrain.trainer.trainer import gpus_here

    return max(gpus_here(), 1)


def _train_here(job: object, run_dir: Path, base: Path, args: argparse.Namespace,
                rank: int) -> int:
    from kubetrain.errors import InvalidJob
    from kubetrain.trainer.checkpoint import CheckpointError
    from kubetrain.trainer.launch import report_exit
    from kubetrain.trainer.loop import Diverged
    from kubetrain.trainer.signals import StopFlag
    from kubetrain.trainer.trainer import train

    stop = StopFlag()
    stop.install()
    code, reason = ExitCode.CRASHED, ""
    try:
        code = train(job, run_dir, base=base, stop=stop,  # type: ignore[arg-type]
                     console=not args.no_progress)
    except InvalidJob as e:
        code, reason = ExitCode.INVALID, str(e)
        if args.debug:
            traceback.print_exc()
    except Diverged as e:
        code, reason = ExitCode.DIVERGED, str(e)
        if args.debug:
            traceback.print_exc()
    except CheckpointError as e:
        code, reason = ExitCode.CRASHED, str(e)
        traceback.print_exc()
    except Exception as e:
        from kubetrain.trainer.run_dir_faults import storage_fault

        # Disk full, run directory gone or read-only: one line naming the path, exit 1.
        ckpt = job.spec.checkpoint.path  # type: ignore[attr-defined]
        fault = storage_fault(e, run_dir, Path(ckpt) if ckpt else None)
        if fault is None:
            code, reason = ExitCode.CRASHED, f"{type(e).__name__}: {e}"
            report_exit(rank, code, reason)
            raise
        code, reason = ExitCode.CRASHED, fault
        if args.debug:
            traceback.print_exc()
    finally:
        from kubetrain.trainer.distributed import shutdown

        shutdown()
    with contextlib.suppress(OSError):  # a full or vanished run directory: torchrun's 1 counts
        report_exit(rank, code, reason)
    return _finish(code, reason, print_reason=rank == 0)


def _finish(code: int, reason: str, *, print_reason: bool = True) -> int:
    if reason and code in (ExitCode.INVALID, ExitCode.DIVERGED, ExitCode.CRASHED):
        label = {ExitCode.INVALID: "error", ExitCode.DIVERGED: "diverged"}.get(code, "crashed")
        if print_reason or code != ExitCode.CRASHED:
            print(f"kubetrain run: {label}: {reason}", file=sys.stderr)
    _termination_log(code, reason)
    return int(code)


def _termination_log(code: int, reason: str) -> None:
    """The one-line reason the operator shows for a job that must not be retried."""
    log = os.environ.get(TERMINATION_LOG_ENV)
    if log and code in (ExitCode.INVALID, ExitCode.DIVERGED) and reason:
        Path(log).write_text(reason.splitlines()[0] + "\n")
