"""Captured predictions joined with ground truth posted later, row by row.

The join key is a captured record's inference id, else its event id (SageMaker's rule);
ground truth records carry it as `eventMetadata.eventId`. A request of n rows pairs with
a label of n values. Ground truth is read from every hour folder from the window's start
on, as labels are filed by when they arrived; a later post for the same id wins.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from sluice.monitor.quality import Pairs
from sluice.reports.records import (
    CaptureRecord,
    answer_of,
    canonical,
    capture_records,
    ground_truth_file,
    hour_of,
    jsonl_files,
    split_labels,
)


@dataclass(frozen=True)
class Attributes:
    """Where the prediction sits in a captured output (SageMaker's job input fields).

    `inference`: the member of a JSON output object holding one prediction per row, or the
    column of a CSV output; default: `predictions` (sluice's runtimes) or the first column.
    `probability`: likewise for the positive class's probability; default: the second
    entry of each row of `probabilities` (or its only one). `threshold`: when set, the
    prediction is the positive label exactly when the probability reaches it.
    """

    inference: str | None = None
    probability: str | None = None
    threshold: float | None = None
    positive: str = "1"
    negative: str = "0"


@dataclass
class JoinCounts:
    captured_records: int = 0
    labelled_records: int = 0
    """Captured records whose inference id has ground truth."""
    rows: int = 0
    """Rows paired with a label."""
    unanswered_records: int = 0
    """Labelled records whose output holds no prediction (a failed call, say)."""
    mismatched_records: int = 0
    """Labelled records whose label count differs from their row count."""
    ground_truth_records: int = 0
    unreadable_labels: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class Joined:
    pairs: Pairs
    counts: JoinCounts = field(default_factory=JoinCounts)


def join(
    captures: Sequence[Path],
    ground_truth: Path,
    start: float | None,
    end: float | None,
    attributes: Attributes,
) -> Joined:
    labels = _labels(ground_truth, start)
    counts = JoinCounts(ground_truth_records=labels.records, unreadable_labels=labels.unreadable)
    truth: list[str] = []
    predicted: list[str] = []
    probability: list[float] = []
    for folder in captures:
        for block in capture_records(folder, start, end):
            counts.captured_records += len(block)
            for record in block:
                given = labels.by_key.get(record.key)
                if given is None:
                    continue
                counts.labelled_records += 1
                guesses, scores = _prediction(record, attributes)
                if not guesses:
                    counts.unanswered_records += 1
                elif len(guesses) != len(given):
                    counts.mismatched_records += 1
                else:
                    truth += given
                    predicted += guesses
                    probability += scores
                    counts.rows += len(given)
    return Joined(Pairs(truth, predicted, probability), counts)


@dataclass
class _Labels:
    by_key: dict[str, list[str]] = field(default_factory=dict)
    records: int = 0
    unreadable: int = 0


def _labels(folder: Path, start: float | None) -> _Labels:
    found = _Labels()
    for path in _files_from(folder, start):
        for record in ground_truth_file(path):
            found.records += 1
            data = record.ground_truth_data
            try:
                found.by_key[record.event_metadata.event_id] = split_labels(
                    data.data, data.encoding
                )
            except (msgspec.DecodeError, ValueError):
                found.unreadable += 1
    return found


def _files_from(folder: Path, start: float | None) -> Iterable[Path]:
    for path in jsonl_files(folder):
        hour = hour_of(path, folder)
        if start is None or hour is None or hour + 3600 > start:
            yield path


def _prediction(record: CaptureRecord, attributes: Attributes) -> tuple[list[str], list[float]]:
    """Each row's predicted label and positive-class probability (NaN when not given)."""
    if attributes.inference is None and attributes.probability is None:
        answer = answer_of(record)
        guesses: list[Any] = answer.predictions
        scores = [_positive(row) for row in answer.probabilities or []] or [math.nan] * len(guesses)
    else:
        guesses = _member(record, attributes.inference, "predictions")
        scores = [_positive(v) for v in _member(record, attributes.probability, "probabilities")]
        if not guesses and scores and attributes.threshold is not None:
            guesses = [math.nan] * len(scores)
        if len(scores) != len(guesses):
            scores = [math.nan] * len(guesses)
    if attributes.threshold is not None:
        cut = attributes.threshold
        guesses = [
            g if math.isnan(s) else (attributes.positive if s >= cut else attributes.negative)
            for g, s in zip(guesses, scores, strict=True)
        ]
    return [canonical(g) for g in guesses], scores


def _positive(value: Any) -> float:
    """The positive class's probability from a row: [p0, p1], [p] or p."""
    if isinstance(value, list):
        value = value[1] if len(value) == 2 else value[0] if len(value) == 1 else None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number


def _member(record: CaptureRecord, name: str | None, default: str) -> list[Any]:
    """Per-row values of one member of a JSON output object, or one CSV output column."""
    output = record.capture_data.endpoint_output
    if output is None or record.event_metadata.status != 200:
        return []
    try:
        if output.encoding == "CSV":
            column = int(name) if name is not None and name.isdigit() else 0
            rows = [r for r in csv.reader(io.StringIO(output.data)) if r]
            return [r[column] if column < len(r) else math.nan for r in rows]
        value = msgspec.json.decode(output.raw())
    except (msgspec.DecodeError, ValueError):
        return []
    if isinstance(value, dict):
        found = value.get(name or default)
        if found is None:
            return []
        return found if isinstance(found, list) else [found]
    return value if isinstance(value, list) and name is None else []
