"""One streaming pass over capture: per-variant operational tallies and compact columns.

Nothing holds a whole capture in memory. Each answered row becomes a few numbers in
typed arrays (8 bytes a column): a 64-bit hash of its join key, a label code, a numeric
value and the latency. Shadow copies are paired with the production answer to the same
request as the two streams are read side by side; a record waits for its partner at most
`horizon_s` seconds of capture time (a shadow copy is written a moment after the answer).
Ground truth and outcomes are joined afterwards on the key hashes, vectorised.
"""

from __future__ import annotations

import heapq
import math
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sluice.gateway.fleet_stats import CLIENT_ERROR, OK, SERVER_ERROR, FleetStats
from sluice.reports.records import (
    Answer,
    CaptureRecord,
    answer_of,
    canonical,
    capture_records,
    ground_truth_records,
    outcome_records,
    split_labels,
)

HORIZON_S = 120.0
MAX_CLASSES = 1000
"""Beyond this many distinct labels the task is taken to be regression."""
DISAGREEMENT_SAMPLE = 10


def row_key(key: str, row: int) -> int:
    """The join hash of row `row` of the request with join key `key` (per process)."""
    return hash(key) if row == 0 else hash((key, row))


class Vocabulary:
    """Label text to a small integer code, shared by predictions and ground truth."""

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}
        self.labels: list[str] = []
        self.overflow = False

    def code(self, label: str) -> int:
        code = self.codes.get(label)
        if code is None:
            if len(self.labels) >= MAX_CLASSES:
                self.overflow = True
                return -1
            code = self.codes[label] = len(self.labels)
            self.labels.append(label)
        return code


def _value(label: str) -> float:
    try:
        return float(label)
    except ValueError:
        return math.nan


@dataclass
class Columns:
    """Rows of one variant (or one side of the pairs), appended as they are read."""

    keys: array[int] = field(default_factory=lambda: array("q"))
    codes: array[int] = field(default_factory=lambda: array("i"))
    values: array[float] = field(default_factory=lambda: array("d"))
    latency_ms: array[float] = field(default_factory=lambda: array("d"))

    def add(self, key: int, code: int, value: float, latency_ms: float) -> None:
        self.keys.append(key)
        self.codes.append(code)
        self.values.append(value)
        self.latency_ms.append(latency_ms)

    def __len__(self) -> int:
        return len(self.keys)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return (
            np.frombuffer(self.keys, dtype=np.int64),
            np.frombuffer(self.codes, dtype=np.int32),
            np.frombuffer(self.values, dtype=np.float64),
            np.frombuffer(self.latency_ms, dtype=np.float64),
        )


@dataclass
class Tally:
    """Operational figures of one variant over the window."""

    stats: FleetStats = field(default_factory=FleetStats)
    first: float = math.inf
    last: float = -math.inf
    rows: int = 0
    """Answered rows (a request may carry several)."""
    fractional: bool = False
    """Some prediction was a number with a fraction: a regression model."""

    def add(self, record: CaptureRecord, when: float) -> None:
        meta = record.event_metadata
        status = meta.status
        outcome = OK if status < 400 else CLIENT_ERROR if status < 500 else SERVER_ERROR
        latency = meta.latency_ms if meta.latency_ms is not None else 0.0
        self.stats.record(latency / 1000, None, outcome)
        self.first = min(self.first, when)
        self.last = max(self.last, when)


@dataclass
class Disagreement:
    score: float
    key: str
    row: int
    baseline: str
    candidate: str
    input: str


@dataclass
class Pairs:
    """Baseline and candidate answers to the same rows, plus what only pairs can tell."""

    baseline: Columns = field(default_factory=Columns)
    candidate: Columns = field(default_factory=Columns)
    top_k_overlap: array[float] = field(default_factory=lambda: array("d"))
    """Per pair: the share of the top k classes both put first (NaN without probabilities)."""
    errored: int = 0
    """Requests both received where one side failed (not in the columns)."""
    unmatched_candidate: int = 0
    worst: list[tuple[float, int, Disagreement]] = field(default_factory=list)
    """A min-heap of the pairs that disagree most."""
    top_k: int = 0


class Collector:
    """Reads capture of one endpoint's variants and fills tallies, columns and pairs."""

    def __init__(self, vocabulary: Vocabulary, horizon_s: float = HORIZON_S) -> None:
        self.vocabulary = vocabulary
        self.horizon_s = horizon_s
        self.tallies: dict[str, Tally] = {}
        self.class_of: dict[str, dict[int, int]] = {}
        """Per variant: probability index -> label code, learnt from (argmax, label)."""
        self._seq = 0

    # -- unpaired: each variant on its own (A/B tests)

    def read_variant(
        self, folder: Path, variant: str, start: float | None, end: float | None
    ) -> Columns:
        columns = Columns()
        tally = self.tallies.setdefault(variant, Tally())
        for block in capture_records(folder, start, end):
            for record in block:
                tally.add(record, record.time())
                self._rows(variant, record, answer_of(record), columns)
        return columns

    def _rows(self, variant: str, record: CaptureRecord, answer: Answer, into: Columns) -> None:
        key = record.key
        latency = record.event_metadata.latency_ms or 0.0
        tally = self.tallies[variant]
        for row, prediction in enumerate(answer.predictions):
            label = canonical(prediction)
            value = _value(label)
            if not tally.fractional and isinstance(prediction, float):
                tally.fractional = not prediction.is_integer()
            into.add(row_key(key, row), self.vocabulary.code(label), value, latency)
            tally.rows += 1

    # -- paired: production and shadow answers to the same requests

    def read_pairs(
        self,
        baseline_folder: Path,
        baseline: str,
        candidate_folder: Path,
        candidate: str,
        start: float | None,
        end: float | None,
    ) -> Pairs:
        pairs = Pairs()
        for name in (baseline, candidate):
            self.tallies.setdefault(name, Tally())
        waiting: tuple[dict[str, tuple[float, CaptureRecord]], ...] = ({}, {})
        streams = (
            _records(capture_records(baseline_folder, start, end)),
            _records(capture_records(candidate_folder, start, end)),
        )
        heads: list[tuple[float, CaptureRecord] | None] = [next(s, None) for s in streams]
        names = (baseline, candidate)
        while heads[0] is not None or heads[1] is not None:
            # Read the side that is behind in capture time, so partners meet while waiting.
            first, second = heads
            side = 0 if second is None or (first is not None and first[0] <= second[0]) else 1
            head = heads[side]
            assert head is not None
            when, record = head
            heads[side] = next(streams[side], None)
            self.tallies[names[side]].add(record, when)
            other = waiting[1 - side].pop(record.key, None)
            if other is None:
                waiting[side][record.key] = (when, record)
            else:
                base, cand = (record, other[1]) if side == 0 else (other[1], record)
                self._pair(pairs, names, base, cand)
            self._expire(waiting, pairs, names, when - self.horizon_s)
        self._expire(waiting, pairs, names, math.inf)
        return pairs

    def _expire(
        self,
        waiting: tuple[dict[str, tuple[float, CaptureRecord]], ...],
        pairs: Pairs,
        names: tuple[str, str],
        before: float,
    ) -> None:
        """Give up on records older than `before`: their partner will not come."""
        for side in (0, 1):
            pending = waiting[side]
            while pending:
                key = next(iter(pending))
                when, record = pending[key]
                if when >= before:
                    break
                del pending[key]
                if side == 0:  # a production answer the shadow never got (not sampled, shed)
                    self._rows(names[0], record, answer_of(record), Columns())
                else:
                    pairs.unmatched_candidate += 1
                    self._rows(names[1], record, answer_of(record), Columns())

    def _pair(
        self, pairs: Pairs, names: tuple[str, str], base: CaptureRecord, cand: CaptureRecord
    ) -> None:
        a, b = answer_of(base), answer_of(cand)
        if not a.predictions or not b.predictions or len(a.predictions) != len(b.predictions):
            pairs.errored += 1
            self._rows(names[0], base, a, Columns())
            self._rows(names[1], cand, b, Columns())
            return
        self._rows(names[0], base, a, pairs.baseline)
        self._rows(names[1], cand, b, pairs.candidate)
        n = len(a.predictions)
        codes_a = pairs.baseline.codes[-n:]
        codes_b = pairs.candidate.codes[-n:]
        values_a = pairs.baseline.values[-n:]
        values_b = pairs.candidate.values[-n:]
        for row in range(n):
            overlap, score = math.nan, 0.0
            if a.probabilities is not None and b.probabilities is not None:
                pa = self._by_label(names[0], a.probabilities[row], codes_a[row])
                pb = self._by_label(names[1], b.probabilities[row], codes_b[row])
                if pa is not None and pb is not None:
                    overlap, score = _overlap_and_distance(pa, pb, pairs)
            if codes_a[row] != codes_b[row]:
                if score == 0.0:
                    gap = abs(values_a[row] - values_b[row])
                    score = gap if math.isfinite(gap) else 1.0
                self._remember(pairs, base, row, codes_a[row], codes_b[row], score)
            pairs.top_k_overlap.append(overlap)

    def _by_label(
        self, variant: str, probabilities: list[float], code: int
    ) -> dict[int, float] | None:
        """Probabilities keyed by label code; the index order is learnt from each answer's
        argmax and its label (models list classes in their own order)."""
        if not probabilities:
            return None
        mapping = self.class_of.setdefault(variant, {})
        best = max(range(len(probabilities)), key=probabilities.__getitem__)
        known = mapping.get(best)
        if known is None:
            mapping[best] = code
        elif known != code:
            return None
        if len(mapping) < len(probabilities):
            return None  # not every class seen as an argmax yet
        return {mapping[i]: p for i, p in enumerate(probabilities)}

    def _remember(
        self, pairs: Pairs, base: CaptureRecord, row: int, a: int, b: int, score: float
    ) -> None:
        self._seq += 1
        heap = pairs.worst
        if len(heap) >= DISAGREEMENT_SAMPLE and score <= heap[0][0]:
            return
        labels = self.vocabulary.labels
        item = Disagreement(
            score,
            base.key,
            row,
            labels[a] if a >= 0 else "?",
            labels[b] if b >= 0 else "?",
            base.input_text(),
        )
        entry = (score, self._seq, item)
        if len(heap) < DISAGREEMENT_SAMPLE:
            heapq.heappush(heap, entry)
        else:
            heapq.heapreplace(heap, entry)


def _overlap_and_distance(
    pa: dict[int, float], pb: dict[int, float], pairs: Pairs
) -> tuple[float, float]:
    k = min(3, len(pa))
    pairs.top_k = max(pairs.top_k, k)
    top_a = sorted(pa, key=pa.__getitem__, reverse=True)[:k]
    top_b = sorted(pb, key=pb.__getitem__, reverse=True)[:k]
    overlap = len(set(top_a) & set(top_b)) / k
    distance = 0.5 * sum(abs(pa.get(c, 0.0) - pb.get(c, 0.0)) for c in set(pa) | set(pb))
    return overlap, distance


def _records(blocks: Iterator[list[CaptureRecord]]) -> Iterator[tuple[float, CaptureRecord]]:
    for block in blocks:
        for record in block:
            yield record.time(), record


# -- ground truth and outcomes, keyed by row hash


@dataclass(frozen=True)
class KeyedValues:
    """Sorted row hashes with one code and one value each (the latest record per row)."""

    keys: np.ndarray
    codes: np.ndarray
    values: np.ndarray

    def __len__(self) -> int:
        return len(self.keys)

    def lookup(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(found mask, codes, values) for each of `keys`."""
        if len(self.keys) == 0:
            empty = np.zeros(len(keys), dtype=bool)
            return empty, np.full(len(keys), -1, np.int32), np.full(len(keys), np.nan)
        at = np.searchsorted(self.keys, keys)
        at = np.minimum(at, len(self.keys) - 1)
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
    for record in ground_truth_records(folder):
        truth = record.ground_truth_data
        key = record.event_metadata.event_id
        for row, label in enumerate(split_labels(truth.data, truth.encoding)):
            keys.append(row_key(key, row))
            codes.append(vocabulary.code(label))
            values.append(_value(label))
    return _latest(keys, codes, values)


def read_outcomes(folder: Path) -> dict[str, KeyedValues]:
    """Outcome name -> the latest value per request (an outcome belongs to row 0)."""
    found: dict[str, tuple[array[int], array[int], array[float]]] = {}
    for record in outcome_records(folder):
        keys, codes, values = found.setdefault(
            record.outcome_data.name, (array("q"), array("i"), array("d"))
        )
        keys.append(row_key(record.event_metadata.event_id, 0))
        codes.append(0)
        values.append(record.outcome_data.value)
    return {name: _latest(*columns) for name, columns in found.items()}
