"""Tabular files (CSV with a header, Parquet, JSON Lines) read as blocks of Arrow columns.

Blocks are streamed, so a file of any size is read in bounded memory. CSV columns come as
text (a type is decided by the reader of the block: monitor/columns.py turns text into
numbers in C++ and counts what does not parse); Parquet columns keep their own types.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from sluice.errors import ValidationError
from sluice.monitor.columns import NULL_TEXT

BLOCK_BYTES = 8 << 20
BLOCK_ROWS = 65_536
JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")
Block = dict[str, pa.Array | pa.ChunkedArray]


def columns_of(path: Path) -> list[str]:
    """The file's column names, in order."""
    _require(path)
    if path.suffix == ".parquet":
        return list(pq.ParquetFile(path).schema_arrow.names)
    if path.suffix in JSON_SUFFIXES:
        for block in _json_blocks(path, None):
            return list(block)
        return []
    with path.open(newline="") as f:
        return next(csv.reader(f), [])


def blocks(path: Path, names: list[str]) -> Iterator[Block]:
    """The file's rows, a block at a time, as one array per named column."""
    _require(path)
    if path.suffix == ".parquet":
        yield from _parquet_blocks(path, names)
    elif path.suffix in JSON_SUFFIXES:
        yield from _json_blocks(path, names)
    else:
        yield from _csv_blocks(path, names)


def _require(path: Path) -> None:
    if not path.is_file():
        raise ValidationError(f"data file {path} does not exist", field="data")


def _csv_blocks(path: Path, names: list[str]) -> Iterator[Block]:
    header = columns_of(path)
    try:
        reader = pcsv.open_csv(
            path,
            read_options=pcsv.ReadOptions(block_size=BLOCK_BYTES),
            convert_options=pcsv.ConvertOptions(
                column_types={name: pa.string() for name in header},
                include_columns=names,
                null_values=NULL_TEXT,
                strings_can_be_null=True,
            ),
        )
        for batch in reader:
            yield {name: batch.column(name) for name in names}
    except pa.ArrowInvalid as e:
        raise ValidationError(f"{path.name}: {e}", field="data") from None


def _parquet_blocks(path: Path, names: list[str]) -> Iterator[Block]:
    try:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=BLOCK_ROWS, columns=names):
            yield {name: batch.column(name) for name in names}
    except (pa.ArrowInvalid, OSError) as e:
        raise ValidationError(f"{path.name}: {e}", field="data") from None


def _json_blocks(path: Path, names: list[str] | None) -> Iterator[Block]:
    """JSON Lines of flat objects; columns follow the first record's keys when not named.
    Values are kept as text, as in CSV, so a column's type is decided the same way."""
    rows: list[dict[str, object]] = []
    with path.open("rb") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = msgspec.json.decode(line)
            except msgspec.DecodeError:
                raise ValidationError(
                    f"{path.name} line {number} is not JSON", field="data"
                ) from None
            if not isinstance(record, dict):
                raise ValidationError(
                    f"{path.name} line {number} is not a JSON object", field="data"
                )
            if names is None:
                names = list(record)
            rows.append(record)
            if len(rows) >= BLOCK_ROWS:
                yield _json_block(rows, names)
                rows = []
    if rows and names is not None:
        yield _json_block(rows, names)


def _json_block(rows: list[dict[str, object]], names: list[str]) -> Block:
    return {
        name: pa.array(
            [None if (v := row.get(name)) is None else str(v) for row in rows], pa.string()
        )
        for name in names
    }
