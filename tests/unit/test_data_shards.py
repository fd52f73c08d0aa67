"""Token shards (memory-mapped, windows across shard boundaries), `prepare` (text, JSON Lines,
Parquet; any number of workers gives the same shards; atomic) and background prefetch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from pyarrow import parquet as pq

from kubetrain.api.data import SplitFractions, TokenData
from kubetrain.api.preprocessing import TextPreprocessing
from kubetrain.data.order import BatchOrder, locate
from kubetrain.data.prefetch import Prefetched
from kubetrain.data.prepare import MARKER, ShardWriter, prepare
from kubetrain.data.samples import TokenWindows
from kubetrain.data.shards import INDEX, read_shards
from kubetrain.errors import InvalidJob

TEXT = "".join(f"line {i}: to be, or not to be, that is the question.\n" for i in range(3000))


def _write_set(out: Path, arrays: list[np.ndarray], vocab: int = 1000) -> None:
    out.mkdir(parents=True, exist_ok=True)
    w = ShardWriter(out, np.dtype(np.uint16), 10**9)
    for a in arrays:  # one shard per array
        w.write(a)
        w._close()
    w.finish({"vocabSize": vocab, "tokenizer": None})


def test_a_stream_gathers_across_shard_boundaries(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    parts = [rng.integers(0, 1000, n).astype(np.uint16) for n in (50, 7, 1, 120)]
    _write_set(tmp_path, parts)
    shards = read_shards(str(tmp_path), "uint16", None, None)
    whole = np.concatenate(parts)
    stream = shards.stream()
    assert len(stream) == len(whole) == shards.tokens
    idx = rng.integers(0, len(whole) - 20, (30, 1)) + np.arange(20)
    assert np.array_equal(stream[idx], whole[idx])
    view = stream[40:170]
    assert len(view) == 130 and np.array_equal(view[np.arange(130)], whole[40:170])
    windows = TokenWindows(view, 16, packing=True, seed=3)  # type: ignore[arg-type]
    plain = TokenWindows(whole[40:170], 16, packing=True, seed=3)
    for epoch in range(3):
        x, y = windows.batch(np.arange(len(plain)), epoch)
        x2, y2 = plain.batch(np.arange(len(plain)), epoch)
        assert x.tolist() == x2.tolist() and y.tolist() == y2.tolist()
    with pytest.raises(IndexError):
        view[np.array([130])]


def test_flat_files_without_an_index(tmp_path: Path) -> None:
    a = np.arange(100, dtype=np.uint32)
    a.tofile(tmp_path / "a.bin")
    (a + 100).tofile(tmp_path / "b.bin")
    s = read_shards(str(tmp_path / "*.bin"), "uint32", 200, None)
    assert s.tokens == 200 and s.stream()[np.arange(95, 105)].tolist() == list(range(95, 105))
    with pytest.raises(InvalidJob, match=r"need dataset.tokens.vocabSize"):
        read_shards(str(tmp_path), "uint32", None, None)
    with pytest.raises(InvalidJob, match=r"token id 199 is not below"):
        read_shards(str(tmp_path), "uint32", 150, None)


def _index(path: Path) -> dict:
    return json.loads((path / INDEX).read_text())


@pytest.mark.parametrize("damage, message", [
    ("truncate", "not a whole number of uint16 tokens"),
    ("shorter", "holds 49 tokens but the index says 50"),
    ("missing", "shard shard-000001.bin is missing"),
    ("total", "the index says 999 tokens"),
    ("max", "token id 5000 is not below the vocabulary size 1000"),
    ("garbage", "not a token-shard index"),
    ("dtype", "dtype 'int8'"),
])
def test_an_index_that_does_not_match_its_shards(tmp_path: Path, damage: str,
                                                 message: str) -> None:
    _write_set(tmp_path, [np.arange(50, dtype=np.uint16), np.arange(30, dtype=np.uint16)])
    idx = _index(tmp_path)
    first = tmp_path / "shard-000000.bin"
    if damage == "truncate":
        first.write_bytes(first.read_bytes()[:-1])
    elif damage == "shorter":
        first.write_bytes(first.read_bytes()[:-2])
    elif damage == "missing":
        (tmp_path / "shard-000001.bin").unlink()
    elif damage == "garbage":
        (tmp_path / INDEX).write_text("{")
    else:
        idx.update({"total": {"tokens": 999}, "max": {"maxTokenId": 5000},
                    "dtype": {"dtype": "int8"}}[damage])
        (tmp_path / INDEX).write_text(json.dumps(idx))
    with pytest.raises(InvalidJob, match=message.replace("(", r"\(")) as e:
        read_shards(str(tmp_path), "uint16", None, None)
    assert "\n" not in str(e.value)


def test_a_token_beyond_the_vocabulary_is_caught_when_read(tmp_path: Path) -> None:
    _write_set(tmp_path, [np.array([1, 2, 3, 4000, 5, 6], dtype=np.uint16)], vocab=1000)
    idx = _index(tmp_path)
    del idx["maxTokenId"]  # an index written by another tool need not say
    (tmp_path / INDEX).write_text(json.dumps(idx))
    stream = read_shards(str(tmp_path), "uint16", None, None).stream()
    assert stream[np.arange(3)].tolist() == [1, 2, 3]
    with pytest.raises(InvalidJob, match=r"shard-000000.bin: token id 4000 at token 3"):
        stream[np.arange(6)]


def _prep(tmp: Path, corpus: str, tokenizer: str = "byte", *, workers: int = 2,
          out: str = "shards", **source: object) -> tuple[Path, object]:
    tokens = TokenData.model_validate({"path": out, "prepare": {"path": corpus, **source}})
    text = TextPreprocessing.model_validate(
        {"tokenizer": tokenizer, **({"vocabSize": 400} if tokenizer == "bpe" else {})})
    done = prepare(tokens, text, SplitFractions(), tmp, workers=workers)
    return tmp / out, done


def test_prepare_text_gives_the_bytes_in_shards_with_any_worker_count(tmp_path: Path) -> None:
    (tmp_path / "c.txt").write_text(TEXT)
    out, _ = _prep(tmp_path, "c.txt", workers=1, shardTokens=40_000)
    one = read_shards(str(out), "uint16", None, None)
    assert one.tokens == len(TEXT.encode()) and len(one.files) == -(-one.tokens // 40_000)
    got = one.stream()[np.arange(one.tokens)].astype(np.uint8).tobytes()
    assert got.decode() == TEXT
    out2, _ = _prep(tmp_path, "c.txt", workers=2, out="two", shardTokens=40_000)
    for a, b in zip(one.files, read_shards(str(out2), "uint16", None, None).files, strict=True):
        assert a.read_bytes() == b.read_bytes()
    assert not (out / MARKER).exists() and not list(out.glob("*.tmp"))


def test_prepare_bpe_jsonl_and_parquet_documents(tmp_path: Path) -> None:
    docs = [f"document {i} says hello to the world" for i in range(500)]
    with (tmp_path / "d.jsonl").open("w") as f:
        for i, d in enumerate(docs):
            f.write(json.dumps({"id": i, "body": d}) + "\n")
    pq.write_table(pa.table({"body": docs, "n": list(range(500))}), tmp_path / "d.parquet")
    for name in ("d.jsonl", "d.parquet"):
        out, _ = _prep(tmp_path, name, "bpe", out=f"out-{name}", textColumn="body")
        s = read_shards(str(out), "uint16", None, None)
        assert s.tokenizer is not None and s.tokenizer.kind == "bpe"
        text = s.tokenizer.decode(s.stream()[np.arange(s.tokens)].tolist())
        assert text == "".join(d + "\n\n" for d in docs)
        assert (out / "tokenizer.json").is_file()
    with pytest.raises(InvalidJob, match=r"no column 'bdy'; did you mean 'body'"):
        _prep(tmp_path, "d.jsonl", out="x", textColumn="bdy")


@pytest.mark.parametrize("content, name", [("", "e.txt"), ("", "e.jsonl"),
                                           ('{"text": ""}\n{"text": null}\n', "n.jsonl")])
def test_an_empty_corpus_is_refused(tmp_path: Path, content: str, name: str) -> None:
    (tmp_path / name).write_text(content)
    with pytest.raises(InvalidJob, match=r"empty|no text"):
        _prep(tmp_path, name)
    assert not (tmp_path / "shards" / INDEX).exists()


def test_an_interrupted_prepare_leaves_no_set_that_reads_as_whole(tmp_path: Path) -> None:
    (tmp_path / "c.txt").write_text(TEXT * 8)  # two chunks of the reader
    out, _ = _prep(tmp_path, "c.txt", shardTokens=20_000)
    tokens = TokenData.model_validate({"path": "shards", "prepare": {
        "path": "c.txt", "shardTokens": 20_000}})

    def interrupt(phase: str, done: int, total: int) -> None:
        raise KeyboardInterrupt  # after the first chunk is written

    with pytest.raises(KeyboardInterrupt):
        prepare(tokens, TextPreprocessing(tokenizer="byte"), SplitFractions(), tmp_path,
                workers=1, progress=interrupt)
    assert not (out / INDEX).exists() and (out / MARKER).exists()
    assert list(out.glob("shard-*.bin"))  # whole shards, but no index names them
    with pytest.raises(InvalidJob, match=r"did not finish"):
        read_shards(str(out), "uint16", 256, None)
    _prep(tmp_path, "c.txt", shardTokens=20_000)  # a new prepare starts over cleanly
    assert read_shards(str(out), "uint16", None, None).tokens == len(TEXT) * 8


def test_prefetch_gives_the_same_batches_and_gathers_ahead() -> None:
    tokens = np.arange(5000, dtype=np.uint16) % 251
    windows = TokenWindows(tokens, 16, packing=True, seed=1)
    order = BatchOrder(len(windows), 8, seed=4)
    pre = Prefetched(windows, order, rank=1, world=2, micro=2, workers=2, per_worker=2)
    start = 5  # a resumed run: the first request is mid-way
    for step in range(start, start + 3 * order.steps_per_epoch):
        epoch = order.epoch_of(step)
        for k, idx in enumerate(order.rank_micro_batches(step, 1, 2, 2)):
            assert locate(order, idx, epoch, 1, 2, 2) == (step, k)
            x, y = pre.batch(idx, epoch)
            x2, y2 = windows.batch(idx, epoch)
            assert x.tolist() == x2.tolist() and y.tolist() == y2.tolist()
    assert pre.misses == 1 and pre.hits > 100
    assert pre.seq_len == 16 and len(pre) == len(windows)
    pre.close()
