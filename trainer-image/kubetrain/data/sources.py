"""Read a dataset source into memory: columnar tables, arrays, text, or generated data."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kubetrain.api.data import (
    ArrayData,
    Dataset,
    SyntheticData,
    TabularData,
    TextData,
    TokenData,
)
from kubetrain.api.errors import suggest
from kubetrain.data import checks
from kubetrain.data.shards import ShardSet
from kubetrain.data.uri import local_path
from kubetrain.errors import InvalidJob

_TABULAR_EXT = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl",
                ".json": "jsonl", ".ndjson": "jsonl"}


@dataclass
class Table:
    """Named columns (numpy arrays: float64 for numbers, object for strings)."""

    columns: dict[str, np.ndarray]
    source: str = ""
    """The location as the spec gives it, for messages."""
    files: list[tuple[Path, int, str]] = field(default_factory=list)
    """(file, rows, format) in reading order, to name the file and row of a cell."""

    @property
    def rows(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def where(self, row: int) -> str:
        """Row `row` (0-based over all files) as a user finds it: 'row 7 (line 8)', 1-based, with
        the file's name when the table comes from several files."""
        for f, n, kind in self.files:
            if row < n:
                name = f"{f.name} " if len(self.files) > 1 else ""
                line = {"csv": row + 2, "jsonl": row + 1}.get(kind)  # csv has a header line
                return f"{name}row {row + 1}" + (f" (line {line})" if line else "")
            row -= n
        return f"row {row + 1}"


@dataclass
class Arrays:
    """Inputs and labels as arrays (images are N, C, H, W)."""

    x: np.ndarray
    y: np.ndarray


@dataclass
class Text:
    """A text corpus."""

    text: str
    source: Path | None = None


@dataclass
class TokenStream:
    """Already tokenized sequences (synthetic lm)."""

    tokens: np.ndarray
    vocab_size: int


RawData = Table | Arrays | Text | TokenStream | ShardSet


def load_source(dataset: Dataset, *, base: Path | None = None) -> RawData:
    """The dataset's samples, before splitting and preprocessing."""
    src = dataset.source
    if isinstance(src, SyntheticData):
        return synthetic(src)
    if isinstance(src, TabularData):
        return read_table(src, base=base)
    if isinstance(src, TextData):
        return read_text(src, base=base)
    if isinstance(src, TokenData):
        from kubetrain.data.shards import read_shards

        return read_shards(src.path, src.dtype, src.vocab_size, base)
    return read_arrays(src, base=base)


def synthetic(s: SyntheticData) -> Arrays | TokenStream:
    """Data with a known answer, the same for a given seed everywhere."""
    rng = np.random.default_rng(s.seed)
    if s.task == "lm":
        # An order-1 Markov chain with a few likely successors per token: learnable structure.
        logits = rng.standard_normal((s.vocab_size, s.vocab_size)) * 3.0
        probs = np.exp(logits - logits.max(1, keepdims=True))
        probs /= probs.sum(1, keepdims=True)
        cdf = probs.cumsum(1)
        # Chains advance in parallel (one vectorised draw per position), then are concatenated.
        chains = np.empty((s.samples, s.seq_len), dtype=np.int64)
        chains[:, 0] = rng.integers(0, s.vocab_size, s.samples)
        for t in range(1, s.seq_len):
            u = rng.random((s.samples, 1))
            chains[:, t] = (cdf[chains[:, t - 1]] < u).sum(1).clip(max=s.vocab_size - 1)
        tokens = np.append(chains.reshape(-1), chains[0, 0])
        return TokenStream(tokens.astype(np.uint16 if s.vocab_size < 65536 else np.int64),
                           s.vocab_size)
    x = rng.standard_normal((s.samples, s.features)).astype(np.float32)
    if s.task == "regression":
        w = rng.standard_normal(s.features)
        y = x @ w + s.noise * rng.standard_normal(s.samples)
        return Arrays(x, y.astype(np.float32))
    w = rng.standard_normal((s.features, s.classes))
    logits = x @ w + s.noise * rng.standard_normal((s.samples, s.classes))
    return Arrays(x, logits.argmax(1).astype(np.int64))


def _files(path: Path, suffixes: set[str]) -> list[Path]:
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
    if not files:
        raise InvalidJob(f"{path}: no {'/'.join(sorted(suffixes))} files in this directory")
    return files


def read_table(spec: TabularData, *, base: Path | None = None) -> Table:
    """CSV, Parquet or JSON Lines through pyarrow's columnar readers."""
    import pyarrow as pa

    path = local_path(spec.path, base=base)
    files = _files(path, set(_TABULAR_EXT))
    fmt = spec.format
    tables = []
    read: list[tuple[Path, int, str]] = []
    for f in files:
        kind = fmt if fmt != "auto" else _TABULAR_EXT.get(f.suffix.lower())
        if kind is None:
            raise InvalidJob(f"{f}: cannot tell the format from the extension; set tabular.format")
        try:
            if kind == "csv":
                from pyarrow import csv

                tables.append(csv.read_csv(f))
            elif kind == "parquet":
                from pyarrow import parquet

                tables.append(parquet.read_table(f))
            else:
                from pyarrow import json

                tables.append(json.read_json(f))
        except (pa.ArrowInvalid, OSError) as e:
            raise InvalidJob(f"{f}: cannot read as {kind}: {str(e).splitlines()[0]}") from None
        read.append((f, tables[-1].num_rows, kind))
    try:
        table = (pa.concat_tables(tables, promote_options="default") if len(tables) > 1
                 else tables[0])
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        # A column of numbers in one file and of text in another: read every column as text,
        # so that the checks name the cells that differ (file and row).
        try:
            table = pa.concat_tables(
                [t.cast(pa.schema([(f.name, pa.string()) for f in t.schema])) for t in tables],
                promote_options="default")
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            raise InvalidJob(f"{spec.path}: the files do not share their columns' types:"
                             f" {str(e).splitlines()[0]}") from None
    if table.num_rows == 0:
        raise InvalidJob(f"{spec.path}: no rows (only a header?)")
    wanted = [spec.columns.label, *(spec.columns.features or []), *spec.columns.categorical]
    names = table.column_names
    for col in wanted:
        if col not in names:
            hint = suggest(col, names)
            more = f"; did you mean {hint!r}?" if hint else f" (columns: {', '.join(names[:20])})"
            raise InvalidJob(f"{spec.path}: no column {col!r}{more}")
    keep = [spec.columns.label, *(spec.columns.features or [n for n in names
                                                         if n != spec.columns.label])]
    return Table({name: _to_numpy(table.column(name)) for name in dict.fromkeys(keep)},
                 spec.path, read)


def _to_numpy(column: object) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc

    col = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
        return pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False)  # nulls → NaN
    if pa.types.is_boolean(col.type):
        return np.array([None if v is None else str(v).lower() for v in col.to_pylist()],
                        dtype=object)
    return np.array([None if v is None else str(v) for v in col.to_pylist()], dtype=object)


def read_text(spec: TextData, *, base: Path | None = None) -> Text:
    """One file, or every .txt file of a directory in name order."""
    path = local_path(spec.path, base=base)
    files = _files(path, {".txt"})
    try:
        text = "".join(f.read_text(encoding=spec.encoding) for f in files)
    except (UnicodeDecodeError, LookupError) as e:
        raise InvalidJob(f"{spec.path}: cannot decode as {spec.encoding}: {e}") from None
    if not text:
        what = "the file is empty" if path.is_file() else f"all {len(files)} .txt files are empty"
        raise InvalidJob(f"{spec.path}: {what}; a language model needs text to train on")
    return Text(text, path if path.is_file() else None)


def read_arrays(spec: ArrayData, *, base: Path | None = None) -> Arrays:
    """An .npz with inputs and labels, or an .npy of inputs plus one of labels; checked to hold
    one finite numeric row per sample and one label per sample (data/checks.py)."""
    path = local_path(spec.path, base=base)
    if path.suffix == ".npz":
        x_what = f"{spec.path}: array {spec.inputs_key!r}"
        y_what = f"{spec.path}: array {spec.labels_key!r}"
        x, y = _read_npz(path, spec)
    else:
        if spec.labels_path is None:
            raise InvalidJob(f"{spec.path}: an .npy of inputs needs arrays.labelsPath")
        x_what, y_what = f"{spec.path}", f"{spec.labels_path}"
        x = _read_npy(path, spec.path)
        y = _read_npy(local_path(spec.labels_path, base=base), spec.labels_path)
    checks.check_array(x, x_what, inputs=True)
    checks.check_array(y, y_what, inputs=False)
    if len(x) != len(y):
        raise InvalidJob(f"{spec.path}: {len(x)} inputs but {len(y)} labels")
    if len(x) == 0:
        raise InvalidJob(f"{x_what} has no samples")
    checks.check_finite_samples(x, x_what, spec.inputs_key)
    y = checks.label_vector(y, y_what)
    checks.check_finite_samples(y, y_what, spec.labels_key)
    return Arrays(x, y)


def _read_npz(path: Path, spec: ArrayData) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path) as z:
            if not hasattr(z, "files"):
                raise InvalidJob(f"{spec.path}: an .npy file, not an .npz; name the labels'"
                                 " file in arrays.labelsPath and use the .npy extension")
            for key in (spec.inputs_key, spec.labels_key):
                if key not in z.files:
                    hint = suggest(key, list(z.files))
                    more = f"; did you mean {hint!r}?" if hint else f" (arrays: {z.files})"
                    raise InvalidJob(f"{spec.path}: no array {key!r}{more}")
            return z[spec.inputs_key], z[spec.labels_key]
    except InvalidJob:
        raise
    except Exception as e:  # numpy and zipfile raise many kinds for a bad file
        raise InvalidJob(f"{spec.path}: cannot read arrays: {_why(e)}") from None


def _read_npy(path: Path, location: str) -> np.ndarray:
    try:
        a = np.load(path)
    except Exception as e:  # as above
        raise InvalidJob(f"{location}: cannot read arrays: {_why(e)}") from None
    if not isinstance(a, np.ndarray):
        a.close()
        raise InvalidJob(f"{location}: an .npz archive, not an .npy array; give it the .npz"
                         " extension and name its arrays with inputsKey and labelsKey")
    return a


def _why(e: Exception) -> str:
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    if "pickle" in text:  # numpy's words for anything that is not an .npy/.npz
        return ("not an .npy/.npz file, or one holding Python objects (pickled object arrays are"
                " not loaded); save numeric arrays with numpy.save or numpy.savez")
    return text
