"""One chunk of a batch transform, run inside a worker: read records, predict, write.

The gateway names a byte range of an input file (cut on line boundaries when it planned
the job) and where the answers go; the worker reads the records itself, sends them to
the model in mini-batches of at most `max_payload` bytes (MultiRecord) or one at a time
(SingleRecord), and writes the answers in input order to the output file. Nothing goes
through HTTP, and the records never pass through the gateway.

A mini-batch the model refuses is split in halves until the bad records stand alone:
with `on_bad_record` "fail" (SageMaker's behaviour) the chunk stops at the first one and
names its line; with "continue" each bad record goes to the errors file as a JSON line
`{"line": N, "error": "..."}` and the rest are answered.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from sluice import jsonpath, recordio
from sluice.errors import ModelError, SluiceError, UnsupportedContentType, ValidationError
from sluice.runtimes.base import Runtime
from sluice.types import CSV, JSON, JSONLINES, PARQUET_TYPES, media_type


@dataclass(frozen=True)
class Chunk:
    """What the gateway asks for (the frame's JSON body)."""

    input: str
    output: str
    errors: str
    start: int = 0
    end: int = -1
    """-1: to the end of the file."""
    first_line: int = 1
    compression: str = "None"
    split: str = "Line"
    strategy: str = "MultiRecord"
    max_payload: int = 6 * 1024 * 1024
    content_type: str = JSON
    accept: str = JSON
    assemble: str = "None"
    on_bad_record: str = "fail"
    input_filter: str = "$"
    join_source: str = "None"
    output_filter: str = "$"

    @property
    def processing(self) -> bool:
        """DataProcessing asked for: records are parsed, filtered and joined one by one."""
        return self.input_filter != "$" or self.output_filter != "$" or self.join_source != "None"


class BadRecord(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def run(runtime: Runtime, body: bytes) -> dict[str, Any]:
    """Transform one chunk; the summary the gateway records (counts, first error)."""
    chunk = Chunk(**json.loads(body))
    job = _Job(runtime, chunk)
    try:
        with open(chunk.output, "wb") as out:
            job.out = out
            if media_type(chunk.content_type) in PARQUET_TYPES:
                for first, rows in _parquet_batches(chunk):
                    job.answer_rows(first, rows)
                out.flush()
                os.fsync(out.fileno())
                return job.summary()
            records = _records(chunk)
            if chunk.processing:
                records = job.filtered(records)
            for batch in _batches(chunk, records):
                job.answer(batch)
            out.flush()
            os.fsync(out.fileno())
    except BadRecord as bad:
        error = {"line": bad.line, "message": bad.message}
        return {"records": job.records, "failed": 1, "error": error, "stopped": True}
    finally:
        if job.errors is not None:
            job.errors.flush()
            os.fsync(job.errors.fileno())
            job.errors.close()
    return job.summary()


Record = tuple[int, bytes]
"""(line number in the file, the record's bytes)."""


def _records(chunk: Chunk) -> Iterator[Record]:
    if chunk.compression == "Gzip":
        with gzip.open(chunk.input, "rb") as packed:
            data = _read_all(packed)
    else:
        with open(chunk.input, "rb") as plain:
            plain.seek(chunk.start)
            data = plain.read() if chunk.end < 0 else plain.read(chunk.end - chunk.start)
    if chunk.split == "None":
        yield chunk.first_line, data
        return
    if chunk.split == "RecordIO":
        for number, (start, end) in enumerate(
            recordio.records(data, chunk.start), start=chunk.first_line
        ):
            yield number, data[start:end]
        return
    for number, line in enumerate(data.split(b"\n"), start=chunk.first_line):
        line = line.removesuffix(b"\r")
        if line.strip():
            yield number, line


def _parquet_batches(chunk: Chunk) -> Iterator[tuple[int, np.ndarray]]:
    """(number of the first row, rows) batches of the chunk's row groups, each at most
    `max_payload` bytes of float64 values."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        source = pq.ParquetFile(chunk.input)
        groups = list(range(chunk.start, chunk.end))
        width = max(len(source.schema_arrow), 1)
        size = max(1, chunk.max_payload // (8 * width))
        first = chunk.first_line
        for batch in source.iter_batches(batch_size=size, row_groups=groups):
            columns = batch.columns
            if any(c.null_count for c in columns):
                raise ValidationError(
                    f"rows {first} to {first + batch.num_rows - 1} have missing values",
                    field="TransformInput",
                )
            rows = np.column_stack([c.to_numpy(zero_copy_only=False) for c in columns])
            yield first, rows
            first += batch.num_rows
    except (pa.ArrowException, OSError) as exc:
        raise ValidationError(
            f"cannot read the Parquet input: {exc}", field="TransformInput"
        ) from None


def _parse(raw: bytes, is_csv: bool, line: int) -> Any:
    try:
        if is_csv:
            return next(csv.reader([raw.decode()]), [])
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        kind = "CSV" if is_csv else "JSON"
        raise ValidationError(f"line {line} is not {kind}: {exc}", field="DataProcessing") from None


def _serialize(value: Any, is_csv: bool) -> bytes:
    if not is_csv:
        return json.dumps(value, separators=(",", ":")).encode()
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(value if isinstance(value, list) else [value])
    return out.getvalue().encode()


def _join(record: Any, answer: Any, is_csv: bool) -> Any:
    """SageMaker's JoinSource Input: CSV columns appended; a JSON object gains
    `SageMakerOutput`, anything else becomes `{SageMakerInput, SageMakerOutput}`."""
    if is_csv:
        left = record if isinstance(record, list) else [record]
        right = answer if isinstance(answer, list) else [answer]
        return [*left, *right]
    if isinstance(record, dict):
        return {**record, "SageMakerOutput": answer}
    return {"SageMakerInput": record, "SageMakerOutput": answer}


def _read_all(stream: gzip.GzipFile) -> bytes:
    try:
        return stream.read()
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        raise ValidationError(
            f"cannot decompress the input: {exc}", field="CompressionType"
        ) from exc


def _batches(chunk: Chunk, records: Iterator[Record]) -> Iterator[list[Record]]:
    if chunk.split == "None" or chunk.strategy == "SingleRecord":
        for record in records:
            yield [record]
        return
    batch: list[Record] = []
    size = 0
    for record in records:
        if batch and size + len(record[1]) + 1 > chunk.max_payload:
            yield batch
            batch, size = [], 0
        batch.append(record)
        size += len(record[1]) + 1
    if batch:
        yield batch


class _Job:
    def __init__(self, runtime: Runtime, chunk: Chunk) -> None:
        self.runtime = runtime
        self.chunk = chunk
        self.out: IO[bytes] | None = None
        self.errors: IO[bytes] | None = None
        self.records = 0
        self.failed = 0
        self.first_error: dict[str, Any] | None = None
        self.content_type = chunk.accept
        self.input_filter = jsonpath.Path(chunk.input_filter, "DataProcessing.InputFilter")
        self.output_filter = jsonpath.Path(chunk.output_filter, "DataProcessing.OutputFilter")
        self.csv_in = media_type(chunk.content_type) == CSV
        self.csv_out = media_type(chunk.accept) == CSV
        self.originals: dict[int, Any] = {}
        """Parsed input records by line, for joins (DataProcessing only)."""

    def summary(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "failed": self.failed,
            "error": self.first_error,
            "content_type": self.content_type,
        }

    def answer_rows(self, first_line: int, rows: np.ndarray) -> None:
        """Answer rows read from Parquet (no text in between): predict, encode, write;
        halve a batch the model refuses until the bad rows stand alone."""
        try:
            answer, self.content_type = self.runtime.answer_rows(rows, self.chunk.accept)
        except UnsupportedContentType:
            raise
        except Exception as exc:  # noqa: BLE001 - the model's failure is the rows' error
            if len(rows) > 1:
                middle = len(rows) // 2
                self.answer_rows(first_line, rows[:middle])
                self.answer_rows(first_line + middle, rows[middle:])
                return
            message = (
                exc.message if isinstance(exc, SluiceError) else f"{type(exc).__name__}: {exc}"
            )
            self._bad(first_line, message)
            return
        self._write(answer)
        self.records += len(rows)

    def filtered(self, records: Iterator[Record]) -> Iterator[Record]:
        """Records parsed (CSV as an array of its values, JSON as the document), kept for
        joining, and cut down by the InputFilter; a record that cannot be is a bad one."""
        for line, raw in records:
            try:
                value = _parse(raw, self.csv_in, line)
                sent = self.input_filter(value)
            except ValidationError as exc:
                self._bad(line, exc.message)
                continue
            if self.chunk.join_source == "Input":
                self.originals[line] = value
            yield line, raw if self.input_filter.is_identity else _serialize(sent, self.csv_in)

    def answer(self, batch: list[Record]) -> None:
        """Answer a mini-batch; split it to find the records the model (or, with
        DataProcessing, the join and filters of its answers) refuses."""
        try:
            answer = self._invoke(batch)
            lines = self._processed(batch, answer) if self.chunk.processing else None
        except UnsupportedContentType:
            raise  # no record is to blame: the whole chunk fails
        except SluiceError as exc:
            if len(batch) > 1:
                middle = len(batch) // 2
                self.answer(batch[:middle])
                self.answer(batch[middle:])
                return
            self._bad(batch[0][0], exc.message)
            return
        if lines is None:
            self._write(answer)
        else:
            assert self.out is not None
            self.out.write(b"".join(line + b"\n" for line in lines))
        self.records += len(batch)
        for line, _ in batch:
            self.originals.pop(line, None)

    def _write(self, answer: bytes) -> None:
        """One model answer, followed by a newline with AssembleWith Line."""
        assert self.out is not None
        self.out.write(answer)
        if self.chunk.assemble == "Line" and not answer.endswith(b"\n"):
            self.out.write(b"\n")

    def _processed(self, batch: list[Record], answer: bytes) -> list[bytes]:
        """One output line per record: its answer, joined with its input, filtered."""
        answers = answer.strip(b"\n").split(b"\n") if len(batch) > 1 else [answer.strip(b"\n")]
        if len(answers) != len(batch):
            raise ValidationError(
                f"the model answered {len(answers)} lines for {len(batch)} records; "
                "DataProcessing needs one answer a line (Accept text/csv or "
                "application/jsonlines)",
                field="DataProcessing",
            )
        out = []
        for (line, _), raw in zip(batch, answers, strict=True):
            value = _parse(raw, self.csv_out, line)
            if self.chunk.join_source == "Input":
                value = _join(self.originals[line], value, self.csv_out)
            out.append(_serialize(self.output_filter(value), self.csv_out))
        return out

    def _invoke(self, batch: list[Record]) -> bytes:
        content_type = self.chunk.content_type
        accept = self.chunk.accept
        if len(batch) == 1:
            body = batch[0][1]
        elif self.chunk.split == "RecordIO":
            body = b"".join(record for _, record in batch)  # framed records, back to back
        else:
            body = b"\n".join(record for _, record in batch) + b"\n"
            if media_type(content_type) == JSON:
                content_type = JSONLINES  # one JSON document a line
            if self.chunk.processing and media_type(accept) == JSON:
                accept = JSONLINES  # one answer a line, to join or filter each
        try:
            answer, self.content_type = self.runtime.invoke(body, content_type, accept)
        except SluiceError:
            raise
        except Exception as exc:  # noqa: BLE001 - the model's failure is the record's error
            raise ModelError(f"{type(exc).__name__}: {exc}") from exc
        return answer

    def _bad(self, line: int, message: str) -> None:
        if self.chunk.on_bad_record != "continue":
            raise BadRecord(line, message)
        self.failed += 1
        if self.first_error is None:
            self.first_error = {"line": line, "message": message}
        if self.errors is None:
            self.errors = open(self.chunk.errors, "wb")  # noqa: SIM115 - closed by run()
        entry = {"line": line, "error": message}
        self.errors.write(json.dumps(entry).encode() + b"\n")
