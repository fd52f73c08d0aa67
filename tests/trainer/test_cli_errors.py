"""Runtime errors: one clear line each, the contract's exit code, no traceback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from trainer_cli import kubetrain, write_job
from trainer_jobs import job_dict


def _csv(tmp_path: Path, text: str) -> str:
    (tmp_path / "d.csv").write_text(text)
    return str(tmp_path / "d.csv")


def _tab(path: str, label: str, **extra: Any) -> dict[str, Any]:
    return {"dataset": {"type": "tabular", "tabular": {"path": path, "columns": {"label": label}},
                        **extra}}


CASES = {
    "missing file": (lambda t: _tab(str(t / "nope.csv"), "y"), 2, "nope.csv: no such file"),
    "unknown column": (lambda t: _tab(_csv(t, "price,size\n" + "1,2\n" * 40), "prise"), 2,
                       "no column 'prise'; did you mean 'price'?"),
    "nan labels": (lambda t: {**_tab(_csv(t, "x,y\n" + "1,2\n" * 30 + "1,\n"), "y"),
                              "training": {"loss": "mse"}}, 2, "label column 'y' has 1 missing"),
    "out-of-vocabulary labels": (
        lambda t: _tab(_csv(t, "x,y\n" + "".join(f"{i},{'a' if i % 2 else 'b'}\n"
                                                 for i in range(60)) + "7,zebra\n"), "y",
                       split={"val": 0.5, "seed": 3}),  # puts zebra in val
        2, "never seen in the training split (zebra)"),
    "text shorter than the context": (
        lambda t: {"dataset": {"type": "text", "text": {"path": _txt(t)}},
                   "model": {"type": "gpt", "gpt": {"context": 64}}},
        2, "fewer than two windows of the context"),
    "remote data without credentials": (lambda t: _tab("s3://bucket/train.csv", "y"), 2,
                                        "no credentials"),
    "diverging loss": (lambda t: {"dataset": {"type": "synthetic",
                                              "synthetic": {"task": "regression"}},
                                  "optimizer": {"type": "sgd", "lr": 10.0},
                                  "training": {"logging": {"everySteps": 2}}},
                       3, "the training loss became"),
    "fp16 on cpu": (lambda t: {"training": {"precision": "fp16-mixed"}}, 2, "needs a GPU"),
    "nodes without a cluster": (lambda t: {"parallelism": {"nodes": 2, "procsPerNode": 1}}, 2,
                                "needs a cluster"),
}


def _txt(tmp: Path) -> str:
    (tmp / "short.txt").write_text("to be or not to be, that is the question")
    return str(tmp / "short.txt")


@pytest.mark.parametrize("case", list(CASES))
def test_runtime_error_is_one_line_with_its_exit_code(case: str, tmp_path: Path) -> None:
    make, code, message = CASES[case]
    job = write_job(tmp_path / "job.yaml", job_dict(make(tmp_path)))
    log = tmp_path / "termination-log"
    r = kubetrain("run", job, "--run-dir", tmp_path / "run", "--no-progress",
                  KUBETRAIN_TERMINATION_LOG=str(log))
    assert r.returncode == code, r.stderr
    assert message in r.stderr
    assert "Traceback" not in r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("kubetrain run:")]
    assert len(errors) == 1, r.stderr
    assert message in log.read_text() and len(log.read_text().splitlines()) == 1


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    job = write_job(tmp_path / "job.yaml", job_dict(_tab(str(tmp_path / "nope.csv"), "y")))
    r = kubetrain("--debug", "run", job, "--run-dir", tmp_path / "run")
    assert r.returncode == 2 and "Traceback" in r.stderr


def test_invalid_spec_exits_2(tmp_path: Path) -> None:
    job = write_job(tmp_path / "job.yaml", job_dict({"training": {"maxStep": 3}}))
    r = kubetrain("run", job, "--run-dir", tmp_path / "run")
    assert r.returncode == 2 and "maxStep" in r.stderr
