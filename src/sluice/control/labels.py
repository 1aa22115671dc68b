"""Ground truth and business outcomes, posted after the fact by inference id.

Ground truth is written in SageMaker's ground-truth record format (JSON Lines, one file
per post, under `{root}/{endpoint}/YYYY/MM/DD/HH/`, the hour being when the labels were
received), so Model Monitor tooling reads it and any report or monitor can join it to
captured inferences. Outcomes (a conversion, a click, a revenue figure) use the same
layout with an `outcomeData` member. A batch is checked whole before anything is written:
one bad record rejects the post and stores nothing.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sluice.errors import ValidationError

MAX_RECORDS = 1_000_000
MAX_ID = 64


@dataclass(frozen=True)
class Label:
    inference_id: str
    data: str
    encoding: str
    """CSV for one value, JSON for a list (one label per row of a multi-row request)."""


@dataclass(frozen=True)
class Outcome:
    inference_id: str
    name: str
    value: float


class LabelStore:
    def __init__(self, ground_truth_root: Path, outcomes_root: Path) -> None:
        self.ground_truth_root = ground_truth_root
        self.outcomes_root = outcomes_root

    def put_ground_truth(self, endpoint: str, labels: Sequence[Label]) -> int:
        lines = (
            _record(x.inference_id, "groundTruthData", {"data": x.data, "encoding": x.encoding})
            for x in labels
        )
        return _write(self.ground_truth_root / endpoint, lines)

    def put_outcomes(self, endpoint: str, outcomes: Sequence[Outcome]) -> int:
        lines = (
            _record(x.inference_id, "outcomeData", {"name": x.name, "value": x.value})
            for x in outcomes
        )
        return _write(self.outcomes_root / endpoint, lines)


def _record(inference_id: str, member: str, data: Mapping[str, Any]) -> str:
    """One line in SageMaker's ground-truth layout, with `data` under `member`."""
    return json.dumps(
        {member: data, "eventMetadata": {"eventId": inference_id}, "eventVersion": "0"},
        separators=(",", ":"),
    )


def _write(folder: Path, lines: Iterable[str]) -> int:
    now = time.time()
    stamp = time.gmtime(now)
    hour = folder / time.strftime("%Y/%m/%d/%H", stamp)
    hour.mkdir(parents=True, exist_ok=True)
    name = f"{time.strftime('%M-%S', stamp)}-{int(now * 1000) % 1000:03d}-{uuid.uuid4().hex[:8]}"
    body = "\n".join(lines)
    if not body:
        return 0
    path = hour / f"{name}.jsonl"
    partial = path.with_suffix(".part")
    partial.write_text(body + "\n", encoding="utf-8")
    partial.rename(path)  # readers never see half a post
    return body.count("\n") + 1


# -- parsing what users post


def parse_labels(body: bytes, content_type: str) -> list[Label]:
    """Labels from JSON ({"records": [...]} or a list), JSON Lines or CSV (a header row
    with inference_id and label). Each record is {"inference_id", "label"} or a SageMaker
    ground-truth record."""
    return [_label(r, i) for i, r in enumerate(_records(body, content_type, "label"))]


def parse_outcomes(body: bytes, content_type: str) -> list[Outcome]:
    """Outcomes: records {"inference_id", "name", "value"}, in the same formats."""
    return [_outcome(r, i) for i, r in enumerate(_records(body, content_type, "value"))]


def _records(body: bytes, content_type: str, column: str) -> list[Mapping[str, Any]]:
    kind = content_type.split(";")[0].strip().lower()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError("the body must be UTF-8", field="body") from None
    if kind == "text/csv":
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames or "inference_id" not in reader.fieldnames:
            raise ValidationError(
                f"CSV needs a header row with inference_id and {column}", field="body"
            )
        records: list[Any] = list(reader)
    elif kind in ("application/jsonlines", "application/x-ndjson", "application/jsonl"):
        records = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except (ValueError, RecursionError) as exc:
                    raise ValidationError(
                        f"line {number} is not JSON: {exc}", field="body"
                    ) from None
    elif kind == "application/json":
        try:
            document = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise ValidationError(f"the body is not JSON: {exc}", field="body") from None
        found = document.get("records") if isinstance(document, dict) else document
        if not isinstance(found, list):
            raise ValidationError('send a list of records, or {"records": [...]}', field="records")
        records = found
    else:
        raise ValidationError(
            f"content type {kind!r} is not accepted: use application/json, "
            "application/jsonlines or text/csv",
            field="Content-Type",
        )
    if not records:
        raise ValidationError("no records in the body", field="records")
    if len(records) > MAX_RECORDS:
        raise ValidationError(f"at most {MAX_RECORDS:,} records per post", field="records")
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise ValidationError(f"record {i} is not an object", field=f"records[{i}]")
    return records


def _inference_id(record: Mapping[str, Any], i: int) -> str:
    value = record.get("inference_id")
    if value is None:
        meta = record.get("eventMetadata")
        value = meta.get("eventId") if isinstance(meta, dict) else None
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_ID or not value.isprintable():
        raise ValidationError(
            f"record {i}: inference_id must be 1 to {MAX_ID} printable characters",
            field=f"records[{i}].inference_id",
        )
    return value


def _label(record: Mapping[str, Any], i: int) -> Label:
    inference_id = _inference_id(record, i)
    truth = record.get("groundTruthData")
    if isinstance(truth, dict):
        data, encoding = truth.get("data"), str(truth.get("encoding", "CSV")).upper()
        if not isinstance(data, str) or encoding not in ("CSV", "JSON"):
            raise ValidationError(
                f"record {i}: groundTruthData needs a string data and encoding CSV or JSON",
                field=f"records[{i}].groundTruthData",
            )
        return Label(inference_id, data, encoding)
    if "label" not in record:
        raise ValidationError(f"record {i} has no label", field=f"records[{i}].label")
    value = record["label"]
    if isinstance(value, list):
        if not value or not all(_scalar(v) for v in value):
            raise ValidationError(
                f"record {i}: a list label needs one value per row",
                field=f"records[{i}].label",
            )
        return Label(inference_id, json.dumps(value), "JSON")
    if not _scalar(value) or value == "":
        raise ValidationError(
            f"record {i}: label must be a number, a string, a boolean or a list of them",
            field=f"records[{i}].label",
        )
    return Label(inference_id, str(value).lower() if isinstance(value, bool) else str(value), "CSV")


def _scalar(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, str | int | bool)


def _outcome(record: Mapping[str, Any], i: int) -> Outcome:
    inference_id = _inference_id(record, i)
    nested = record.get("outcomeData")
    data: Mapping[str, Any] = nested if isinstance(nested, dict) else record
    name = data.get("name")
    if not isinstance(name, str) or not 1 <= len(name) <= 128 or not name.isprintable():
        raise ValidationError(
            f"record {i}: name must be 1 to 128 printable characters", field=f"records[{i}].name"
        )
    raw = data.get("value")
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        value = math.nan
    if isinstance(raw, bool) or not math.isfinite(value):
        raise ValidationError(
            f"record {i}: value must be a finite number", field=f"records[{i}].value"
        )
    return Outcome(inference_id, name, value)
