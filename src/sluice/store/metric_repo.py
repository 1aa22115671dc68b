"""The metric history: CloudWatch-style series, stored one row per period.

A series is a metric name in a namespace with a set of dimensions (as CloudWatch names
them: `AWS/SageMaker`, `Invocations`, `EndpointName=...`, `VariantName=...`). Each row holds
the statistics of one period of it (sample count, sum, minimum, maximum) and, when every
value was positive, the values' log-spaced bins (1 % wide, as the gateway counts
latencies), from which any percentile of any span is read back within 0.5 %. Periods are
10 s when written; `roll_up` folds those older than a cut-off into 1 min periods and
`prune` drops what is older than the retention (CloudWatch keeps 10 s data for 3 hours and
1 min data for 15 days).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import Table, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from sluice.gateway.fleet_stats import bin_of, bin_value
from sluice.store.db import Database
from sluice.store.tables import MetricPointRow

Dimensions = tuple[tuple[str, str], ...]
ROWS: Table = MetricPointRow.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class Series:
    namespace: str
    name: str
    dimensions: Dimensions = ()
    """(name, value) pairs, sorted by name (`series()` sorts them)."""

    @property
    def key(self) -> str:
        return json.dumps([list(pair) for pair in self.dimensions], separators=(",", ":"))


def series(namespace: str, name: str, dimensions: Mapping[str, str] | None = None) -> Series:
    return Series(namespace, name, tuple(sorted((dimensions or {}).items())))


@dataclass(frozen=True)
class Period:
    """The statistics of one period of one series."""

    series: Series
    at: datetime
    """The period's start (aligned to `resolution`)."""
    resolution: int
    samples: float
    total: float
    minimum: float
    maximum: float
    unit: str | None = None
    bins: Mapping[int, int] | None = None
    """Log-spaced bins of the values (None: some value was not positive)."""

    def merge(self, other: Period) -> Period:
        bins = None
        if self.bins is not None and other.bins is not None:
            bins = dict(self.bins)
            for index, count in other.bins.items():
                bins[index] = bins.get(index, 0) + count
        return replace(
            self,
            samples=self.samples + other.samples,
            total=self.total + other.total,
            minimum=min(self.minimum, other.minimum),
            maximum=max(self.maximum, other.maximum),
            unit=self.unit or other.unit,
            bins=bins,
        )


def period_of(
    item: Series, at: datetime, resolution: int, values: Iterable[float], unit: str | None = None
) -> Period | None:
    """A period from raw values (None if there are none)."""
    values = list(values)
    if not values:
        return None
    bins: dict[int, int] | None = {}
    for value in values:
        if value <= 0 or bins is None:
            bins = None
            continue
        index = bin_of(value)
        bins[index] = bins.get(index, 0) + 1
    return Period(
        item, align(at, resolution), resolution, float(len(values)), float(sum(values)),
        float(min(values)), float(max(values)), unit, bins,
    )  # fmt: skip


def align(at: datetime, resolution: int) -> datetime:
    """The start of the period of length `resolution` seconds that holds `at`."""
    seconds = math.floor(at.timestamp() / resolution) * resolution
    return datetime.fromtimestamp(seconds, UTC)


@dataclass(frozen=True)
class Datapoint:
    at: datetime
    samples: float
    total: float
    minimum: float
    maximum: float
    unit: str | None = None
    percentiles: dict[float, float | None] = field(default_factory=dict)

    @property
    def average(self) -> float:
        return self.total / self.samples if self.samples else 0.0


class MetricRepository:
    def __init__(self, database: Database) -> None:
        self.db = database

    def add(self, periods: Sequence[Period]) -> None:
        """Store periods, each merged into the stored one of its series and start if any."""
        if not periods:
            return
        merged: dict[tuple[Series, int, datetime], Period] = {}
        for p in periods:
            key = (p.series, p.resolution, p.at)
            merged[key] = merged[key].merge(p) if key in merged else p
        fresh = list(merged.values())
        try:
            # Most periods are new (the sampler's next 10 s): one insert of them all...
            with self.db.engine.begin() as connection:
                connection.execute(insert(ROWS), [_values(p) for p in fresh])
            return
        except IntegrityError:
            pass  # ...else merge each into what is stored
        try:
            self._merge(fresh)
        except IntegrityError:
            self._merge(fresh)  # another server stored one meanwhile

    def _merge(self, periods: list[Period]) -> None:
        by_series: dict[tuple[Series, int], list[Period]] = {}
        for p in periods:
            by_series.setdefault((p.series, p.resolution), []).append(p)
        with self.db.engine.begin() as connection:
            new: list[dict[str, object]] = []
            for (item, resolution), group in by_series.items():
                # The stored periods this group falls on: one range read per series.
                first, last = min(_epoch(p.at) for p in group), max(_epoch(p.at) for p in group)
                stored = {
                    row.at: row
                    for row in connection.execute(
                        select(ROWS).where(
                            *_of(item),
                            ROWS.c.resolution == resolution,
                            ROWS.c.at >= first,
                            ROWS.c.at <= last,
                        )  # fmt: skip
                    )
                }
                for p in group:
                    row = stored.get(_epoch(p.at))
                    if row is None:
                        new.append(_values(p))
                        continue
                    total = _period(row).merge(p)
                    connection.execute(
                        update(ROWS).where(ROWS.c.id == row.id).values(_values(total))
                    )
            if new:
                connection.execute(insert(ROWS), new)

    def datapoints(
        self,
        item: Series,
        start: datetime,
        end: datetime,
        period_s: int,
        percentiles: Sequence[float] = (),
    ) -> list[Datapoint]:
        """The series' statistics per `period_s` from `start` to `end` (periods with no
        data left out), oldest first."""
        base, until = _epoch(start), _epoch(end)
        where = (*_of(item), ROWS.c.at >= base, ROWS.c.at < until)
        bucket = ((ROWS.c.at - base) // period_s).label("bucket")
        with self.db.engine.connect() as connection:
            # The statistics summed in the database, one row per period asked for...
            totals = connection.execute(
                select(
                    bucket,
                    func.sum(ROWS.c.samples),
                    func.sum(ROWS.c.total),
                    func.min(ROWS.c.minimum),
                    func.max(ROWS.c.maximum),
                    func.max(ROWS.c.unit),
                )
                .where(*where)
                .group_by(bucket)
                .order_by(bucket)
            ).all()
            # ...and, for percentiles, the bins of each (none if some period has none).
            found: dict[int, dict[float, float | None]] = {}
            if percentiles:
                found = _percentiles(
                    connection.execute(select(bucket, ROWS.c.bins).where(*where)).all(),
                    percentiles,
                )
        return [
            Datapoint(
                datetime.fromtimestamp(base + number * period_s, UTC),
                samples,
                total,
                low,
                high,
                unit,
                found.get(number, dict.fromkeys(percentiles)),
            )  # fmt: skip
            for number, samples, total, low, high, unit in totals
        ]

    def series(
        self,
        namespace: str | None = None,
        name: str | None = None,
        dimensions: Sequence[tuple[str, str | None]] = (),
    ) -> list[Series]:
        """The series stored, filtered by namespace, name and dimensions (a dimension with
        value None: any value of it)."""
        query = select(
            MetricPointRow.namespace, MetricPointRow.name, MetricPointRow.dimensions
        ).distinct()
        if namespace is not None:
            query = query.where(MetricPointRow.namespace == namespace)
        if name is not None:
            query = query.where(MetricPointRow.name == name)
        with self.db.session() as session:
            found = [
                Series(ns, n, tuple((k, v) for k, v in json.loads(dims)))
                for ns, n, dims in session.execute(query)
            ]
        wanted = list(dimensions)
        return sorted(
            (
                s
                for s in found
                if all(
                    any(k == want and (value is None or v == value) for k, v in s.dimensions)
                    for want, value in wanted
                )
            ),
            key=lambda s: (s.namespace, s.name, s.key),
        )

    def roll_up(self, before: datetime, resolution: int = 60) -> int:
        """Fold the finer periods that start before `before` (cut to a whole period of
        `resolution`) into periods of `resolution` seconds; how many were folded."""
        cut = _epoch(align(before, resolution))
        with self.db.engine.begin() as connection:
            # One statement takes the rows and deletes them: of several servers rolling up
            # at once, each row is folded by exactly one.
            rows = connection.execute(
                delete(ROWS)
                .where(ROWS.c.resolution < resolution, ROWS.c.at < cut)
                .returning(*ROWS.c)
            ).all()
            if not rows:
                return 0
        folded: dict[tuple[Series, datetime], Period] = {}
        for row in rows:
            p = _period(row)
            p = replace(p, at=align(p.at, resolution), resolution=resolution)
            key = (p.series, p.at)
            folded[key] = folded[key].merge(p) if key in folded else p
        self.add(list(folded.values()))
        return len(rows)

    def prune(self, before: datetime) -> int:
        """Drop every period that starts before `before`; how many."""
        with self.db.session() as session:
            done = session.execute(delete(ROWS).where(ROWS.c.at < _epoch(before)))
            session.commit()
            return int(done.rowcount or 0)  # type: ignore[attr-defined]


def _of(item: Series) -> tuple[Any, ...]:
    return (
        ROWS.c.namespace == item.namespace,
        ROWS.c.name == item.name,
        ROWS.c.dimensions == item.key,
    )


def _values(p: Period) -> dict[str, object]:
    return {
        "namespace": p.series.namespace,
        "name": p.series.name,
        "dimensions": p.series.key,
        "resolution": p.resolution,
        "at": _epoch(p.at),
        "samples": p.samples,
        "total": p.total,
        "minimum": p.minimum,
        "maximum": p.maximum,
        "unit": p.unit,
        "bins": pack(p.bins),
    }


_PAIRS = np.dtype([("bin", "<i4"), ("count", "<i4")])
DENSE_CELLS = 4_000_000
"""Percentiles of many periods are read from a period-by-bin table up to this size."""


def pack(bins: Mapping[int, int] | None) -> bytes | None:
    """Bins as stored: (bin, count) pairs of little-endian int32s."""
    if bins is None:
        return None
    return np.array(list(bins.items()), dtype=_PAIRS).tobytes() if bins else b""


def unpack(stored: bytes | None) -> dict[int, int] | None:
    if stored is None:
        return None
    pairs = np.frombuffer(stored, dtype=_PAIRS)
    return dict(zip(pairs["bin"].tolist(), pairs["count"].tolist(), strict=True))


def _percentiles(
    rows: Sequence[tuple[int, bytes | None]], wanted: Sequence[float]
) -> dict[int, dict[float, float | None]]:
    """Per period number, the percentiles of the values binned in its rows (packed), read
    as `fleet_stats.percentile` reads them (the bin holding the rank ceil(q% of the
    count)), every period at once; a period with a row without bins has none."""
    blind = {number for number, packed in rows if packed is None}
    kept = [(number, packed) for number, packed in rows if packed and number not in blind]
    if not kept:
        return {}
    pairs = np.frombuffer(b"".join(packed for _, packed in kept), dtype=_PAIRS)
    sizes = np.array([len(packed) // _PAIRS.itemsize for _, packed in kept])
    numbers, inverse = np.unique(np.array([number for number, _ in kept]), return_inverse=True)
    rows_of = np.repeat(inverse, sizes)  # each pair's period (its index in `numbers`)
    low = int(pairs["bin"].min())
    width = int(pairs["bin"].max()) - low + 1
    if len(numbers) * width <= DENSE_CELLS:
        # Every period's counts in one table (period by bin), summed without sorting.
        table = np.bincount(
            rows_of * width + (pairs["bin"] - low),
            weights=pairs["count"],
            minlength=len(numbers) * width,
        ).reshape(len(numbers), width)
        cumulative = np.cumsum(table, axis=1)
        totals = cumulative[:, -1]
        at_rank = {
            q: (cumulative >= np.maximum(1, np.ceil(q / 100 * totals))[:, None]).argmax(axis=1)
            + low
            for q in wanted
        }
    else:  # values spread too widely for a table: sorted instead
        order = np.lexsort((pairs["bin"], rows_of))
        rows_of, bins = rows_of[order], pairs["bin"][order]
        running = np.cumsum(pairs["count"][order], dtype=np.int64)
        starts = np.searchsorted(rows_of, np.arange(len(numbers)))
        ends = np.append(starts[1:], len(rows_of)) - 1
        before = np.where(starts > 0, running[starts - 1], 0)
        totals = running[ends] - before
        at_rank = {
            q: bins[
                np.minimum(
                    np.searchsorted(running, before + np.maximum(1, np.ceil(q / 100 * totals))),
                    ends,
                )
            ]
            for q in wanted
        }
    out: dict[int, dict[float, float | None]] = {int(n): {} for n in numbers}
    for q, indexes in at_rank.items():
        for number, index in zip(numbers.tolist(), indexes.tolist(), strict=True):
            out[number][q] = bin_value(int(index))
    return out


def _epoch(at: datetime) -> int:
    return math.floor(at.timestamp())


def _period(row: Any) -> Period:
    return Period(
        Series(row.namespace, row.name, tuple((k, v) for k, v in json.loads(row.dimensions))),
        datetime.fromtimestamp(row.at, UTC),
        row.resolution,
        row.samples,
        row.total,
        row.minimum,
        row.maximum,
        row.unit,
        unpack(row.bins),
    )
