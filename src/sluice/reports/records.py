"""Fast, streaming reads of capture, ground-truth and outcome files (JSON Lines).

Capture records are decoded with msgspec into typed structs, file by file; a record's
input payload is kept as raw JSON and decoded only when a report shows it. Ground truth
and outcome records are streamed the same way.
"""

from __future__ import annotations

import base64
import csv
import io
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

READ_CHUNK = 4 * 1024 * 1024


class Payload(msgspec.Struct, rename="camel"):
    data: str = ""
    encoding: str = "JSON"
    observed_content_type: str = ""
    mode: str = ""

    def raw(self) -> bytes:
        return base64.b64decode(self.data) if self.encoding == "BASE64" else self.data.encode()


class CaptureData(msgspec.Struct, rename="camel"):
    endpoint_input: msgspec.Raw = msgspec.Raw(b"")
    endpoint_output: Payload | None = None


class EventMetadata(msgspec.Struct, rename="camel"):
    event_id: str = ""
    inference_id: str | None = None
    inference_time: str = ""
    latency_ms: float | None = None
    status: int = 200


class CaptureRecord(msgspec.Struct, rename="camel"):
    capture_data: CaptureData
    event_metadata: EventMetadata

    @property
    def key(self) -> str:
        """The join key: the inference id, else the event id (SageMaker's rule)."""
        meta = self.event_metadata
        return meta.inference_id or meta.event_id

    def time(self) -> float:
        return parse_time(self.event_metadata.inference_time)

    def input_text(self, limit: int = 2000) -> str:
        """The request as text (JSON or CSV as sent; base64 for binary), cut at `limit`."""
        if not self.capture_data.endpoint_input:
            return ""
        payload = msgspec.json.decode(self.capture_data.endpoint_input, type=Payload)
        text = payload.data
        return text if len(text) <= limit else text[:limit] + "…"


class GroundTruthData(msgspec.Struct):
    data: str
    encoding: str = "CSV"


class GroundTruthMeta(msgspec.Struct, rename="camel"):
    event_id: str


class GroundTruthRecord(msgspec.Struct, rename="camel"):
    """SageMaker's ground-truth record, as Model Monitor reads it."""

    ground_truth_data: GroundTruthData
    event_metadata: GroundTruthMeta
    event_version: str = "0"


class OutcomeData(msgspec.Struct):
    name: str
    value: float


class OutcomeRecord(msgspec.Struct, rename="camel"):
    """A business outcome of one inference (a conversion, a click, revenue)."""

    outcome_data: OutcomeData
    event_metadata: GroundTruthMeta
    event_version: str = "0"


_capture = msgspec.json.Decoder(CaptureRecord)
_truth = msgspec.json.Decoder(GroundTruthRecord)
_outcome = msgspec.json.Decoder(OutcomeRecord)


_hours: dict[str, float] = {}


def parse_time(stamp: str) -> float:
    """Epoch seconds of an ISO-8601 UTC stamp such as 2026-11-24T10:31:05.123Z."""
    if not stamp:
        return 0.0
    hour = _hours.get(stamp[:13])
    if hour is not None and len(stamp) >= 20 and stamp[13] == ":" and stamp[-1] == "Z":
        try:
            return hour + int(stamp[14:16]) * 60 + float(stamp[17:-1])
        except ValueError:
            pass
    when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if len(_hours) < 10_000:
        _hours[stamp[:13]] = when.replace(minute=0, second=0, microsecond=0).timestamp()
    return when.timestamp()


def jsonl_files(folder: Path) -> list[Path]:
    """Every .jsonl file under `folder`, oldest first (paths are YYYY/MM/DD/HH/MM-SS-...)."""
    return sorted(folder.rglob("*.jsonl")) if folder.is_dir() else []


def hour_of(path: Path, base: Path) -> float | None:
    """The start of the hour a capture file belongs to, from its YYYY/MM/DD/HH folders."""
    parts = path.relative_to(base).parts
    if len(parts) < 5:
        return None
    try:
        year, month, day, hour = (int(p) for p in parts[:4])
        return datetime(year, month, day, hour, tzinfo=UTC).timestamp()
    except ValueError:
        return None


def _lines(path: Path) -> Iterator[bytes]:
    """A file in blocks of whole lines (a torn last line, being written, is left out)."""
    with path.open("rb") as f:
        rest = b""
        while block := f.read(READ_CHUNK):
            block = rest + block
            cut = block.rfind(b"\n") + 1
            rest = block[cut:]
            if cut:
                yield block[:cut]


def capture_records(
    folder: Path, start: float | None = None, end: float | None = None
) -> Iterator[list[CaptureRecord]]:
    """Capture records under `folder` (one variant), a block at a time, in file order.

    Files whose hour lies wholly outside [start, end) are skipped unread; records are
    filtered by their inference time. A line that is not a capture record is skipped.
    """
    for path in jsonl_files(folder):
        hour = hour_of(path, folder)
        if hour is not None and (
            (start is not None and hour + 3600 <= start) or (end is not None and hour >= end)
        ):
            continue
        for block in _lines(path):
            records: list[CaptureRecord] = _decode_each(block, _capture)
            if start is not None or end is not None:
                low = -math.inf if start is None else start
                high = math.inf if end is None else end
                records = [r for r in records if low <= r.time() < high]
            if records:
                yield records


def ground_truth_records(folder: Path) -> Iterator[GroundTruthRecord]:
    """Every ground-truth record under `folder`, oldest file first (bad lines skipped)."""
    for path in jsonl_files(folder):
        yield from ground_truth_file(path)


def ground_truth_file(path: Path) -> Iterator[GroundTruthRecord]:
    for block in _lines(path):
        yield from _decode_each(block, _truth)


def outcome_records(folder: Path) -> Iterator[OutcomeRecord]:
    for path in jsonl_files(folder):
        for block in _lines(path):
            yield from _decode_each(block, _outcome)


def _decode_each(block: bytes, decoder: Any) -> list[Any]:
    """Every record of a block of lines; a line that does not decode is skipped."""
    try:
        return decoder.decode_lines(block)  # type: ignore[no-any-return]
    except msgspec.DecodeError:
        good = []
        for line in block.splitlines():
            if line.strip():
                try:
                    good.append(decoder.decode(line))
                except msgspec.DecodeError:
                    continue
        return good


def split_labels(data: str, encoding: str) -> list[str]:
    """A ground-truth payload as one label per row: CSV values, or a JSON value or list."""
    if encoding.upper() == "JSON":
        value = msgspec.json.decode(data)
        values = value if isinstance(value, list) else [value]
        return [canonical(v[0] if isinstance(v, list) and len(v) == 1 else v) for v in values]
    if not any(c in data for c in ',"\n'):  # one plain value: the common case
        return [canonical(data.strip())]
    rows = [r for r in csv.reader(io.StringIO(data)) if r]
    cells = [c for row in rows for c in row] if len(rows) > 1 else (rows[0] if rows else [])
    return [canonical(c.strip()) for c in cells]


def canonical(value: Any) -> str:
    """One spelling per label: 3, 3.0 and "3" are all "3"; other values as text."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    text = str(value)
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() and math.isfinite(number) else text


_any = msgspec.json.Decoder()


class _Output(msgspec.Struct):
    predictions: list[Any]
    probabilities: list[list[float]] | None = None


_output = msgspec.json.Decoder(_Output)


@dataclass(frozen=True, slots=True)
class Answer:
    """What a model answered to one request: a prediction per row, probabilities if given."""

    predictions: list[Any]
    probabilities: list[list[float]] | None


NO_ANSWER = Answer([], None)


def answer_of(record: CaptureRecord) -> Answer:
    """The predictions in a record's output (JSON `{"predictions": [...]}`, a JSON list or
    value, or CSV); no rows for a failed invocation or an unreadable output."""
    output = record.capture_data.endpoint_output
    if output is None or record.event_metadata.status != 200:
        return NO_ANSWER
    try:
        if output.encoding == "CSV":
            rows = [r for r in csv.reader(io.StringIO(output.data)) if r]
            return Answer([_number(r[0]) if len(r) == 1 else r for r in rows], None)
        body = output.raw()
        try:  # the common shape, decoded straight into a struct
            typed = _output.decode(body)
            return _answer(typed.predictions, typed.probabilities)
        except msgspec.ValidationError:
            value = _any.decode(body)
    except (msgspec.DecodeError, ValueError):
        return NO_ANSWER
    if isinstance(value, dict):
        predictions = value.get("predictions", value.get("outputs"))
        return (
            NO_ANSWER if predictions is None else _answer(predictions, value.get("probabilities"))
        )
    return _answer(value, None)


def _answer(predictions: Any, probabilities: Any) -> Answer:
    if not isinstance(predictions, list):
        predictions = [predictions]
    rows = [p[0] if isinstance(p, list) and len(p) == 1 else p for p in predictions]
    if not isinstance(probabilities, list) or len(probabilities) != len(rows):
        probabilities = None
    return Answer(rows, probabilities)


def _number(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return text
