"""A corpus of bad data and odd arguments through the real CLI (in-process `kubetrain.cli.main`).

Every case must end with exit code 2, one `kubetrain <cmd>: error:` line that names what is wrong
(file, row, column or field) and no traceback. The cases are tiny: nothing here trains for more
than a couple of steps, and most stop while the data is read.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from trainer_cli import restored_signals, write_job
from trainer_jobs import job_dict

from kubetrain.cli.main import main

Make = Callable[[Path], list[str]]
"""Writes a case's files under a fresh directory and returns the CLI arguments."""


def cli(*argv: str | Path) -> tuple[int | str, str, str]:
    """(exit code or 'traceback', stdout, stderr) of `kubetrain ARGV` run in this process."""
    out, err = io.StringIO(), io.StringIO()
    code: int | str
    with restored_signals(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as e:  # argparse
            code = e.code if isinstance(e.code, int) else 1
        except BaseException:  # what a user would see as a traceback
            code = "traceback"
            err.write(traceback.format_exc())
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("KUBETRAIN_RUN_DIR", "KUBETRAIN_RUN_STARTED", "KUBETRAIN_TERMINATION_LOG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


# -- writers -------------------------------------------------------------------------------------
def _run(tmp: Path, spec: dict[str, Any]) -> list[str]:
    job = write_job(tmp / "job.yaml", job_dict(spec))
    return ["run", str(job), "--run-dir", str(tmp / "run"), "--no-progress"]


def _csv(tmp: Path, text: str, name: str = "d.csv") -> str:
    (tmp / name).write_text(text)
    return str(tmp / name)


def _rows(n: int = 40, x: Callable[[int], object] = lambda i: i,
          y: Callable[[int], object] = lambda i: i % 2) -> str:
    return "x,z,label\n" + "".join(f"{x(i)},{i * 0.5},{y(i)}\n" for i in range(n))


def _tab(path: str, label: str = "label", *, categorical: list[str] | None = None,
         **spec: Any) -> dict[str, Any]:
    cols: dict[str, Any] = {"label": label}
    if categorical:
        cols["categorical"] = categorical
    return {"dataset": {"type": "tabular", "tabular": {"path": path, "columns": cols}},
            "model": {"type": "mlp", "mlp": {"hidden": [8]}}, **spec}


def _tab_run(text: str, **kw: Any) -> Make:
    return lambda t: _run(t, _tab(_csv(t, text), **kw))


def _npz(tmp: Path, **arrays: Any) -> str:
    np.savez(tmp / "d.npz", **arrays)
    return str(tmp / "d.npz")


def _arr(path: str, **spec: Any) -> dict[str, Any]:
    return {"dataset": {"type": "arrays", "arrays": {"path": path}},
            "model": {"type": "mlp", "mlp": {"hidden": [8]}}, **spec}


def _arr_run(**arrays: Any) -> Make:
    return lambda t: _run(t, _arr(_npz(t, **arrays)))


X = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
Y = np.arange(40) % 2


def _with(a: np.ndarray, index: tuple[int, int], value: float) -> np.ndarray:
    a = a.copy()
    a[index] = value
    return a


def _text(tmp: Path, text: str | bytes, name: str = "t.txt") -> str:
    p = tmp / name
    p.write_bytes(text.encode() if isinstance(text, str) else text)
    return str(p)


def _gpt(path: str) -> dict[str, Any]:
    return {"dataset": {"type": "text", "text": {"path": path}},
            "model": {"type": "gpt", "gpt": {"layers": 1, "heads": 1, "width": 8, "context": 8}},
            "training": {"maxSteps": 2, "globalBatchSize": 4}}


def _shards(tmp: Path, tokens: dict[str, Any], preprocessing: dict[str, Any] | None = None,
            **files: bytes) -> list[str]:
    """A gpt job on dataset type tokens, with `files` written under tmp/d first."""
    (tmp / "d").mkdir()
    for name, content in files.items():
        (tmp / "d" / name.replace("_", ".")).write_bytes(content)
    spec = {**_gpt(""), "dataset": {"type": "tokens", "tokens": {"path": str(tmp / "d"),
                                                                   **tokens}}}
    if preprocessing:
        spec["preprocessing"] = {"text": preprocessing}
    return _run(tmp, spec)


def _index(tokens: int, shard: int) -> bytes:
    return json.dumps({"dtype": "uint16", "vocabSize": 256, "tokens": tokens,
                       "shards": [{"file": "a.bin", "tokens": shard}]}).encode()


def _import(target: str, args: dict[str, Any] | None = None) -> Make:
    model: dict[str, Any] = {"import": target, "type": None, "mlp": None}
    if args is not None:
        model["args"] = args
    return lambda t: _run(t, {"model": model})


# -- trained runs to evaluate, sample and plot (trained once per module) -------------------------
CORPUS_TEXT = "the quick brown fox jumps over the lazy dog. " * 40


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("trained")
    runs = {}
    d = root / "mlp"
    d.mkdir()
    spec = _tab(_csv(d, _rows(60)), training={"maxSteps": 2, "globalBatchSize": 8})
    spec["dataset"]["split"] = {"val": 0.2, "test": 0.2}
    runs["mlp"] = d
    d2 = root / "gpt"
    d2.mkdir()
    runs["gpt"] = d2
    for tmp, s in ((d, spec), (d2, _gpt(_text(d2, CORPUS_TEXT)))):
        code, _, err = cli(*_run(tmp, s))
        assert code == 0, err
    return {k: v / "run" for k, v in runs.items()}


RunCase = Callable[[Path, dict[str, Path]], list[str]]


def _copy(trained: dict[str, Path], kind: str, tmp: Path) -> Path:
    dst = tmp / f"{kind}-run"
    shutil.copytree(trained[kind], dst)
    return dst


def _damaged(kind: str, file: str, content: bytes | None, *args: str,
             command: str | None = None) -> RunCase:
    """A copy of a trained run with one file replaced (None: deleted)."""
    def make(tmp: Path, trained: dict[str, Path]) -> list[str]:
        run = _copy(trained, kind, tmp)
        target = run / file
        if content is None:
            target.unlink()
        else:
            target.write_bytes(content)
        return [command or ("sample" if kind == "gpt" else "eval"), str(run), *args]
    return make


def _on(kind: str, command: str, *args: str) -> RunCase:
    return lambda tmp, trained: [command, str(_copy(trained, kind, tmp)), *args]


def _plot_with(metrics: str, *args: str) -> RunCase:
    def make(tmp: Path, trained: dict[str, Path]) -> list[str]:
        run = _copy(trained, "mlp", tmp)
        (run / "metrics.jsonl").write_text(metrics)
        return ["plot", str(run), *[a.replace("{tmp}", str(tmp)) for a in args]]
    return make


def _other_model_weights(tmp: Path, trained: dict[str, Path]) -> list[str]:
    run = _copy(trained, "mlp", tmp)
    gpt_weights = (trained["gpt"] / "model" / "model.pt").read_bytes()
    (run / "model" / "model.pt").write_bytes(gpt_weights)
    return ["eval", str(run)]


def _data_gone(tmp: Path, trained: dict[str, Path]) -> list[str]:
    run = _copy(trained, "mlp", tmp)
    job = yaml.safe_load((run / "model" / "job.yaml").read_text())
    job["spec"]["dataset"]["tabular"]["path"] = str(tmp / "moved.csv")
    (run / "model" / "job.yaml").write_text(yaml.safe_dump(job))
    return ["eval", str(run)]


def _meta_without_shapes(tmp: Path, trained: dict[str, Path]) -> list[str]:
    run = _copy(trained, "mlp", tmp)
    (run / "model" / "meta.json").write_text(json.dumps({"steps": 2}))
    return ["eval", str(run)]


# -- the corpus ----------------------------------------------------------------------------------
# name -> (what to write and run, message fragments the one error line must contain)
DATA_CASES: dict[str, tuple[Make, list[str]]] = {
    # tabular
    "text cell in a numeric column": (
        _tab_run(_rows(x=lambda i: "abc" if i == 6 else i)),
        ["d.csv", "column 'x'", "row 7", "'abc'", "columns.categorical"]),
    "several text cells in a numeric column": (
        _tab_run(_rows(x=lambda i: "?" if i % 10 == 3 else i)),
        ["column 'x'", "row 4", "4 of 40 cells"]),
    "text cell in a numeric label column": (
        _tab_run(_rows(y=lambda i: "n/a!" if i == 9 else i * 0.5)),
        ["label column 'label'", "row 10", "'n/a!'"]),
    "text cell in a regression label": (
        _tab_run(_rows(y=lambda i: "oops" if i == 2 else i * 0.5), training={"loss": "mse"}),
        ["label column 'label'", "row 3", "'oops'"]),
    "inf in a numeric column": (
        _tab_run(_rows(x=lambda i: "inf" if i == 4 else i)),
        ["column 'x'", "row 5", "infinite"]),
    "-inf in a numeric column with mean filling": (
        _tab_run(_rows(x=lambda i: "-inf" if i == 11 else ("" if i == 3 else i)),
                 preprocessing={"cleaning": {"missing": {"strategy": "mean"}}}),
        ["column 'x'", "row 12", "infinite"]),
    "inf in a regression label": (
        _tab_run(_rows(y=lambda i: "inf" if i == 20 else i * 0.5), training={"loss": "mse"}),
        ["label column 'label'", "row 21"]),
    "empty label cell": (
        _tab_run(_rows(y=lambda i: "" if i == 30 else i * 0.5), training={"loss": "mse"}),
        ["label column 'label'", "row 31 (line 32)", "missing"]),
    "text cell in the second file of a directory": (
        lambda t: (_csv(t, _rows(), "a.csv"), _csv(t, _rows(x=lambda i: "x" if i == 2 else i),
                                                   "b.csv"), _run(t, _tab(str(t))))[2],
        ["column 'x'", "b.csv row 3 (line 4)"]),
    "one class": (_tab_run(_rows(y=lambda i: "a")), ["label column 'label'", "one class", "'a'"]),
    "one numeric class": (_tab_run(_rows(y=lambda i: 1), training={"loss": "cross_entropy"}),
                          ["label column 'label'", "one class"]),
    "header only": (_tab_run("x,z,label\n"), ["d.csv", "no rows"]),
    "empty csv file": (_tab_run(""), ["d.csv"]),
    "jsonl with a text cell in a number column": (
        lambda t: _run(t, _tab(_csv(t, "".join(
            json.dumps({"x": "a" if i == 5 else i, "label": i % 2}) + "\n" for i in range(40)),
            "d.jsonl"))),
        ["d.jsonl"]),
    # arrays
    "string inputs": (_arr_run(x=np.array([f"s{i}" for i in range(40)]), y=Y),
                      ["d.npz", "'x'", "numbers"]),
    "0-d inputs": (_arr_run(x=np.array(3.0), y=Y), ["d.npz", "'x'", "0-d"]),
    "0-d labels": (_arr_run(x=X, y=np.array(1)), ["d.npz", "'y'", "0-d"]),
    "mismatched lengths": (_arr_run(x=X, y=Y[:30]), ["d.npz", "40", "30"]),
    "NaN inputs": (_arr_run(x=_with(X, (7, 1), np.nan), y=Y), ["d.npz", "'x'", "NaN", "x[7]"]),
    "inf inputs": (_arr_run(x=_with(X, (3, 0), np.inf), y=Y), ["d.npz", "'x'", "x[3]"]),
    "one-hot labels": (_arr_run(x=X, y=np.eye(2)[Y]), ["'y'", "(40, 2)", "(40,)", "argmax"]),
    "complex inputs": (_arr_run(x=X.astype(np.complex64), y=Y), ["'x'", "complex"]),
    "no samples": (_arr_run(x=np.zeros((0, 3)), y=np.zeros(0)), ["d.npz", "no samples"]),
    "one class in arrays": (_arr_run(x=X, y=np.zeros(40, dtype=np.int64)), ["one class"]),
    "text labels for regression": (
        lambda t: _run(t, _arr(_npz(t, x=X, y=np.array([f"c{i}" for i in range(40)])),
                               training={"loss": "mse"})),
        ["'y'", "numbers"]),
    "NaN labels in arrays": (_arr_run(x=X, y=_with(Y.astype(float)[:, None], (5, 0), np.nan)),
                             ["'y'", "y[5]"]),
    "object arrays": (
        lambda t: (np.savez(t / "d.npz", x=np.array([object()] * 40), y=Y),  # type: ignore[func-returns-value]
                   _run(t, _arr(str(t / "d.npz"))))[1],
        ["d.npz", "object"]),
    "garbage npz": (lambda t: _run(t, _arr(_text(t, b"not a zip file at all", "d.npz"))),
                    ["d.npz", "cannot read"]),
    "npy inputs of strings": (
        lambda t: (np.save(t / "x.npy", np.array(["a"] * 40)), np.save(t / "y.npy", Y),  # type: ignore[func-returns-value]
                   _run(t, {**_arr(str(t / "x.npy")), "dataset": {
                       "type": "arrays", "arrays": {"path": str(t / "x.npy"),
                                                    "labelsPath": str(t / "y.npy")}}}))[2],
        ["x.npy", "numbers"]),
    "unknown npz key": (_arr_run(inputs=X, y=Y), ["d.npz", "no array 'x'"]),
    "npy inputs without labelsPath": (
        lambda t: (np.save(t / "x.npy", X),  # type: ignore[func-returns-value]
                   _run(t, _arr(str(t / "x.npy"))))[1],
        ["x.npy", "labelsPath"]),
    # text
    "text that is not UTF-8": (lambda t: _run(t, _gpt(_text(t, b"caf\xe9 " * 50))),
                               ["t.txt", "utf-8"]),
    "empty text file": (lambda t: _run(t, _gpt(_text(t, ""))), ["t.txt", "empty"]),
    "corpus of empty files": (
        lambda t: (_text(t, "", "a.txt"), _text(t, "", "b.txt"), _run(t, _gpt(str(t))))[2],
        ["empty"]),
    # token shards and tokenizers
    "shard size not a multiple of its dtype": (
        lambda t: _shards(t, {"vocabSize": 256}, a_bin=b"\x01" * 201),
        ["a.bin", "201 bytes", "uint16"]),
    "index that does not match its shards": (
        lambda t: _shards(t, {}, a_bin=np.ones(400, np.uint16).tobytes(),
                          index_json=_index(500, 500)),
        ["index.json", "a.bin", "400 tokens", "500"]),
    "token id beyond the vocabulary": (
        lambda t: _shards(t, {"vocabSize": 256},
                          a_bin=(np.arange(400) % 300).astype(np.uint16).tobytes()),
        ["a.bin", "token id 299", "256"]),
    "empty corpus to prepare": (
        lambda t: (_text(t, "", "empty.txt"), _shards(t, {"prepare": {
            "path": str(t / "empty.txt"), "onFirstUse": True}}))[1],
        ["empty.txt", "empty"]),
    "tokenizer file that does not parse": (
        lambda t: _run(t, {**_gpt(_text(t, CORPUS_TEXT)), "preprocessing": {"text": {
            "tokenizer": "pretrained", "tokenizerPath": _text(t, '{"model": 1', "tok.json")}}}),
        ["tok.json", "not a tokenizer.json"]),
    # paths
    "missing relative data path": (
        lambda t: _run(t, _tab("no/such.csv")),
        ["no/such.csv", "no such file", "looked"]),
    # model import
    "import of a module": (_import("os:path"), ["model.import os:path", "module"]),
    "import of a constant": (_import("math:pi"), ["model.import math:pi", "not a factory"]),
    "import of a class that is not a Module": (
        _import("collections:OrderedDict"), ["model.import collections:OrderedDict", "Module"]),
    "factory missing an argument": (_import("torch.nn:Bilinear"),
                                    ["model.import torch.nn:Bilinear", "in2_features"]),
    "factory given an unknown argument": (
        _import("torch.nn:Identity", {"bogus": 1}), ["model.import torch.nn:Identity"]),
    "factory rejecting an argument value": (
        _import("torch.nn:Dropout", {"p": 3}), ["model.import torch.nn:Dropout", "args"]),
    "missing module": (_import("no_such_module_xyz:build"), ["no_such_module_xyz"]),
}

RUN_CASES: dict[str, tuple[RunCase, list[str]]] = {
    "eval of a split left at 0": (_on("gpt", "eval"), ["test split is empty"]),
    "eval --split unknown": (_on("mlp", "eval", "--split", "holdout"), ["holdout"]),
    "eval --metrics unknown": (_on("mlp", "eval", "--metrics", "acuracy"),
                               ["acuracy", "accuracy"]),
    "eval --metrics for another task": (_on("mlp", "eval", "--metrics", "perplexity"),
                                        ["perplexity", "regression"]),
    "eval of a directory that is no run": (lambda tmp, tr: ["eval", str(tmp)], ["no trained"]),
    "eval of a file": (lambda tmp, tr: ["eval", _text(tmp, "x")], ["no trained"]),
    "eval with model.pt corrupt": (_damaged("mlp", "model/model.pt", b"garbage"), ["model.pt"]),
    "eval with model.pt empty": (_damaged("mlp", "model/model.pt", b""), ["model.pt"]),
    "eval with weights of another model": (_other_model_weights, ["model.pt"]),
    "eval with meta.json missing": (_damaged("mlp", "model/meta.json", None), ["meta.json"]),
    "eval with meta.json corrupt": (_damaged("mlp", "model/meta.json", b"{\"sha"), ["meta.json"]),
    "eval with meta.json without shapes": (_meta_without_shapes, ["meta.json"]),
    "eval with preprocessing.json missing": (
        _damaged("mlp", "model/preprocessing.json", None), ["preprocessing.json"]),
    "eval with preprocessing.json corrupt": (
        _damaged("mlp", "model/preprocessing.json", b"[1, 2"), ["preprocessing.json"]),
    "eval with preprocessing.json of another kind": (
        _damaged("mlp", "model/preprocessing.json", b'{"kind": "text"}'), ["preprocessing"]),
    "eval with job.yaml missing": (_damaged("mlp", "model/job.yaml", None), ["job.yaml"]),
    "eval with job.yaml not YAML": (_damaged("mlp", "model/job.yaml", b"a: [1\n"), ["job.yaml"]),
    "eval with job.yaml invalid": (
        _damaged("mlp", "model/job.yaml", b"apiVersion: v1\nkind: Pod\n"), ["job.yaml"]),
    "eval after the data moved": (_data_gone, ["moved.csv", "no such file"]),
    "sample --tokens 0": (_on("gpt", "sample", "--tokens", "0"), ["--tokens"]),
    "sample --tokens negative": (_on("gpt", "sample", "--tokens", "-3"), ["--tokens"]),
    "sample --temperature 0": (_on("gpt", "sample", "--temperature", "0"), ["--temperature"]),
    "sample --temperature negative": (
        _on("gpt", "sample", "--temperature", "-1"), ["--temperature"]),
    "sample --temperature nan": (_on("gpt", "sample", "--temperature", "nan"), ["--temperature"]),
    "sample --top-k 0": (_on("gpt", "sample", "--top-k", "0"), ["--top-k"]),
    "sample --tokens too many": (_on("gpt", "sample", "--tokens", "100001"),
                                 ["--tokens 100001", "100,000"]),
    "sample --tokens not a number": (_on("gpt", "sample", "--tokens", "many"), ["--tokens"]),
    "sample a prompt with unseen characters": (
        _on("gpt", "sample", "--prompt", "QZ"), ["prompt", "'Q'"]),
    "sample of a non-gpt run": (_on("mlp", "sample"), ["gpt"]),
    "sample with model.pt corrupt": (_damaged("gpt", "model/model.pt", b"\x80\x02garbage"),
                                     ["model.pt"]),
    "sample with job.yaml missing": (_damaged("gpt", "model/job.yaml", None), ["job.yaml"]),
    "plot of a directory that is no run": (lambda tmp, tr: ["plot", str(tmp)], ["metrics.jsonl"]),
    "plot with records that are not objects": (_plot_with("5\n[1, 2]\n\"x\"\n"),
                                               ["metrics.jsonl", "no records"]),
    "plot with steps that are not numbers": (
        _plot_with('{"step": "ten", "loss": 1.0}\n'), ["metrics.jsonl", "no records"]),
    "plot to an unknown image format": (_plot_with('{"step": 1, "loss": 1.0, "lr": 0.1}\n', "-o",
                                                   "{tmp}/loss.xyz"), ["loss.xyz", "xyz"]),
    "plot into a missing directory": (_plot_with('{"step": 1, "loss": 1.0, "lr": 0.1}\n', "-o",
                                                 "{tmp}/no/dir/loss.png"), ["loss.png"]),
}


def _check(code: int | str, err: str, fragments: list[str]) -> None:
    assert "Traceback" not in err, err
    assert code == 2, f"exit {code}: {err}"
    errors = [line for line in err.splitlines() if ": error: " in line]
    assert len(errors) == 1, err
    for fragment in fragments:
        assert fragment in errors[0], f"{fragment!r} not in {errors[0]!r}"


@pytest.mark.parametrize("case", list(DATA_CASES))
def test_bad_data_is_one_line_exit_2(case: str, tmp_path: Path) -> None:
    make, fragments = DATA_CASES[case]
    code, _, err = cli(*make(tmp_path))
    _check(code, err, fragments)
    assert not (tmp_path / "run" / "model").exists()  # nothing trained


@pytest.mark.parametrize("case", list(RUN_CASES))
def test_odd_arguments_and_damaged_runs_are_one_line_exit_2(
        case: str, tmp_path: Path, trained: dict[str, Path]) -> None:
    make, fragments = RUN_CASES[case]
    code, _, err = cli(*make(tmp_path, trained))
    _check(code, err, fragments)


def test_the_trained_runs_work(trained: dict[str, Path]) -> None:
    """The control: the undamaged runs evaluate, sample and plot (so a case fails for its
    damage, not because the fixture is broken)."""
    code, out, err = cli("eval", trained["mlp"], "--json")
    assert code == 0, err
    assert json.loads(out)["split"] == "test"
    code, out, err = cli("sample", trained["gpt"], "--prompt", "the ", "--tokens", "5")
    assert code == 0, err
    assert out.startswith("the ")
    code, out, err = cli("plot", trained["mlp"], "-o", trained["mlp"].parent / "p.png")
    assert code == 0 and (trained["mlp"].parent / "p.png").stat().st_size > 0, err


def test_the_corpus_is_large() -> None:
    assert len(DATA_CASES) + len(RUN_CASES) >= 60
