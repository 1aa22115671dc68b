"""The fixed validation set: a CSV (with a header) or JSON Lines file of numeric features
and one label column."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from sluice.errors import ValidationError

MAX_CLASSES = 50
"""A label with at most this many distinct integer or text values is a class."""


@dataclass(frozen=True)
class ValidationSet:
    features: NDArray[np.float64]
    labels: NDArray[np.generic]
    columns: tuple[str, ...]
    """The feature columns, in the order the models receive them."""
    problem: str
    """classification or regression."""

    @property
    def classes(self) -> NDArray[np.generic]:
        return np.unique(self.labels)


def load(path: Path, label: str, problem: str | None = None) -> ValidationSet:
    if not path.is_file():
        raise ValidationError(f"validation data {path} does not exist", field="data")
    rows = _read(path)
    if not rows:
        raise ValidationError(f"validation data {path} has no rows", field="data")
    if label not in rows[0]:
        raise ValidationError(
            f"label column {label!r} is not in {path.name} (columns: {', '.join(rows[0])})",
            field="label",
        )
    columns = tuple(c for c in rows[0] if c != label)
    features = np.empty((len(rows), len(columns)))
    for i, row in enumerate(rows, start=1):
        try:
            features[i - 1] = [float(row[c]) for c in columns]
        except (KeyError, TypeError, ValueError):
            raise ValidationError(
                f"row {i} of {path.name}: every feature must be a number", field="data"
            ) from None
    labels = _labels([row[label] for row in rows])
    chosen = problem or _problem(labels)
    if chosen not in ("classification", "regression"):
        raise ValidationError("problem is classification or regression", field="problem")
    if chosen == "regression" and labels.dtype.kind not in "fi":
        raise ValidationError(f"label {label!r} is not numeric: not a regression", field="label")
    return ValidationSet(features, labels, columns, chosen)


def _read(path: Path) -> list[dict[str, str]]:
    if path.suffix in (".jsonl", ".ndjson"):
        with path.open() as f:
            return [json.loads(line) for line in f if line.strip()]
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _labels(values: list[object]) -> NDArray[np.generic]:
    try:
        numbers = np.array([float(v) for v in values])  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return np.array([str(v) for v in values])
    if np.all(numbers == np.round(numbers)):
        return numbers.astype(np.int64)
    return numbers


def _problem(labels: NDArray[np.generic]) -> str:
    if labels.dtype.kind in "iUO" and len(np.unique(labels)) <= MAX_CLASSES:
        return "classification"
    return "regression"
