"""Per-column accumulators shared by the baseline and the checks.

A block of rows arrives as one Arrow array per column; a profile takes it whole and keeps
only counts, sums and sketches, so any number of rows costs the same memory. Numeric
profiles also count values into the cells of a reference grid when a check gives them one
(monitor/reference.py), which is all a drift distance needs of the current window.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from sluice.monitor.kll import KllSketch

NULL_TEXT = ["", "na", "NA", "nan", "NaN", "NAN", "null", "NULL", "None", "none", "N/A", "n/a"]
"""Spellings of a missing value in text inputs."""
NULL_SET = frozenset(NULL_TEXT)
TEXT_LIMIT = 10_000
"""Distinct values a text profile counts exactly; past it the rarest are folded together."""
DISTINCT_K = 4096
"""Hashes kept to estimate a text column's distinct count once it passes TEXT_LIMIT."""
OTHER = "__other__"

Floats = NDArray[np.float64]


@dataclass(slots=True)
class Numbers:
    """A block of one column as floats: missing values and values that are not numbers are
    NaN; `mismatched` counts the latter, `fractional` the non-whole ones (when asked)."""

    values: Floats
    mismatched: int
    fractional: int


def as_numbers(array: pa.Array | pa.ChunkedArray, whole: bool = True) -> Numbers:
    """A column of any Arrow type as numbers, counting what is not one (and, with `whole`,
    what is not a whole number)."""
    kind = array.type
    if pa.types.is_integer(kind) or pa.types.is_boolean(kind):
        return Numbers(_to_numpy(pc.cast(array, pa.float64())), 0, 0)
    if pa.types.is_null(kind):
        return Numbers(np.full(len(array), np.nan), 0, 0)
    if pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        values = _to_numpy(pc.cast(array, pa.float64()))
    else:
        text = pc.cast(array, pa.string())
        try:
            values = _to_numpy(pc.cast(text, pa.float64()))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            numbers = _parse_one_by_one(text)
            numbers.fractional = _fractional(numbers.values) if whole else 0
            return numbers
    return Numbers(values, 0, _fractional(values) if whole else 0)


def _to_numpy(array: pa.Array | pa.ChunkedArray) -> Floats:
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks() if array.num_chunks != 1 else array.chunk(0)
    values: Floats = array.to_numpy(zero_copy_only=False)
    if values.dtype != np.float64:
        values = values.astype(np.float64)
    if not values.flags.writeable:
        values = values.copy()
    values[np.isinf(values)] = np.nan
    return values


def _parse_one_by_one(text: pa.Array | pa.ChunkedArray) -> Numbers:
    """The slow path, for a block holding at least one value that is not a number."""
    out = np.empty(len(text))
    mismatched = 0
    for i, raw in enumerate(text.to_pylist()):
        if raw is None or raw.strip() in NULL_SET:
            out[i] = math.nan
            continue
        try:
            number = float(raw)
        except ValueError:
            number = math.nan
            mismatched += 1
        out[i] = number if math.isfinite(number) else math.nan
    return Numbers(out, mismatched, 0)


def _fractional(values: Floats) -> int:
    """Values that are not whole (NaN compares unequal to itself: left out by isnan)."""
    return int(np.count_nonzero(values != np.floor(values))) - int(np.isnan(values).sum())


@dataclass
class NumericProfile:
    """Counts, moments, range, ten buckets and optionally a KLL sketch and grid counts.

    Each block is sorted once (NaN sorts last); counts in buckets, grid cells and bounds
    are then binary searches of the block for the edges, not of the edges for each value.
    """

    name: str
    kind: str = "Fractional"
    present: int = 0
    missing: int = 0
    mismatched: int = 0
    fractional: int = 0
    negative: int = 0
    total: float = 0.0
    squares: float = 0.0
    low: float = math.inf
    high: float = -math.inf
    sketch: KllSketch | None = None
    bucket_edges: Floats | None = None
    bucket_counts: NDArray[np.int64] | None = None
    grid: Floats | None = None
    """Sorted distinct points; `grid_counts[i]` counts values v with grid[i-1] < v <=
    grid[i] (the last cell: above every point), so cumulative counts are the CDF there."""
    grid_counts: NDArray[np.int64] | None = None
    under_grid: int = 0
    """Values below the grid's first point."""
    below_grid: float = 0.0
    """Sum of (grid[0] - v) over values under the grid: the exact CDF area there."""
    above_grid: float = 0.0
    bounds: tuple[float, float] | None = None
    outside: int = 0
    """Values outside `bounds`."""
    shift: float = 0.0
    """Subtracted before summing squares (the reference mean when known), for precision."""

    def add(self, block: Numbers) -> None:
        ordered = np.sort(block.values)
        n = int(np.searchsorted(ordered, np.inf, side="right"))
        present = ordered[:n]
        self.missing += ordered.size - n
        self.mismatched += block.mismatched
        self.fractional += block.fractional
        self.present += n
        if not n:
            return
        self.total += float(present.sum())
        self.squares += float(np.square(present - self.shift).sum())
        self.low = min(self.low, float(present[0]))
        self.high = max(self.high, float(present[-1]))
        self.negative += int(np.searchsorted(present, 0.0, side="left"))
        if self.sketch is not None:
            self.sketch.update(present)
        if self.bucket_edges is not None and self.bucket_counts is not None:
            self.bucket_counts += _cells(present, self.bucket_edges[1:-1], side="left")
        if self.grid is not None and self.grid_counts is not None:
            self.grid_counts += _cells(present, self.grid, side="right")
            first, last = float(self.grid[0]), float(self.grid[-1])
            under = int(np.searchsorted(present, first, side="left"))
            self.under_grid += under
            self.below_grid += first * under - float(present[:under].sum())
            over = int(np.searchsorted(present, last, side="right"))
            self.above_grid += float(present[over:].sum()) - last * (n - over)
        if self.bounds is not None:
            low, high = self.bounds
            self.outside += int(np.searchsorted(present, low, side="left"))
            self.outside += n - int(np.searchsorted(present, high, side="right"))

    @property
    def mean(self) -> float:
        return self.total / self.present if self.present else 0.0

    @property
    def std(self) -> float:
        """Population standard deviation."""
        if not self.present:
            return 0.0
        offset = self.mean - self.shift
        return math.sqrt(max(self.squares / self.present - offset**2, 0.0))


def _cells(ordered: Floats, edges: Floats, side: str) -> NDArray[np.int64]:
    """Counts of sorted values between consecutive edges: with side "left", cell i holds
    edges[i-1] <= v < edges[i]; with "right", edges[i-1] < v <= edges[i]. The first and
    last cells are open-ended."""
    cumulative = np.searchsorted(ordered, edges, side=side)  # type: ignore[call-overload]
    counts: NDArray[np.int64] = np.diff(cumulative, prepend=0, append=ordered.size)
    return counts.astype(np.int64)


@dataclass
class TextProfile:
    """Counts of each value, exact up to TEXT_LIMIT distinct values; past that the rarest
    are folded into one count and the distinct count is estimated from hashes."""

    name: str
    present: int = 0
    missing: int = 0
    values: Counter[str] = field(default_factory=Counter)
    folded: int = 0
    """Occurrences of values no longer counted one by one."""
    hashes: set[int] = field(default_factory=set)
    """The DISTINCT_K smallest value hashes seen (a k-minimum-values sketch)."""

    def add(self, array: pa.Array | pa.ChunkedArray) -> None:
        text = pc.cast(array, pa.string()) if array.type != pa.string() else array
        nulls = pc.or_(pc.is_null(text), pc.is_in(text, value_set=pa.array(NULL_TEXT)))
        missing = int(pc.sum(pc.cast(pc.fill_null(nulls, True), pa.int64())).as_py() or 0)
        self.missing += missing
        self.present += len(text) - missing
        counts = pc.value_counts(pc.filter(text, pc.invert(pc.fill_null(nulls, True))))
        values = counts.field("values").to_pylist()
        numbers = counts.field("counts").to_pylist()
        self.values.update(dict(zip(values, numbers, strict=True)))
        self._remember(values)
        if len(self.values) > TEXT_LIMIT:
            kept = self.values.most_common(TEXT_LIMIT // 2)
            self.folded += sum(self.values.values()) - sum(n for _, n in kept)
            self.values = Counter(dict(kept))

    def _remember(self, values: list[str]) -> None:
        if self.folded == 0 and len(self.values) <= DISTINCT_K:
            return  # counted exactly so far; hashes are only needed past the limit
        if not self.hashes and self.folded == 0:
            values = list(self.values)  # the first time: everything seen until now
        for value in values:
            self.hashes.add(_hash(value))
        if len(self.hashes) > DISTINCT_K:
            self.hashes = set(sorted(self.hashes)[:DISTINCT_K])

    @property
    def distinct(self) -> int:
        if self.folded == 0 and len(self.hashes) < DISTINCT_K:
            return len(self.values)
        largest = max(self.hashes) / 2.0**64
        return max(len(self.values), round((DISTINCT_K - 1) / largest))


def _hash(value: str) -> int:
    return int.from_bytes(hashlib.blake2b(value.encode(), digest_size=8).digest(), "little")
