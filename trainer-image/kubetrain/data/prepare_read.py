"""Stream a raw corpus as text chunks: text files, JSON Lines, Parquet (never whole in memory).

Each chunk is about BLOCK bytes of text and comes with the number of input-file bytes it
consumed (for the progress bar). Text files are concatenated as they are; documents of JSON
Lines and Parquet rows are each followed by a blank line.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kubetrain.api.errors import suggest
from kubetrain.errors import InvalidJob

BLOCK = 1 << 20
DOC_END = "\n\n"
_EXT = {".txt": "text", ".text": "text", ".jsonl": "jsonl", ".ndjson": "jsonl",
        ".json": "jsonl", ".parquet": "parquet", ".pq": "parquet"}


@dataclass(frozen=True)
class CorpusFile:
    path: Path
    format: str
    size: int


def corpus_files(path: Path, fmt: str, shown: str) -> list[CorpusFile]:
    """The corpus's files in name order, each with its format."""
    if path.is_file():
        paths = [path]
    else:
        paths = sorted(p for p in path.rglob("*") if p.is_file() and (
            p.suffix.lower() in _EXT if fmt == "auto" else _EXT.get(p.suffix.lower()) == fmt))
        if not paths:
            raise InvalidJob(f"{shown}: no .txt, .jsonl or .parquet files in this directory")
    files = []
    for p in paths:
        kind = fmt if fmt != "auto" else _EXT.get(p.suffix.lower())
        if kind is None:
            raise InvalidJob(f"{p}: cannot tell the format from the extension; set"
                             " tokens.prepare.format")
        files.append(CorpusFile(p, kind, p.stat().st_size))
    return files


def read_chunks(files: list[CorpusFile], column: str) -> Iterator[tuple[str, int]]:
    """(text, input bytes consumed) of every chunk of every file, in order."""
    for f in files:
        if f.format == "text":
            yield from _text_chunks(f.path)
        elif f.format == "jsonl":
            yield from _jsonl_chunks(f.path, column)
        else:
            yield from _parquet_chunks(f.path, column)


def _lines_blocks(path: Path) -> Iterator[bytes]:
    """Blocks of about BLOCK bytes that end after a new line (the last one: at the file's end)."""
    rest = b""
    with path.open("rb") as f:
        while True:
            block = f.read(BLOCK)
            if not block:
                break
            data = rest + block
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                rest = data
                continue
            yield data[:cut]
            rest = data[cut:]
    if rest:
        yield rest


def _text_chunks(path: Path) -> Iterator[tuple[str, int]]:
    consumed = 0
    for block in _lines_blocks(path):
        try:
            text = block.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InvalidJob(f"{path}: not UTF-8 text (byte {consumed + e.start})") from None
        consumed += len(block)
        yield text, len(block)


def _column_texts(table: object, column: str, where: str) -> list[str]:
    names = table.column_names  # type: ignore[attr-defined]
    if column not in names:
        hint = suggest(column, names)
        more = f"; did you mean {hint!r}?" if hint else f" (columns: {', '.join(names[:20])})"
        raise InvalidJob(f"{where}: no column {column!r}{more}; set tokens.prepare.textColumn")
    values = table.column(column).to_pylist()  # type: ignore[attr-defined]
    return [v for v in values if isinstance(v, str) and v]


def _jsonl_chunks(path: Path, column: str) -> Iterator[tuple[str, int]]:
    import pyarrow as pa
    from pyarrow import json as pj

    line = 1
    for block in _lines_blocks(path):
        try:
            table = pj.read_json(pa.BufferReader(block))
        except pa.ArrowInvalid as e:
            raise InvalidJob(f"{path}: cannot read JSON Lines after line {line}:"
                             f" {str(e).splitlines()[0]}") from None
        line += block.count(b"\n")
        docs = _column_texts(table, column, str(path))
        yield "".join(d + DOC_END for d in docs), len(block)


def _parquet_chunks(path: Path, column: str) -> Iterator[tuple[str, int]]:
    import pyarrow as pa
    from pyarrow import parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise InvalidJob(f"{path}: cannot read as Parquet: {str(e).splitlines()[0]}") from None
    rows = max(pf.metadata.num_rows, 1)
    size = path.stat().st_size
    _column_texts(pa.table({n: [] for n in pf.schema_arrow.names}), column, str(path))
    done = reported = 0
    parts: list[str] = []
    held = 0
    for batch in pf.iter_batches(batch_size=1024, columns=[column]):
        docs = _column_texts(pa.Table.from_batches([batch]), column, str(path))
        parts.extend(d + DOC_END for d in docs)
        held += sum(map(len, docs))
        done += batch.num_rows
        if held >= BLOCK:
            at = done * size // rows
            yield "".join(parts), at - reported
            parts, held, reported = [], 0, at
    if parts or reported < size:
        yield "".join(parts), size - reported
