"""Capture to compact columns, one variant at a time, then joins on row keys.

`extract` reads one variant's capture files as a stream (msgspec, a block at a time) and
keeps only numbers: per request its status and latency; per answered row a 64-bit key
(a hash of the inference id and the row), a label code, a numeric value, and the
probabilities when the model gave them. Variants are extracted in parallel processes
when the capture is large. Pairs (shadow tests), ground truth and outcomes are then
joined on the row keys with numpy, so nothing holds a capture in memory.
"""

from __future__ import annotations

import hashlib
import math
import multiprocessing
import os
from array import array
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from sluice.gateway.fleet_stats import BINS_PER_E, SMALLEST_S, FleetStats
from sluice.processes import die_with_parent
from sluice.reports.records import (
    answer_of,
    canonical,
    capture_records,
    ground_truth_records,
    jsonl_files,
    outcome_records,
    split_labels,
)

T = TypeVar("T")
MAX_CLASSES = 1000
"""Beyond this many distinct labels the task is taken to be regression."""
MAX_PROBABILITY_WIDTH = 64
"""Probability vectors wider than this are not kept (top-k overlap is left out)."""
PARALLEL_BYTES = 32 * 1024 * 1024
"""Capture larger than this is extracted in worker processes, a variant each."""


def row_key(key: str, row: int = 0) -> int:
    """A stable 64-bit join key for row `row` of the request with inference id `key`."""
    text = key if row == 0 else f"{key}\x1f{row}"
    return int.from_bytes(
        hashlib.blake2b(text.encode(), digest_size=8).digest(), "little", signed=True
    )


def _value(label: str) -> float:
    try:
        return float(label)
    except ValueError:
        return math.nan


class Vocabulary:
    """Label text to a small integer code."""

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}
        self.labels: list[str] = []

    def code(self, label: str) -> int:
        code = self.codes.get(label)
        if code is None:
            if len(self.labels) >= MAX_CLASSES:
                return -1
            code = self.codes[label] = len(self.labels)
            self.labels.append(label)
        return code

    def remap(self, labels: Sequence[str], codes: np.ndarray) -> np.ndarray:
        """Codes of another vocabulary (its `labels`) as codes of this one."""
        table = np.array([self.code(label) for label in labels] + [-1], dtype=np.int32)
        return table[np.where(codes < 0, len(labels), codes)]


@dataclass
class VariantData:
    """What one variant answered in the window, as columns (picklable between processes)."""

    variant: str
    labels: list[str]
    """This extraction's vocabulary: `codes` index into it (-1: too many labels)."""
    keys: np.ndarray
    codes: np.ndarray
    values: np.ndarray
    row_latency_ms: np.ndarray
    row_request: np.ndarray
    """The key of each row's request (for rows after the first, not the row key)."""
    row_index: np.ndarray
    probabilities: np.ndarray | None
    """Rows x classes (float32), column j being label `probability_labels[j]`; NaN rows
    where a request came without them."""
    probability_labels: list[int]
    request_keys: np.ndarray
    """Every request's key; `answered` marks those with at least one row."""
    answered: np.ndarray
    status: np.ndarray
    latency_ms: np.ndarray
    first: float
    last: float
    fractional: bool
    """Some prediction was a number with a fraction: a regression model."""

    def stats(self) -> FleetStats:
        """The requests as one fleet's totals (counts and 1 %-wide latency bins)."""
        out = FleetStats()
        out.invocations = len(self.status)
        out.errors_4xx = int(np.count_nonzero((self.status >= 400) & (self.status < 500)))
        out.errors_5xx = int(np.count_nonzero(self.status >= 500))
        seconds = self.latency_ms / 1000
        index = np.floor(np.log(np.maximum(seconds, SMALLEST_S)) * BINS_PER_E).astype(np.int64)
        values, counts = np.unique(index, return_counts=True)
        out.model_bins = {int(v): int(c) for v, c in zip(values, counts, strict=True)}
        return out


@dataclass
class _Builder:
    vocabulary: Vocabulary = field(default_factory=Vocabulary)
    coded: dict[tuple[type, Any], tuple[int, float]] = field(default_factory=dict)
    keys: array[int] = field(default_factory=lambda: array("q"))
    codes: array[int] = field(default_factory=lambda: array("i"))
    values: array[float] = field(default_factory=lambda: array("d"))
    row_latency: array[float] = field(default_factory=lambda: array("d"))
    row_request: array[int] = field(default_factory=lambda: array("q"))
    row_index: array[int] = field(default_factory=lambda: array("h"))
    probabilities: array[float] = field(default_factory=lambda: array("f"))
    width: int | None = None
    """Probability vector length seen so far; -1 once they stopped being usable."""
    argmax: array[int] = field(default_factory=lambda: array("i"))
    request_keys: array[int] = field(default_factory=lambda: array("q"))
    answered: array[int] = field(default_factory=lambda: array("b"))
    status: array[int] = field(default_factory=lambda: array("h"))
    latency: array[float] = field(default_factory=lambda: array("d"))
    first: float = math.inf
    last: float = -math.inf
    fractional: bool = False

    def code(self, prediction: Any) -> tuple[int, float]:
        kind = type(prediction)
        cacheable = kind is int or kind is str or kind is float or kind is bool
        coded = self.coded.get((kind, prediction)) if cacheable else None
        if coded is None:
            label = canonical(prediction)
            coded = (self.vocabulary.code(label), _value(label))
            if kind is float and not prediction.is_integer():
                self.fractional = True
            if cacheable and len(self.coded) < MAX_CLASSES:
                self.coded[(kind, prediction)] = coded
        return coded


def extract(folder: Path, variant: str, start: float | None, end: float | None) -> VariantData:
    """One variant's capture in [start, end) as columns."""
    b = _Builder()
    for block in capture_records(folder, start, end):
        for record in block:
            meta = record.event_metadata
            when = record.time()
            b.first = min(b.first, when)
            b.last = max(b.last, when)
            key = record.key
            b.request_keys.append(row_key(key))
            b.status.append(meta.status)
            latency = meta.latency_ms or 0.0
            b.latency.append(latency)
            answer = answer_of(record)
            b.answered.append(1 if answer.predictions else 0)
            probabilities = answer.probabilities
            for row, prediction in enumerate(answer.predictions):
                code, value = b.code(prediction)
                b.keys.append(row_key(key, row) if row else b.request_keys[-1])
                b.codes.append(code)
                b.values.append(value)
                b.row_latency.append(latency)
                b.row_request.append(b.request_keys[-1])
                b.row_index.append(min(row, 32767))
                _add_probabilities(b, probabilities[row] if probabilities else None)
    return _finish(b, variant)


def _add_probabilities(b: _Builder, vector: Any) -> None:
    if b.width == -1:
        return
    if not isinstance(vector, list) or not vector or len(vector) > MAX_PROBABILITY_WIDTH:
        if vector is None and b.width is not None:
            b.probabilities.extend([math.nan] * b.width)
            b.argmax.append(-1)
            return
        b.width = -1
        return
    if b.width is None:
        b.width = len(vector)
        # Rows before the first vector had none.
        b.probabilities.extend([math.nan] * (b.width * (len(b.keys) - 1)))
        b.argmax.extend([-1] * (len(b.keys) - 1))
    if len(vector) != b.width:
        b.width = -1
        return
    try:
        b.probabilities.extend(vector)
    except TypeError:
        b.width = -1
        return
    b.argmax.append(max(range(len(vector)), key=vector.__getitem__))


def _finish(b: _Builder, variant: str) -> VariantData:
    codes = np.frombuffer(b.codes, dtype=np.int32).copy()
    probabilities, probability_labels = None, []
    if b.width is not None and b.width > 0 and len(b.probabilities) == b.width * len(codes):
        matrix = np.frombuffer(b.probabilities, dtype=np.float32).reshape(len(codes), b.width)
        labels = _column_labels(np.frombuffer(b.argmax, dtype=np.int32), codes, b.width)
        if labels is not None:
            probabilities, probability_labels = matrix.copy(), labels
    return VariantData(
        variant,
        b.vocabulary.labels,
        np.frombuffer(b.keys, dtype=np.int64).copy(),
        codes,
        np.frombuffer(b.values, dtype=np.float64).copy(),
        np.frombuffer(b.row_latency, dtype=np.float64).copy(),
        np.frombuffer(b.row_request, dtype=np.int64).copy(),
        np.frombuffer(b.row_index, dtype=np.int16).copy(),
        probabilities,
        probability_labels,
        np.frombuffer(b.request_keys, dtype=np.int64).copy(),
        np.frombuffer(b.answered, dtype=np.int8).astype(bool),
        np.frombuffer(b.status, dtype=np.int16).copy(),
        np.frombuffer(b.latency, dtype=np.float64).copy(),
        b.first,
        b.last,
        b.fractional,
    )


def _column_labels(argmax: np.ndarray, codes: np.ndarray, width: int) -> list[int] | None:
    """Which label each probability column stands for, learnt from each row's argmax and
    its predicted label (models order their classes their own way); None if unclear."""
    out = []
    for column in range(width):
        seen = codes[(argmax == column) & (codes >= 0)]
        if len(seen) == 0:
            return None
        values, counts = np.unique(seen, return_counts=True)
        if counts.max() < 0.99 * len(seen):
            return None
        out.append(int(values[counts.argmax()]))
    return out if len(set(out)) == width else None


def extract_all(
    jobs: Sequence[tuple[Path, str]],
    start: float | None,
    end: float | None,
    meanwhile: Callable[[], T],
) -> tuple[dict[str, VariantData], T]:
    """Extract several variants and run `meanwhile` (say, reading ground truth) alongside:
    in worker processes, a variant each, when the capture is large; else one after another.
    """
    size = sum(p.stat().st_size for folder, _ in jobs for p in jsonl_files(folder))
    workers = min(len(jobs), os.cpu_count() or 1)
    if size < PARALLEL_BYTES or workers < 2:
        data = {name: extract(folder, name, start, end) for folder, name in jobs}
        return data, meanwhile()
    context = multiprocessing.get_context("spawn")  # never fork a server with threads
    with ProcessPoolExecutor(workers, mp_context=context, initializer=die_with_parent) as pool:
        futures = {name: pool.submit(extract, folder, name, start, end) for folder, name in jobs}
        other = meanwhile()
        return {name: future.result() for name, future in futures.items()}, other


# -- ground truth and outcomes, keyed by row


@dataclass(frozen=True)
class KeyedValues:
    """Sorted row keys with one code and one value each (the latest record per row)."""

    keys: np.ndarray
    codes: np.ndarray
    values: np.ndarray

    def __len__(self) -> int:
        return len(self.keys)

    @classmethod
    def empty(cls) -> KeyedValues:
        return cls(np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float64))

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(found mask, codes, values) for each of `keys`."""
        if len(self.keys) == 0:
            missing = np.zeros(len(keys), dtype=bool)
            return missing, np.full(len(keys), -1, np.int32), np.full(len(keys), np.nan)
        at = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        found = self.keys[at] == keys
        return found, np.where(found, self.codes[at], -1), np.where(found, self.values[at], np.nan)


def _latest(keys: array[int], codes: array[int], values: array[float]) -> KeyedValues:
    k = np.frombuffer(keys, dtype=np.int64)
    order = np.argsort(k, kind="stable")
    sorted_keys = k[order]
    last = np.ones(len(order), dtype=bool)
    if len(order) > 1:
        last[:-1] = sorted_keys[1:] != sorted_keys[:-1]
    chosen = order[last]
    return KeyedValues(
        sorted_keys[last],
        np.frombuffer(codes, dtype=np.int32)[chosen],
        np.frombuffer(values, dtype=np.float64)[chosen],
    )


def read_ground_truth(folder: Path, vocabulary: Vocabulary) -> KeyedValues:
    """Every ground-truth record under `folder`, the latest per row."""
    keys, codes, values = array("q"), array("i"), array("d")
    cache: dict[str, tuple[int, float]] = {}
    for record in ground_truth_records(folder):
        truth = record.ground_truth_data
        key = record.event_metadata.event_id
        for row, label in enumerate(split_labels(truth.data, truth.encoding)):
            coded = cache.get(label)
            if coded is None:
                coded = (vocabulary.code(label), _value(label))
                if len(cache) < MAX_CLASSES:
                    cache[label] = coded
            keys.append(row_key(key, row))
            codes.append(coded[0])
            values.append(coded[1])
    return _latest(keys, codes, values)


def read_outcomes(folder: Path) -> dict[str, KeyedValues]:
    """Outcome name -> the latest value per request (outcomes belong to whole requests)."""
    found: dict[str, tuple[array[int], array[int], array[float]]] = {}
    for record in outcome_records(folder):
        keys, codes, values = found.setdefault(
            record.outcome_data.name, (array("q"), array("i"), array("d"))
        )
        keys.append(row_key(record.event_metadata.event_id))
        codes.append(0)
        values.append(record.outcome_data.value)
    return {name: _latest(*columns) for name, columns in found.items()}


def find_inputs(
    folder: Path, wanted: set[int], start: float | None, end: float | None
) -> dict[int, tuple[str, str]]:
    """Request key -> (inference id, request text) for each key in `wanted` (the capture is
    read until all are found)."""
    found: dict[int, tuple[str, str]] = {}
    for block in capture_records(folder, start, end):
        for record in block:
            key = row_key(record.key)
            if key in wanted and key not in found:
                found[key] = (record.key, record.input_text())
                if len(found) == len(wanted):
                    return found
    return found
