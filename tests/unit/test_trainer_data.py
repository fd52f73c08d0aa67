"""Data: URI dispatch, sources, splits, tokenization and the global batch order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from trainer_jobs import make_job

from kubetrain.api.data import SplitFractions
from kubetrain.data.build import build_data
from kubetrain.data.order import BatchOrder
from kubetrain.data.splits import split_indices
from kubetrain.data.text import cached_tokens
from kubetrain.data.uri import local_path
from kubetrain.errors import InvalidJob
from kubetrain.preprocessing.tokenizer import Tokenizer


def test_a_scheme_without_a_reader_says_so() -> None:
    # s3://, gs://, http(s):// are read through the object store: tests/trainer/test_object_store*
    with pytest.raises(InvalidJob, match=r"Hugging Face hub.*is not supported"):
        local_path("hf://datasets/x")


def test_file_uri_and_relative_paths_resolve(tmp_path: Path) -> None:
    f = tmp_path / "a b.csv"
    f.write_text("x\n1\n")
    assert local_path(f"file://{tmp_path}/a%20b.csv") == f
    assert local_path("a b.csv", base=tmp_path) == f
    with pytest.raises(InvalidJob, match="no such file"):
        local_path(str(tmp_path / "missing.csv"))
    with pytest.raises(InvalidJob, match="unsupported URI scheme ftp"):
        local_path("ftp://host/x")


def _csv(tmp_path: Path, text: str) -> str:
    p = tmp_path / "d.csv"
    p.write_text(text)
    return str(p)


def _tabular(path: str, **columns: object) -> dict[str, object]:
    return {"dataset": {"type": "tabular", "tabular": {"path": path, "columns": columns},
                        "split": {"val": 0.25, "seed": 3}}}


def test_unknown_column_suggests_the_closest(tmp_path: Path) -> None:
    path = _csv(tmp_path, "price,size\n1,2\n3,4\n")
    with pytest.raises(InvalidJob, match="no column 'prise'; did you mean 'price'"):
        build_data(make_job(_tabular(path, label="prise")).spec)


def test_nan_labels_are_an_error(tmp_path: Path) -> None:
    rows = "".join(f"{i},{'' if i == 3 else i * 2}\n" for i in range(20))
    path = _csv(tmp_path, "x,y\n" + rows)
    job = make_job({**_tabular(path, label="y"), "training": {"loss": "mse"}})
    with pytest.raises(InvalidJob, match="label column 'y' has 1 missing"):
        build_data(job.spec)


def test_labels_unseen_in_training_are_an_error(tmp_path: Path) -> None:
    rows = "".join(f"{i},{'a' if i % 2 else 'b'}\n" for i in range(40)) + "99,rare\n"
    path = _csv(tmp_path, "x,label\n" + rows)
    spec = make_job(_tabular(path, label="label")).spec
    spec.dataset.split = SplitFractions(val=0.5, seed=0)
    with pytest.raises(InvalidJob, match="never seen in the training split \\(rare\\)"):
        for seed in range(20):  # some seed puts the one 'rare' row outside training
            spec.dataset.split = SplitFractions(val=0.5, seed=seed)
            build_data(spec)


def test_text_shorter_than_the_context_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "t.txt").write_text("to be or not to be")
    job = make_job({"dataset": {"type": "text", "text": {"path": str(tmp_path / "t.txt")},
                                "synthetic": None},
                    "model": {"type": "gpt", "mlp": None, "gpt": {"context": 64}}})
    with pytest.raises(InvalidJob, match="fewer than two windows of the context"):
        build_data(job.spec)


def test_columnar_formats_read_the_same(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"a": [1.0, 2.0, 3.0, 4.0] * 5, "c": ["x", "y", "x", "y"] * 5,
                      "label": ["p", "q", "p", "q"] * 5})
    pq.write_table(table, tmp_path / "d.parquet")
    with (tmp_path / "d.jsonl").open("w") as f:
        for row in table.to_pylist():
            f.write(__import__("json").dumps(row) + "\n")
    from pyarrow import csv
    csv.write_csv(table, tmp_path / "d.csv")
    xs = []
    for ext in ("parquet", "jsonl", "csv"):
        data = build_data(make_job(_tabular(str(tmp_path / f"d.{ext}"), label="label")).spec)
        xs.append(data.train.x.numpy())
        assert data.shapes.num_outputs == 2 and data.shapes.input_shape == (3,)  # a + onehot c
    assert np.array_equal(xs[0], xs[1]) and np.array_equal(xs[0], xs[2])


def test_splits_are_reproducible_disjoint_and_stratified() -> None:
    labels = np.array([0] * 90 + [1] * 10)
    s = SplitFractions(val=0.2, test=0.1, seed=5, stratify=True)
    a, b = split_indices(100, s, labels), split_indices(100, s, labels)
    assert all(np.array_equal(x, y) for x, y in zip(a.__dict__.values(), b.__dict__.values(),
                                                      strict=True))
    every = np.concatenate([a.train, a.val, a.test])
    assert sorted(every.tolist()) == list(range(100))
    assert (labels[a.val] == 1).sum() == 2 and (labels[a.test] == 1).sum() == 1
    other = split_indices(100, SplitFractions(val=0.2, test=0.1, seed=6), labels)
    assert not np.array_equal(a.val, other.val)


def test_every_sample_once_per_epoch_across_ranks() -> None:
    order = BatchOrder(n=64, global_batch=16, seed=1)
    for world, micro in ((1, 16), (2, 4), (4, 2)):
        seen = [i for step in range(4) for rank in range(world)
                for mb in order.rank_micro_batches(step, rank, world, micro) for i in mb]
        assert sorted(seen) == list(range(64)), world
    # A pure function of (seed, epoch, position): the same batch however it is asked for.
    assert np.array_equal(order.global_indices(5), BatchOrder(64, 16, 1).global_indices(5))
    assert not np.array_equal(order.global_indices(0), order.global_indices(4))  # new epoch


def test_last_partial_batch_is_filled_without_drop_last() -> None:
    order = BatchOrder(n=20, global_batch=8, seed=0, drop_last=False)
    assert order.steps_per_epoch == 3
    assert len(order.global_indices(2)) == 8


def test_char_tokenizer_round_trips_and_caches(tmp_path: Path) -> None:
    tok = Tokenizer.fit("char", "hello world", "hello world!")
    assert tok.unk and tok.vocab_size == len(set("hello world")) + 1
    ids = tok.encode("hello world!")
    assert tok.decode(ids.tolist()) == "hello world?"
    first = cached_tokens("hello world!", tok, tmp_path)
    again = cached_tokens("hello world!", tok, tmp_path)
    assert isinstance(again, np.memmap) and np.array_equal(first, again)
    assert len(list(tmp_path.glob("tokens-*.u16"))) == 1


def test_text_windows_are_next_token_pairs(tmp_path: Path) -> None:
    (tmp_path / "t.txt").write_text("abcdefghij" * 50)
    job = make_job({"dataset": {"type": "text", "text": {"path": str(tmp_path / "t.txt")},
                                "synthetic": None},
                    "model": {"type": "gpt", "mlp": None, "gpt": {"context": 8}}})
    data = build_data(job.spec, cache_dir=tmp_path / "cache")
    x, y = data.train.batch(np.array([0, 3]))
    assert x.shape == (2, 8) and np.array_equal(x[:, 1:].numpy(), y[:, :-1].numpy())
    assert data.shapes.num_outputs == 10 and data.shapes.task == "lm"


def test_synthetic_data_is_seeded() -> None:
    spec = make_job().spec
    a, b = build_data(spec), build_data(spec)
    assert np.array_equal(a.train.x.numpy(), b.train.x.numpy())
