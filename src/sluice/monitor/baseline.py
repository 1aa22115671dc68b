"""A baseline from training data: per-feature statistics as sketches and suggested
constraints, written as SageMaker Model Monitor's `statistics.json` and `constraints.json`.

Two streaming passes over the file, a block of rows at a time, so the data is never held
whole: the first settles each column's type (unless a schema gives it) and its range, the
second counts, sums and sketches. Numeric columns keep a KLL sketch (monitor/kll.py) and
SageMaker's ten equal-width buckets; text columns keep the count of each value.
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sluice.errors import ValidationError
from sluice.monitor.kll import KllSketch

BLOCK_ROWS = 65_536
BUCKETS = 10
"""SageMaker materialises numeric distributions in 10 buckets."""
MAX_DOMAIN = 20
"""A text column with at most this many distinct values gets a domain constraint."""
MISSING = {"", "na", "nan", "null", "none"}
TYPES = ("Integral", "Fractional", "String")


@dataclass
class _Column:
    name: str
    kind: str = "Integral"
    present: int = 0
    missing: int = 0
    low: float = math.inf
    high: float = -math.inf
    total: float = 0.0
    squares: float = 0.0
    sketch: KllSketch = field(default_factory=KllSketch)
    buckets: np.ndarray = field(default_factory=lambda: np.zeros(BUCKETS, dtype=np.int64))
    values: Counter[str] = field(default_factory=Counter)


def baseline(
    path: Path, schema: Mapping[str, str] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(statistics.json, constraints.json) for the CSV (with a header) or JSON Lines file."""
    if not path.is_file():
        raise ValidationError(f"training data {path} does not exist", field="data")
    columns = _first_pass(path, schema)
    rows = 0
    for block in _blocks(path, [c.name for c in columns]):
        rows += len(block)
        for index, column in enumerate(columns):
            raw = [row[index] for row in block]
            if column.kind == "String":
                _add_text(column, raw)
            else:
                _add_numbers(column, raw)
    return _statistics(columns, rows), _constraints(columns)


def _first_pass(path: Path, schema: Mapping[str, str] | None) -> list[_Column]:
    columns: list[_Column] | None = None
    for block in _blocks(path, None):
        if columns is None:
            columns = [_Column(name) for name in block[0]]
            block = block[1:]
            for column in columns:
                if schema and column.name in schema:
                    if schema[column.name] not in TYPES:
                        raise ValidationError(
                            f"schema type of {column.name!r} must be one of {', '.join(TYPES)}",
                            field="schema",
                        )
                    column.kind = schema[column.name]
        for index, column in enumerate(columns):
            if column.kind == "String":
                continue
            numbers = _numbers([row[index] for row in block])  # parsed once per block
            given = schema is not None and column.name in schema
            if numbers is None and given:
                raise ValidationError(
                    f"column {column.name!r} is {column.kind} by the schema but holds text",
                    field="schema",
                )
            if not given:
                column.kind = _infer(column.kind, numbers)
            if numbers is not None:
                _range(column, numbers)
    if not columns:
        raise ValidationError(f"training data {path} is empty", field="data")
    return columns


def _infer(kind: str, numbers: np.ndarray | None) -> str:
    """The column's type so far, given the next block's values (None: one was text)."""
    if numbers is None:
        return "String"
    if kind == "Integral" and np.all(numbers[~np.isnan(numbers)] % 1 == 0):
        return "Integral"
    return "Fractional"


def _numbers(raw: list[str]) -> np.ndarray | None:
    """The values as floats (missing ones NaN), or None when one is not a number."""
    try:
        return np.array(
            [math.nan if str(v).strip().lower() in MISSING else float(v) for v in raw],
            dtype=float,
        )
    except (TypeError, ValueError):
        return None


def _range(column: _Column, numbers: np.ndarray) -> None:
    present = numbers[~np.isnan(numbers)]
    if present.size:
        column.low = min(column.low, float(present.min()))
        column.high = max(column.high, float(present.max()))


def _add_numbers(column: _Column, raw: list[str]) -> None:
    numbers = _numbers(raw)
    assert numbers is not None  # the first pass saw every value
    present = numbers[~np.isnan(numbers)]
    column.missing += numbers.size - present.size
    column.present += present.size
    column.total += float(present.sum())
    column.squares += float((present**2).sum())
    column.sketch.update(present)
    if present.size:
        edges = _edges(column)
        counts, _ = np.histogram(present, bins=edges)
        column.buckets += counts


def _add_text(column: _Column, raw: list[str]) -> None:
    for value in raw:
        text = "" if value is None else str(value)
        if text.strip().lower() in MISSING:
            column.missing += 1
        else:
            column.present += 1
            column.values[text] += 1


def _edges(column: _Column) -> np.ndarray:
    high = column.high if column.high > column.low else column.low + 1
    return np.linspace(column.low, high, BUCKETS + 1)


def _statistics(columns: list[_Column], rows: int) -> dict[str, Any]:
    features = []
    for column in columns:
        common = {"num_present": column.present, "num_missing": column.missing}
        if column.kind == "String":
            features.append(
                {
                    "name": column.name,
                    "inferred_type": "String",
                    "string_statistics": {
                        "common": common,
                        "distinct_count": len(column.values),
                        "distribution": {
                            "categorical": {
                                "buckets": [
                                    {"value": v, "count": n} for v, n in column.values.most_common()
                                ]
                            }
                        },
                    },
                }
            )
            continue
        n = column.present
        mean = column.total / n if n else 0.0
        variance = max(column.squares / n - mean**2, 0.0) if n else 0.0
        edges = _edges(column) if n else np.zeros(BUCKETS + 1)
        features.append(
            {
                "name": column.name,
                "inferred_type": column.kind,
                "numerical_statistics": {
                    "common": common,
                    "mean": mean,
                    "sum": column.total,
                    "std_dev": math.sqrt(variance),
                    "min": column.low if n else 0.0,
                    "max": column.high if n else 0.0,
                    "distribution": {
                        "kll": {
                            "buckets": [
                                {
                                    "lower_bound": float(edges[i]),
                                    "upper_bound": float(edges[i + 1]),
                                    "count": float(column.buckets[i]),
                                }
                                for i in range(BUCKETS)
                            ],
                            "sketch": column.sketch.to_dict(),
                        }
                    },
                },
            }
        )
    return {"version": 0, "dataset": {"item_count": rows}, "features": features}


def _constraints(columns: list[_Column]) -> dict[str, Any]:
    features = []
    for column in columns:
        rows = column.present + column.missing
        feature: dict[str, Any] = {
            "name": column.name,
            "inferred_type": column.kind,
            "completeness": column.present / rows if rows else 0.0,
        }
        if column.kind != "String":
            feature["num_constraints"] = {"is_non_negative": bool(column.low >= 0)}
        elif len(column.values) <= MAX_DOMAIN:
            feature["string_constraints"] = {"domains": sorted(column.values)}
        features.append(feature)
    return {
        "version": 0,
        "features": features,
        "monitoring_config": {
            "evaluate_constraints": "Enabled",
            "emit_metrics": "Enabled",
            "datatype_check_threshold": 0.1,
            "domain_content_threshold": 0.1,
            "distribution_constraints": {
                "perform_comparison": "Enabled",
                "comparison_threshold": 0.1,
                "comparison_method": "Robust",
                "categorical_comparison_threshold": 0.1,
                "categorical_drift_method": "LInfinity",
            },
        },
    }


def _blocks(path: Path, names: list[str] | None) -> Iterator[list[list[str]]]:
    """Rows in blocks; for CSV the header is the first row of the first block when `names`
    is None (the first pass) and skipped otherwise. JSON Lines rows follow the first
    record's keys."""
    if path.suffix in (".jsonl", ".ndjson", ".json"):
        yield from _json_blocks(path, names)
        return
    with path.open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            return
        block: list[list[str]] = [header] if names is None else []
        for row in reader:
            if len(row) != len(header):
                raise ValidationError(
                    f"{path.name} line {reader.line_num}: {len(row)} fields, the header has "
                    f"{len(header)}",
                    field="data",
                )
            block.append(row)
            if len(block) >= BLOCK_ROWS:
                yield block
                block = []
        if block:
            yield block


def _json_blocks(path: Path, names: list[str] | None) -> Iterator[list[list[str]]]:
    keys = names
    block: list[list[str]] = []
    with path.open() as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                raise ValidationError(
                    f"{path.name} line {number} is not JSON", field="data"
                ) from None
            if keys is None:
                keys = list(record)
                block.append(keys)
            block.append(["" if record.get(k) is None else str(record[k]) for k in keys])
            if len(block) >= BLOCK_ROWS:
                yield block
                block = []
    if block:
        yield block
