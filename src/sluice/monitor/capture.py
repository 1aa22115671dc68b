"""A window of captured requests read back as the baseline's columns.

Capture files (SageMaker's JSON Lines, gateway/capture.py) are streamed through Arrow's
JSON reader, keeping only each record's input and time. CSV inputs, the common case, are
joined into one CSV text per block and parsed by Arrow's CSV reader with the baseline's
column types, so no Python code runs per record. Other inputs (JSON, JSON Lines, base64)
are decoded record by record. A file Arrow cannot read (a malformed line) is read again
line by line, and every line that is not a capture record is counted, never fatal. A
torn last line (a file being written) is left for the next window.
"""

from __future__ import annotations

import base64
import csv
import io
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.json as pj

from sluice.monitor.columns import NULL_TEXT
from sluice.monitor.tables import Block
from sluice.reports.records import hour_of, jsonl_files, parse_time
from sluice.types import CSV, JSON, JSONLINES, media_type

BLOCK_BYTES = 16 << 20
"""Arrow's JSON block: about 10,000 records, the memory a window costs at once."""
_PAYLOAD = pa.struct(
    [("data", pa.string()), ("encoding", pa.string()), ("observedContentType", pa.string())]
)
_SCHEMA = pa.schema(
    [
        ("captureData", pa.struct([("endpointInput", _PAYLOAD)])),
        ("eventMetadata", pa.struct([("inferenceTime", pa.string())])),
    ]
)
_JSON_OPTIONS = pj.ParseOptions(explicit_schema=_SCHEMA, unexpected_field_behavior="ignore")


@dataclass
class WindowCounts:
    """What was read, and what could not be used, with reasons."""

    files: int = 0
    records: int = 0
    rows: int = 0
    malformed_lines: int = 0
    """Lines that are not JSON capture records."""
    without_input: int = 0
    """Records that captured no input (input capture off)."""
    unreadable_inputs: int = 0
    """Inputs that do not parse as their content type, or of a type that holds no table."""
    short_rows: int = 0
    """Rows with fewer values than the baseline has columns (left out)."""
    long_rows: int = 0
    """Rows with more values than the baseline has columns (left out)."""
    absent: Counter[str] = field(default_factory=Counter)
    """Records by name (JSON objects) that lacked a baseline column."""
    extra: Counter[str] = field(default_factory=Counter)
    """Names in JSON objects that the baseline does not have."""
    content_types: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "records": self.records,
            "rows": self.rows,
            "malformed_lines": self.malformed_lines,
            "without_input": self.without_input,
            "unreadable_inputs": self.unreadable_inputs,
            "short_rows": self.short_rows,
            "long_rows": self.long_rows,
            "absent_columns": dict(self.absent),
            "extra_columns": dict(self.extra),
            "content_types": dict(self.content_types),
        }


@dataclass(frozen=True)
class Columns:
    """The baseline's columns, in order, and which of them are numeric."""

    names: list[str]
    numeric: frozenset[str]


class WindowReader:
    """Reads the inputs captured in [start, end) (epoch seconds; None is open) from capture
    folders (one per variant: `<root>/<endpoint>/<variant>`) or single files."""

    def __init__(
        self,
        sources: Sequence[Path],
        columns: Columns,
        start: float | None = None,
        end: float | None = None,
    ) -> None:
        self.sources = list(sources)
        self.columns = columns
        self.start = start
        self.end = end
        self.counts = WindowCounts()
        self._csv_types = {
            name: pa.float64() if name in columns.numeric else pa.string() for name in columns.names
        }
        self._text_types = dict.fromkeys(columns.names, pa.string())

    def blocks(self) -> Iterator[Block]:
        for path, covered in self._files():
            self.counts.files += 1
            yield from self._file(path, covered)

    def _files(self) -> Iterator[tuple[Path, bool]]:
        """Each file with whether its hour lies wholly in the window (no time filter needed)."""
        for source in self.sources:
            if source.is_file():
                yield source, self.start is None and self.end is None
                continue
            for path in jsonl_files(source):
                hour = hour_of(path, source)
                if hour is None:
                    yield path, self.start is None and self.end is None
                    continue
                if (self.start is not None and hour + 3600 <= self.start) or (
                    self.end is not None and hour >= self.end
                ):
                    continue
                inside = (self.start is None or hour >= self.start) and (
                    self.end is None or hour + 3600 <= self.end
                )
                yield path, inside

    def _file(self, path: Path, covered: bool) -> Iterator[Block]:
        done = 0
        with path.open("rb") as f:
            try:
                reader = pj.open_json(
                    _WholeLines(f, _complete_length(path)),
                    read_options=pj.ReadOptions(block_size=BLOCK_BYTES),
                    parse_options=_JSON_OPTIONS,
                )
                for batch in reader:
                    done += batch.num_rows
                    block = self._batch(batch, covered)
                    if block is not None:
                        yield block
                return
            except pa.ArrowInvalid:
                pass  # a line Arrow cannot read: the rest of the file goes line by line
        yield from self._file_line_by_line(path, skip=done, covered=covered)

    def _batch(self, batch: pa.RecordBatch, covered: bool) -> Block | None:
        self.counts.records += batch.num_rows
        payload = batch.column("captureData").field("endpointInput")
        if not covered:
            inside = self._inside(batch.column("eventMetadata").field("inferenceTime"))
            self.counts.records -= batch.num_rows - int(
                pc.sum(pc.cast(inside, pa.int64())).as_py() or 0
            )
            payload = payload.filter(inside)
        data = payload.field("data")
        has_input = pc.is_valid(data)
        self.counts.without_input += len(data) - int(
            pc.sum(pc.cast(has_input, pa.int64())).as_py() or 0
        )
        kinds = pc.fill_null(payload.field("observedContentType"), "")
        encodings = pc.fill_null(payload.field("encoding"), "")
        plain_csv = pc.and_(
            pc.and_(has_input, pc.equal(encodings, "CSV")),
            pc.starts_with(pc.utf8_lower(kinds), CSV),
        )
        blocks = [self._csv(data.filter(plain_csv))]
        others = pc.and_(has_input, pc.invert(plain_csv))
        if pc.any(others).as_py():
            rest = payload.filter(others)
            blocks.append(
                self._records(
                    zip(
                        rest.field("data").to_pylist(),
                        rest.field("encoding").to_pylist(),
                        rest.field("observedContentType").to_pylist(),
                        strict=True,
                    )
                )
            )
        return _concat([b for b in blocks if b is not None], self.columns.names)

    def _inside(self, stamps: pa.Array) -> pa.Array:
        try:
            times = pc.cast(stamps, pa.timestamp("ms", tz="UTC"))
        except pa.ArrowInvalid:
            times = pa.array(
                [_parse_time(s) for s in stamps.to_pylist()], pa.timestamp("ms", tz="UTC")
            )
        inside = pc.is_valid(times)
        if self.start is not None:
            inside = pc.and_(inside, pc.greater_equal(times, _stamp(self.start)))
        if self.end is not None:
            inside = pc.and_(inside, pc.less(times, _stamp(self.end)))
        return pc.fill_null(inside, False)

    def _csv(self, data: pa.Array) -> Block | None:
        if len(data) == 0:
            return None
        joined = pc.binary_join_element_wise(data, pa.scalar(""), "\n")
        offsets = np.frombuffer(joined.buffers()[1], np.int32)
        first, last = int(offsets[joined.offset]), int(offsets[joined.offset + len(joined)])
        text = joined.buffers()[2].slice(first, last - first)
        try:
            table = self._read_csv(text, self._csv_types)
        except pa.ArrowInvalid:  # a value that is not a number: read as text, count it later
            table = self._read_csv(text, self._text_types)
        self.counts.rows += table.num_rows
        return {name: table.column(name) for name in self.columns.names}

    def _read_csv(self, text: pa.Buffer, types: dict[str, pa.DataType]) -> pa.Table:
        width = len(self.columns.names)

        def wrong_width(row: Any) -> str:
            if row.actual_columns < width:
                self.counts.short_rows += 1
            else:
                self.counts.long_rows += 1
            return "skip"

        short, long = self.counts.short_rows, self.counts.long_rows
        try:
            return pcsv.read_csv(
                text,
                read_options=pcsv.ReadOptions(column_names=self.columns.names),
                parse_options=pcsv.ParseOptions(invalid_row_handler=wrong_width),
                convert_options=pcsv.ConvertOptions(
                    column_types=types, null_values=NULL_TEXT, strings_can_be_null=True
                ),
            )
        except pa.ArrowInvalid:
            self.counts.short_rows, self.counts.long_rows = short, long  # read again
            raise

    def _records(self, payloads: Iterator[tuple[str, str, str]]) -> Block | None:
        """Inputs that are not plain CSV, one record at a time."""
        names = self.columns.names
        width = len(names)
        cells: list[list[str | None]] = [[] for _ in names]
        for data, encoding, content_type in payloads:
            self.counts.content_types[media_type(content_type or "")] += 1
            rows = self._rows(data, encoding, content_type)
            if rows is None:
                self.counts.unreadable_inputs += 1
                continue
            for row in rows:
                if isinstance(row, dict):
                    for name in row.keys() - set(names):
                        self.counts.extra[name] += 1
                    for i, name in enumerate(names):
                        if name not in row:
                            self.counts.absent[name] += 1
                        cells[i].append(_text(row.get(name)))
                elif len(row) != width:
                    if len(row) < width:
                        self.counts.short_rows += 1
                    else:
                        self.counts.long_rows += 1
                    continue
                else:
                    for i, value in enumerate(row):
                        cells[i].append(_text(value))
        if not cells[0]:
            return None
        self.counts.rows += len(cells[0])
        return {name: pa.array(cells[i], pa.string()) for i, name in enumerate(names)}

    def _rows(self, data: str, encoding: str, content_type: str) -> list[Any] | None:
        kind = media_type(content_type or "")
        try:
            raw = base64.b64decode(data, validate=True) if encoding == "BASE64" else data.encode()
            if kind == CSV:
                return [row for row in csv.reader(io.StringIO(raw.decode())) if row]
            if kind == JSONLINES:
                return [
                    _one_row(msgspec.json.decode(line)) for line in raw.splitlines() if line.strip()
                ]
            if kind == JSON or kind.endswith("+json"):
                return _json_rows(msgspec.json.decode(raw))
        except (ValueError, msgspec.DecodeError, pa.ArrowInvalid):
            return None
        return None

    def _file_line_by_line(self, path: Path, skip: int, covered: bool) -> Iterator[Block]:
        decoder = msgspec.json.Decoder(_Record)
        good: list[_Record] = []
        with path.open("rb") as f:
            lines = f.read(_complete_length(path)).splitlines()
        for line in lines:
            if not line.strip():
                continue
            if skip:
                skip -= 1
                continue
            try:
                good.append(decoder.decode(line))
            except msgspec.DecodeError:
                self.counts.malformed_lines += 1
        self.counts.records += len(good)
        if not covered:
            kept = [r for r in good if self._inside_one(r.event_metadata.inference_time)]
            self.counts.records -= len(good) - len(kept)
            good = kept
        with_input = [r.capture_data.endpoint_input for r in good if r.capture_data.endpoint_input]
        self.counts.without_input += len(good) - len(with_input)
        plain: list[str] = []
        others: list[tuple[str, str, str]] = []
        for p in with_input:
            if p.encoding == "CSV" and p.observed_content_type.lower().startswith(CSV):
                plain.append(p.data)
            else:
                others.append((p.data, p.encoding, p.observed_content_type))
        blocks = [self._csv(pa.array(plain, pa.string())), self._records(iter(others))]
        block = _concat([b for b in blocks if b is not None], self.columns.names)
        if block is not None:
            yield block

    def _inside_one(self, stamp: str) -> bool:
        when = _parse_time(stamp)
        if when is None:
            return False
        seconds = when / 1000
        return (self.start is None or seconds >= self.start) and (
            self.end is None or seconds < self.end
        )


class _Payload(msgspec.Struct, rename="camel"):
    data: str = ""
    encoding: str = ""
    observed_content_type: str = ""


class _Data(msgspec.Struct, rename="camel"):
    endpoint_input: _Payload | None = None


class _Meta(msgspec.Struct, rename="camel"):
    inference_time: str = ""


class _Record(msgspec.Struct, rename="camel"):
    capture_data: _Data = msgspec.field(default_factory=_Data)
    event_metadata: _Meta = msgspec.field(default_factory=_Meta)


class _WholeLines(io.RawIOBase):
    """A file read up to `length` bytes (its last newline)."""

    def __init__(self, file: io.BufferedReader, length: int) -> None:
        self.file = file
        self.left = length

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.left <= 0:
            return 0
        view = memoryview(buffer)[: min(len(buffer), self.left)]
        read = self.file.readinto(view)
        self.left -= read
        return read


def _complete_length(path: Path) -> int:
    """Bytes up to and including the file's last newline."""
    size = path.stat().st_size
    with path.open("rb") as f:
        position = size
        while position > 0:
            start = max(0, position - 65_536)
            f.seek(start)
            chunk = f.read(position - start)
            cut = chunk.rfind(b"\n")
            if cut >= 0:
                return start + cut + 1
            position = start
    return 0


def _json_rows(value: Any) -> list[Any]:
    """Rows of a JSON input: `{"instances": [...]}` (or inputs, data), a list of rows, a
    list of values (one row), or an object (one row by name)."""
    if isinstance(value, dict):
        for key in ("instances", "inputs", "data"):
            if key in value:
                return _json_rows(value[key])
        return [value]
    if isinstance(value, list):
        if value and all(isinstance(v, list | dict) for v in value):
            return value
        return [value]
    return [[value]]


def _one_row(value: Any) -> Any:
    return value if isinstance(value, list | dict) else [value]


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | dict):
        return msgspec.json.encode(value).decode()
    return str(value)


def _concat(blocks: list[Block], names: list[str]) -> Block | None:
    if not blocks:
        return None
    if len(blocks) == 1:
        return blocks[0]
    out: Block = {}
    for name in names:
        parts = [b[name] for b in blocks]
        kinds = {p.type for p in parts}
        if len(kinds) > 1:
            parts = [pc.cast(p, pa.string()) for p in parts]
        chunks = [c for p in parts for c in (p.chunks if isinstance(p, pa.ChunkedArray) else [p])]
        out[name] = pa.chunked_array(chunks, type=chunks[0].type)
    return out


def _stamp(seconds: float) -> pa.Scalar:
    return pa.scalar(int(seconds * 1000), pa.timestamp("ms", tz="UTC"))


def _parse_time(stamp: str | None) -> int | None:
    """Milliseconds since the epoch, or None for a stamp that is not ISO-8601."""
    if not stamp:
        return None
    try:
        return int(parse_time(stamp) * 1000)
    except ValueError:
        return None
