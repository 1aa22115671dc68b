"""A KLL quantile sketch (Karnin, Lang and Liberty), the distribution SageMaker's
statistics.json stores for numeric features, in numpy.

Items sit in levels; an item at level h stands for 2**h values. When a level holds more
than its capacity it is sorted and every other item (from a random start) moves up one
level, weighing twice as much. Capacities shrink geometrically (by `c`) below the top
level (`k`), so the sketch holds O(k) items whatever the count, and the rank of any value
is known to within a small multiple of n/k. Batches are added whole: compacting a large
level at once costs one sort and adds the same error as compacting it item by item.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

DEFAULT_K = 4096
"""Rank error about n / 4,000 at 99 % (measured: KS within 5e-4 of exact at 10^6 values)."""
DEFAULT_C = 2 / 3


class KllSketch:
    def __init__(self, k: int = DEFAULT_K, c: float = DEFAULT_C, seed: int = 0) -> None:
        if k < 8 or not 0.5 <= c < 1:
            raise ValueError("a KLL sketch needs k >= 8 and 0.5 <= c < 1")
        self.k = k
        self.c = c
        self.levels: list[NDArray[np.float64]] = [np.empty(0)]
        self.count = 0
        self.rng = np.random.default_rng(seed)

    def capacity(self, level: int) -> int:
        top = len(self.levels) - 1
        return max(2, math.ceil(self.k * self.c ** (top - level)))

    def update(self, values: ArrayLike) -> None:
        """Add values (NaN is not a value: leave missing ones out before)."""
        batch = np.asarray(values, dtype=float).ravel()
        if batch.size == 0:
            return
        if np.isnan(batch).any():
            raise ValueError("NaN cannot go into a quantile sketch")
        self.levels[0] = np.concatenate([self.levels[0], batch])
        self.count += batch.size
        self._compress()

    def merge(self, other: KllSketch) -> None:
        """Add everything `other` summarises (levels add level by level)."""
        while len(self.levels) < len(other.levels):
            self.levels.append(np.empty(0))
        for h, items in enumerate(other.levels):
            self.levels[h] = np.concatenate([self.levels[h], items])
        self.count += other.count
        self._compress()

    def _compress(self) -> None:
        h = 0
        while h < len(self.levels):
            items = self.levels[h]
            if items.size > self.capacity(h):
                items = np.sort(items)
                keep = items.size % 2  # an odd item out stays at this level
                rest, pairs = items[:keep], items[keep:]
                promoted = pairs[int(self.rng.integers(2)) :: 2]
                self.levels[h] = rest
                if h + 1 == len(self.levels):
                    self.levels.append(np.empty(0))
                self.levels[h + 1] = np.concatenate([self.levels[h + 1], promoted])
                h = 0  # capacities below shrink when a level is added: check again
                continue
            h += 1

    def _weighted(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        values = np.concatenate(self.levels)
        weights = np.concatenate([np.full(len(x), 2.0**h) for h, x in enumerate(self.levels)])
        order = np.argsort(values, kind="stable")
        return values[order], np.cumsum(weights[order])

    @property
    def size(self) -> int:
        """Items held (what the sketch costs), not values summarised."""
        return sum(len(x) for x in self.levels)

    def cdf(self, points: ArrayLike) -> NDArray[np.float64]:
        """The share of values <= each point."""
        values, cumulative = self._weighted()
        wanted = np.asarray(points, dtype=float)
        if not len(values):
            return np.zeros(wanted.shape)
        at = np.searchsorted(values, wanted, side="right")
        shares: NDArray[np.float64] = np.where(
            at > 0, cumulative[np.maximum(at - 1, 0)] / cumulative[-1], 0.0
        )
        return shares

    def quantiles(self, shares: ArrayLike) -> NDArray[np.float64]:
        """The values at each share (0 to 1) of the distribution."""
        values, cumulative = self._weighted()
        if not len(values):
            return np.full(np.shape(shares), np.nan)
        wanted = np.asarray(shares, dtype=float) * cumulative[-1]
        at = np.searchsorted(cumulative, wanted, side="left")
        found: NDArray[np.float64] = values[np.minimum(at, len(values) - 1)]
        return found

    def to_dict(self) -> dict[str, Any]:
        """As SageMaker writes it: `{"parameters": {"c", "k"}, "data": [[level 0], ...]}`."""
        return {
            "parameters": {"c": self.c, "k": self.k},
            "data": [items.tolist() for items in self.levels],
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> KllSketch:
        parameters = raw.get("parameters", {})
        sketch = cls(int(parameters.get("k", DEFAULT_K)), float(parameters.get("c", DEFAULT_C)))
        sketch.levels = [np.asarray(level, dtype=float) for level in raw.get("data", [])] or [
            np.empty(0)
        ]
        sketch.count = int(sum(len(x) * 2**h for h, x in enumerate(sketch.levels)))
        return sketch
