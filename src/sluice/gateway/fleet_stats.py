"""What one fleet of a variant answered: cumulative counts and fine latency histograms.

A fleet is the instances of one variant built from one endpoint config (during an update,
the blue fleet runs the old config and the green fleet the new one). The hot path only adds
to running totals; readers take a `snapshot()` and subtract two of them to get any window,
as with Prometheus counters. Latencies go into log-spaced bins (1 % wide), so a window's
percentiles are within 0.5 % and two fleets can be rank-compared bin by bin.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

BINS_PER_E = 100
"""Bins per factor e: neighbouring bins differ by 1 %, a bin's middle is within 0.5 %."""
SMALLEST_S = 1e-6

OK, CLIENT_ERROR, SERVER_ERROR, MODEL_ERROR = 0, 4, 5, 6
"""Outcomes; a model error (the model raised) is also a server error."""


def bin_of(seconds: float) -> int:
    return math.floor(math.log(seconds if seconds > SMALLEST_S else SMALLEST_S) * BINS_PER_E)


def bin_value(index: int) -> float:
    """The middle of a bin (geometric), in seconds."""
    return math.exp((index + 0.5) / BINS_PER_E)


def bin_edge(index: int) -> float:
    """The lower edge of a bin, in seconds."""
    return math.exp(index / BINS_PER_E)


class FleetStats:
    """Running totals of one fleet; `record` is called once per answered request."""

    __slots__ = (
        "errors_4xx", "errors_5xx", "invocations", "model_bins", "model_errors", "overhead_bins",
    )  # fmt: skip

    def __init__(self) -> None:
        self.invocations = 0
        self.errors_4xx = 0
        self.errors_5xx = 0
        self.model_errors = 0
        self.model_bins: dict[int, int] = {}
        self.overhead_bins: dict[int, int] = {}

    def record(self, model_s: float, overhead_s: float | None, outcome: int) -> None:
        self.invocations += 1
        if outcome == SERVER_ERROR:
            self.errors_5xx += 1
        elif outcome == CLIENT_ERROR:
            self.errors_4xx += 1
        elif outcome == MODEL_ERROR:
            self.errors_5xx += 1
            self.model_errors += 1
        bins = self.model_bins
        index = bin_of(model_s)
        bins[index] = bins.get(index, 0) + 1
        if overhead_s is not None:
            bins = self.overhead_bins
            index = bin_of(overhead_s)
            bins[index] = bins.get(index, 0) + 1

    def snapshot(self) -> Window:
        """The totals so far, as a window from the fleet's start to now."""
        return Window(
            self.invocations,
            self.errors_4xx,
            self.errors_5xx,
            dict(self.model_bins),
            dict(self.overhead_bins),
            time.time(),
            self.model_errors,
        )


@dataclass(frozen=True)
class Window:
    """Counts and latency bins over a span of time; `later - earlier` is the span between."""

    invocations: int = 0
    errors_4xx: int = 0
    errors_5xx: int = 0
    model_bins: Mapping[int, int] = field(default_factory=dict)
    overhead_bins: Mapping[int, int] = field(default_factory=dict)
    at: float = 0.0
    """When the window ends (epoch seconds)."""
    model_errors: int = 0
    """Of errors_5xx, those the model raised (SageMaker's InvocationModelErrors)."""

    def __sub__(self, earlier: Window) -> Window:
        return Window(
            self.invocations - earlier.invocations,
            self.errors_4xx - earlier.errors_4xx,
            self.errors_5xx - earlier.errors_5xx,
            _minus(self.model_bins, earlier.model_bins),
            _minus(self.overhead_bins, earlier.overhead_bins),
            self.at,
            self.model_errors - earlier.model_errors,
        )

    def __add__(self, other: Window) -> Window:
        return Window(
            self.invocations + other.invocations,
            self.errors_4xx + other.errors_4xx,
            self.errors_5xx + other.errors_5xx,
            _plus(self.model_bins, other.model_bins),
            _plus(self.overhead_bins, other.overhead_bins),
            max(self.at, other.at),
            self.model_errors + other.model_errors,
        )

    @property
    def errors(self) -> int:
        return self.errors_4xx + self.errors_5xx

    def rate(self, errors: int) -> float | None:
        return errors / self.invocations if self.invocations else None

    def summary(self) -> dict[str, float | int | None]:
        """The figures a person reads: counts, error rates, latency percentiles in ms."""
        return {
            "invocations": self.invocations,
            "errors_4xx": self.errors_4xx,
            "errors_5xx": self.errors_5xx,
            "rate_5xx": self.rate(self.errors_5xx),
            "model_latency_p50_ms": to_ms(percentile(self.model_bins, 50)),
            "model_latency_p99_ms": to_ms(percentile(self.model_bins, 99)),
            "model_latency_mean_ms": to_ms(mean(self.model_bins)),
        }


class Tally:
    """Values of one figure since it was last taken: count, sum, extremes and, while every
    value is positive, their bins."""

    __slots__ = ("bins", "count", "maximum", "minimum", "total")

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0
        self.minimum = math.inf
        self.maximum = -math.inf
        self.bins: dict[int, int] | None = {}

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value
        self.minimum = min(self.minimum, value)
        self.maximum = max(self.maximum, value)
        if self.bins is not None:
            if value > 0:
                index = bin_of(value)
                self.bins[index] = self.bins.get(index, 0) + 1
            else:
                self.bins = None


class Tallies:
    """A fleet's figures beyond its requests' (a multi-model cache's, each container's),
    for the metric history: `add` gathers a figure's values (with dimensions beyond the
    endpoint's and variant's) until `take` hands them over and starts afresh; a gauge is
    read when taken."""

    def __init__(self) -> None:
        self.open: dict[tuple[str, str, tuple[tuple[str, str], ...]], Tally] = {}
        self.gauges: dict[tuple[str, str], Callable[[], float]] = {}

    def add(self, name: str, value: float, unit: str, **dimensions: str) -> None:
        key = (name, unit, tuple(sorted(dimensions.items())))
        tally = self.open.get(key)
        if tally is None:
            tally = self.open[key] = Tally()
        tally.add(value)

    def gauge(self, name: str, unit: str, read: Callable[[], float]) -> None:
        self.gauges[(name, unit)] = read

    def take(self) -> list[tuple[str, str, dict[str, str], Tally]]:
        """(name, unit, dimensions, values) of every figure since the last take."""
        taken, self.open = self.open, {}
        out = [(name, unit, dict(dims), tally) for (name, unit, dims), tally in taken.items()]
        for (name, unit), read in self.gauges.items():
            tally = Tally()
            tally.add(read())
            out.append((name, unit, {}, tally))
        return out


def merge(windows: Iterable[Window]) -> Window:
    total = Window()
    for w in windows:
        total = total + w
    return total


def percentile(bins: Mapping[int, int], q: float) -> float | None:
    """The q-th percentile (0-100) of binned seconds, or None when there are no samples."""
    count = sum(bins.values())
    if count == 0:
        return None
    rank = max(1, math.ceil(q / 100 * count))
    seen = 0
    for index in sorted(bins):
        seen += bins[index]
        if seen >= rank:
            return bin_value(index)
    return bin_value(max(bins))


def mean(bins: Mapping[int, int]) -> float | None:
    count = sum(bins.values())
    if count == 0:
        return None
    return sum(bin_value(i) * n for i, n in bins.items()) / count


def extreme(bins: Mapping[int, int], largest: bool) -> float | None:
    live = [i for i, n in bins.items() if n > 0]
    if not live:
        return None
    return bin_value(max(live) if largest else min(live))


def to_ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 4)


def _minus(later: Mapping[int, int], earlier: Mapping[int, int]) -> dict[int, int]:
    out = {}
    for index, count in later.items():
        left = count - earlier.get(index, 0)
        if left > 0:
            out[index] = left
    return out


def _plus(a: Mapping[int, int], b: Mapping[int, int]) -> dict[int, int]:
    out = dict(a)
    for index, count in b.items():
        out[index] = out.get(index, 0) + count
    return out
