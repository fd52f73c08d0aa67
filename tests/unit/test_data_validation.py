"""The pure data validators (data/checks.py), path resolution, and the ways out they advise."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
from trainer_jobs import make_job

from kubetrain.cli.evaluate import check_metrics
from kubetrain.cli.plot import check_output, read_metrics, series
from kubetrain.cli.sample import check_arguments
from kubetrain.data import checks
from kubetrain.data.build import build_data
from kubetrain.data.sources import Table
from kubetrain.data.uri import local_path
from kubetrain.errors import InvalidJob


def _where(i: int) -> str:
    return f"row {i + 1}"


def _obj(*values: object) -> np.ndarray:
    return np.array(values, dtype=object)


# -- tabular cells ---------------------------------------------------------------------------------
def test_text_cells_split_numbers_from_text_and_skip_missing() -> None:
    numbers, texts = checks.text_cells(_obj("1", "2.5", None, "abc", "-inf", "1e3", ""))
    assert numbers.tolist() == [0, 1, 4, 5]
    assert texts.tolist() == [3, 6]


def test_a_stray_text_cell_in_numbers_is_named_with_its_row() -> None:
    values = _obj(*[str(i) for i in range(10)], "abc", "11")
    with pytest.raises(InvalidJob, match=r"d\.csv: column 'x' mixes numbers and text: row 11 is"
                                         r" 'abc' \(1 of 12 cells is text\).*columns\.categorical"):
        checks.check_text_column("x", values, _where, label=False, loss=None, source="d.csv")


def test_a_stray_number_among_text_is_the_odd_one_named() -> None:
    values = _obj("red", "green", "blue", "7", "red")
    with pytest.raises(InvalidJob, match=r"row 4 is '7' \(1 of 5 cells is numbers\)"):
        checks.check_text_column("c", values, _where, label=False, loss=None, source="d.csv")


def test_many_bad_cells_show_three_and_count_the_rest() -> None:
    values = _obj(*["?" if i % 2 else str(i) for i in range(20)])
    with pytest.raises(InvalidJob, match=r"row 2 is '\?', row 4 is '\?', row 6 is '\?' and 7 more"
                                         r" \(10 of 20 cells are text\)"):
        checks.check_text_column("x", values, _where, label=False, loss=None, source="d.csv")


def test_all_text_or_all_numbers_pass() -> None:
    for values in (_obj("a", "b", None), _obj("1", "2", None), _obj(None, None)):
        checks.check_text_column("x", values, _where, label=False, loss=None, source="d.csv")


def test_labels_follow_the_loss() -> None:
    mixed = _obj("1", "2", "x")
    with pytest.raises(InvalidJob, match=r"label column 'y' mixes.*training\.loss: cross_entropy"):
        checks.check_text_column("y", mixed, _where, label=True, loss=None, source="d.csv")
    checks.check_text_column("y", mixed, _where, label=True, loss="cross_entropy", source="d.csv")
    with pytest.raises(InvalidJob, match=r"must hold numbers for training\.loss mse, but row 1 is"
                                         r" 'a'"):
        checks.check_text_column("y", _obj("a", "b"), _where, label=True, loss="mse",
                                 source="d.csv")


def test_infinite_cells_are_errors_and_nan_is_not() -> None:
    checks.check_finite_column("x", np.array([1.0, np.nan]), _where, label=False, source="d.csv")
    with pytest.raises(InvalidJob, match=r"column 'x' has infinite values: row 2 \(-inf\), row 3"
                                         r" \(inf\) \(2 cells\).*cleaning\.missing"):
        checks.check_finite_column("x", np.array([1.0, -np.inf, np.inf]), _where, label=False,
                                   source="d.csv")


def test_missing_labels_are_named_by_row() -> None:
    checks.check_missing_labels("y", np.array([1.0, 2.0]), _where, source="d.csv")
    with pytest.raises(InvalidJob, match=r"label column 'y' has 2 missing \(NaN/empty\) values:"
                                         r" row 2, row 3; drop or fill"):
        checks.check_missing_labels("y", np.array([1.0, np.nan, np.nan]), _where, source="d.csv")
    with pytest.raises(InvalidJob, match="1 missing"):
        checks.check_missing_labels("y", _obj("a", None), _where, source="d.csv")


def test_table_rows_are_numbered_as_in_each_file() -> None:
    t = Table({}, "data/", [(Path("a.csv"), 3, "csv"), (Path("b.jsonl"), 2, "jsonl")])
    assert [t.where(i) for i in (0, 2, 3, 4)] == [
        "a.csv row 1 (line 2)", "a.csv row 3 (line 4)", "b.jsonl row 1 (line 1)",
        "b.jsonl row 2 (line 2)"]
    one = Table({}, "d.parquet", [(Path("d.parquet"), 5, "parquet")])
    assert one.where(4) == "row 5"


# -- arrays ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("a,inputs,message", [
    (np.array(1.5), True, r"is 0-d \(a single value, 1.5\)"),
    (np.array(["a", "b"]), True, "holds text.*inputs must be real numbers"),
    (np.array([1 + 2j]), True, "holds complex numbers"),
    (np.array(["2020-01-01"], dtype="datetime64[D]"), False, "holds dates"),
    (np.array([object()]), False, "holds Python objects"),
])
def test_arrays_of_the_wrong_kind(a: np.ndarray, inputs: bool, message: str) -> None:
    with pytest.raises(InvalidJob, match=message):
        checks.check_array(a, "d.npz: array 'x'", inputs=inputs)


def test_arrays_of_numbers_and_text_labels_pass() -> None:
    checks.check_array(np.zeros((2, 3), dtype=np.uint8), "x", inputs=True)
    checks.check_array(np.array([True, False]), "x", inputs=True)
    checks.check_array(np.array(["cat", "dog"]), "y", inputs=False)


def test_non_finite_samples_are_named_by_index() -> None:
    x = np.zeros((6, 2, 2), dtype=np.float32)
    x[1, 0, 1] = np.nan
    x[4, 1, 0] = np.inf
    with pytest.raises(InvalidJob, match=r"in 2 samples \(x\[1\], x\[4\]\); arrays are not"
                                         " cleaned"):
        checks.check_finite_samples(x, "d.npz: array 'x'", "x")
    checks.check_finite_samples(np.arange(4), "ints", "x")  # integers are always finite


def test_label_shapes() -> None:
    assert checks.label_vector(np.zeros((5, 1)), "y").shape == (5,)
    assert checks.label_vector(np.zeros(5), "y").shape == (5,)
    with pytest.raises(InvalidJob, match=r"has shape \(5, 3\); .* shape \(5,\) \(for one-hot"
                                         r" labels save y.argmax\(1\)\)"):
        checks.label_vector(np.eye(3)[[0, 1, 2, 0, 1]], "y")
    with pytest.raises(InvalidJob, match=r"has shape \(5, 2, 2\)"):
        checks.label_vector(np.zeros((5, 2, 2)), "y")


def test_regression_labels_and_classes() -> None:
    checks.check_regression_labels(np.array(["1.5", "2"]), "labels", "y")  # text of numbers
    with pytest.raises(InvalidJob, match=r"y\[1\] is 'big'"):
        checks.check_regression_labels(np.array(["1.5", "big"]), "labels", "y")
    checks.check_classes(["a", "b"], "labels")
    with pytest.raises(InvalidJob, match=r"label column 'y' has one class \('a'\)"):
        checks.check_classes(["a"], "label column 'y'")


# -- through build_data: the ways out the messages advise work ------------------------------------
def _tabular(tmp_path: Path, text: str, **columns: object) -> dict[str, object]:
    (tmp_path / "d.csv").write_text(text)
    return {"dataset": {"type": "tabular",
                        "tabular": {"path": str(tmp_path / "d.csv"),
                                    "columns": {"label": "label", **columns}}}}


ROWS = "x,label\n" + "".join(f"{'abc' if i == 6 else i},{i % 2}\n" for i in range(40))


def test_declaring_a_mixed_column_categorical_trains(tmp_path: Path) -> None:
    with pytest.raises(InvalidJob, match="row 7"):
        build_data(make_job(_tabular(tmp_path, ROWS)).spec)
    data = build_data(make_job(_tabular(tmp_path, ROWS, categorical=["x"])).spec)
    assert data.shapes.input_shape == (len(data.state.features.categorical["x"]),)


def test_nan_cells_are_left_to_cleaning(tmp_path: Path) -> None:
    rows = "x,label\n" + "".join(f"{'nan' if i == 3 else ('' if i == 5 else i)},{i % 2}\n"
                                 for i in range(40))
    spec = _tabular(tmp_path, rows)
    assert len(build_data(make_job(spec).spec).train) < 40 * 0.9  # dropped (strategy drop)
    spec["preprocessing"] = {"cleaning": {"missing": {"strategy": "mean"}}}
    data = build_data(make_job(spec).spec)
    assert bool(data.train.x.isfinite().all())


def test_labels_of_shape_n_by_1_train(tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(size=(40, 3))
    np.savez(tmp_path / "d.npz", x=x, y=(np.arange(40) % 2)[:, None])
    data = build_data(make_job({"dataset": {"type": "arrays",
                                            "arrays": {"path": str(tmp_path / "d.npz")}}}).spec)
    assert data.train.y.ndim == 1 and data.shapes.num_outputs == 2


# -- paths -----------------------------------------------------------------------------------------
def test_relative_paths_resolve_next_to_the_job_file_first(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    job_dir, cwd = tmp_path / "jobs", tmp_path / "cwd"
    for d in (job_dir / "data", cwd / "data"):
        d.mkdir(parents=True)
        (d / "d.csv").write_text("x\n1\n")
    monkeypatch.chdir(cwd)
    assert local_path("data/d.csv", base=job_dir) == job_dir / "data" / "d.csv"
    (job_dir / "data" / "d.csv").unlink()
    assert local_path("data/d.csv", base=job_dir) == cwd / "data" / "d.csv"  # the fallback
    assert local_path("../cwd/data/d.csv", base=job_dir) == cwd / "data" / "d.csv"


def test_a_missing_path_names_every_place_looked(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InvalidJob) as e:
        local_path("data/x.csv", base=tmp_path / "jobs")
    assert str(e.value) == (f"data/x.csv: no such file or directory (looked for"
                            f" {tmp_path}/jobs/data/x.csv or {tmp_path}/data/x.csv)")
    with pytest.raises(InvalidJob) as e:
        local_path(str(tmp_path / "x.csv"))
    assert str(e.value) == f"{tmp_path}/x.csv: no such file or directory"


# -- CLI argument checks ---------------------------------------------------------------------------
def _sample_args(**over: object) -> argparse.Namespace:
    return argparse.Namespace(**{"tokens": 10, "temperature": 0.8, "top_k": None, **over})


@pytest.mark.parametrize("over,message", [
    ({"tokens": 0}, "--tokens 0"), ({"temperature": 0.0}, "--temperature 0.0"),
    ({"temperature": float("inf")}, "--temperature inf"), ({"top_k": -1}, "--top-k -1")])
def test_sample_refuses_odd_numbers(over: dict[str, object], message: str) -> None:
    check_arguments(_sample_args())
    with pytest.raises(InvalidJob, match=message):
        check_arguments(_sample_args(**over))


def test_eval_metrics_are_known_and_fit_the_task() -> None:
    check_metrics(["accuracy", "f1"], "classification")
    with pytest.raises(InvalidJob, match="unknown metric 'rsme'; did you mean 'rmse'"):
        check_metrics(["rsme"], "regression")
    with pytest.raises(InvalidJob, match="accuracy does not apply to a lm run"):
        check_metrics(["accuracy"], "lm")


def test_plot_skips_records_it_cannot_draw(tmp_path: Path) -> None:
    lines = ['{"step": 1, "loss": 2.0}', "5", '{"step": "x", "loss": 1}', '{"loss": 1}',
             '{"step": NaN, "loss": 1}', '{"step": true, "loss": 1}',
             '{"step": 2, "loss": "nan?"}', '{"step": 3, "loss": 1.5}', '{"step": 4, "lo']
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines))
    rows = read_metrics(tmp_path)
    assert series(rows, "loss") == ([1, 3], [2.0, 1.5])
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert json.loads(lines[0]) == rows[0]


def test_plot_output_format_and_directory(tmp_path: Path) -> None:
    formats = {"png": "Portable Network Graphics", "svg": "Scalable Vector Graphics"}
    check_output(tmp_path / "a.png", formats)
    with pytest.raises(InvalidJob, match=r"cannot write \.bmp images \(use one of png, svg\)"):
        check_output(tmp_path / "a.bmp", formats)
    with pytest.raises(InvalidJob, match="no directory"):
        check_output(tmp_path / "missing" / "a.png", formats)
    with pytest.raises(InvalidJob, match="a directory; name the image file"):
        check_output(tmp_path, formats)
