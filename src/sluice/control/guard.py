"""The comparative guard's statistics: is green significantly worse than blue, beyond a margin?

Both fleets are measured over the same window of the same step, so they see the same
traffic mix. Three one-sided checks, each at level `alpha`:

- server-side error rate: Fisher's exact test (exact at any count, so a handful of errors
  on a mostly-zero metric cannot trip it) and the lower bound of Newcombe's hybrid score
  interval for the difference, which must clear the margin;
- latency shift: Mann-Whitney U with ties (binned latencies tie within 1 %), green scaled
  down by (1 + margin) against blue;
- latency tail: a bootstrap lower bound on green's tail percentile over blue's, which must
  exceed 1 + margin (a rank test alone misses a tail that grows while the median holds).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

from sluice.control.policies import ComparativeGuard
from sluice.gateway.fleet_stats import BINS_PER_E, Window, bin_value, percentile

BOOTSTRAP_SAMPLES = 1000
MIN_TAIL_SAMPLES = 5
"""A tail percentile is compared only when each fleet has this many samples beyond it."""


@dataclass(frozen=True)
class Check:
    name: str
    worse: bool
    decided: bool
    """False when there were too few requests to test."""
    detail: str
    p_value: float | None = None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def compare(blue: Window, green: Window, guard: ComparativeGuard, alpha: float) -> list[Check]:
    """Every check of green against blue, each at level `alpha` (already split over looks)."""
    return [
        error_rate(
            green.errors_5xx,
            green.invocations,
            blue.errors_5xx,
            blue.invocations,
            guard.error_rate_margin,
            alpha,
            guard.minimum_requests,
        ),
        latency_shift(
            blue.model_bins, green.model_bins, guard.latency_margin, alpha, guard.minimum_requests
        ),
        latency_tail(
            blue.model_bins,
            green.model_bins,
            guard.latency_percentile,
            guard.latency_margin,
            alpha,
            guard.minimum_requests,
        ),
    ]


def error_rate(
    green_errors: int,
    green_n: int,
    blue_errors: int,
    blue_n: int,
    margin: float,
    alpha: float,
    minimum: int = 1,
) -> Check:
    name = "5xx error rate"
    if green_n < minimum or blue_n < minimum:
        return Check(name, False, False, f"too few requests (green {green_n}, blue {blue_n})")
    table = [[green_errors, green_n - green_errors], [blue_errors, blue_n - blue_errors]]
    from scipy import stats  # lazily: the server starts without scipy

    p = float(stats.fisher_exact(table, alternative="greater").pvalue)
    lower = newcombe_lower(green_errors, green_n, blue_errors, blue_n, alpha)
    worse = p < alpha and lower > margin
    detail = (
        f"green {green_errors}/{green_n} ({green_errors / green_n:.2%}) vs blue "
        f"{blue_errors}/{blue_n} ({blue_errors / blue_n:.2%}); Fisher p={p:.3g}, "
        f"difference at least {lower:+.2%} (margin {margin:.2%})"
    )
    return Check(name, worse, True, detail, p)


def newcombe_lower(
    green_errors: int, green_n: int, blue_errors: int, blue_n: int, alpha: float
) -> float:
    """One-sided lower bound of p_green - p_blue (Newcombe's hybrid score, method 10)."""
    from scipy import stats  # lazily: the server starts without scipy

    z = float(stats.norm.ppf(1 - alpha))
    pg, pb = green_errors / green_n, blue_errors / blue_n
    green_low, _ = wilson(green_errors, green_n, z)
    _, blue_high = wilson(blue_errors, blue_n, z)
    return pg - pb - math.sqrt((pg - green_low) ** 2 + (blue_high - pb) ** 2)


def wilson(successes: int, n: int, z: float) -> tuple[float, float]:
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def latency_shift(
    blue: Mapping[int, int],
    green: Mapping[int, int],
    margin: float,
    alpha: float,
    minimum: int = 1,
) -> Check:
    """Mann-Whitney U (normal approximation with tie correction) on binned latencies."""
    name = "latency shift"
    n_blue, n_green = sum(blue.values()), sum(green.values())
    if n_blue < minimum or n_green < minimum:
        return Check(name, False, False, f"too few requests (green {n_green}, blue {n_blue})")
    offset = round(math.log1p(margin) * BINS_PER_E)
    shifted = {i - offset: c for i, c in green.items()}
    index = sorted(set(blue) | set(shifted))
    b = np.array([blue.get(i, 0) for i in index], dtype=float)
    g = np.array([shifted.get(i, 0) for i in index], dtype=float)
    below = np.concatenate(([0.0], np.cumsum(b)[:-1]))
    u = float(np.sum(g * below + 0.5 * g * b))
    total = n_blue + n_green
    ties = float(np.sum((b + g) ** 3 - (b + g)))
    variance = n_blue * n_green / 12 * ((total + 1) - ties / (total * (total - 1)))
    if variance <= 0:
        return Check(name, False, True, "every latency falls in one bin: no shift", 1.0)
    z = (u - n_blue * n_green / 2 - 0.5) / math.sqrt(variance)
    from scipy import stats  # lazily: the server starts without scipy

    p = float(stats.norm.sf(z))
    share = u / (n_blue * n_green)
    detail = (
        f"P(green slowed by {margin:.0%} margin > blue) = {share:.3f} over {n_green} green and "
        f"{n_blue} blue requests; Mann-Whitney p={p:.3g}; medians green "
        f"{_ms(percentile(green, 50))} vs blue {_ms(percentile(blue, 50))}"
    )
    return Check(name, p < alpha, True, detail, p)


def latency_tail(
    blue: Mapping[int, int],
    green: Mapping[int, int],
    q: float,
    margin: float,
    alpha: float,
    minimum: int = 1,
    samples: int = BOOTSTRAP_SAMPLES,
) -> Check:
    """Bootstrap (multinomial over bins) lower bound of green's p-q over blue's."""
    name = f"latency p{q:g}"
    n_blue, n_green = sum(blue.values()), sum(green.values())
    needed = max(minimum, math.ceil(MIN_TAIL_SAMPLES / (1 - q / 100)))
    if n_blue < needed or n_green < needed:
        return Check(
            name,
            False,
            False,
            f"too few requests for p{q:g} (green {n_green}, blue {n_blue}; needs {needed} each)",
        )
    rng = np.random.default_rng(0)
    ratio = _bootstrap_quantile(green, q, rng, samples) / _bootstrap_quantile(blue, q, rng, samples)
    lower = float(np.quantile(ratio, alpha))
    observed_g, observed_b = percentile(green, q), percentile(blue, q)
    assert observed_g is not None and observed_b is not None
    worse = lower > 1 + margin
    detail = (
        f"p{q:g} green {_ms(observed_g)} vs blue {_ms(observed_b)}; ratio at least {lower:.2f} "
        f"(margin {1 + margin:.2f}x)"
    )
    return Check(name, worse, True, detail, float(np.mean(ratio <= 1 + margin)))


def _bootstrap_quantile(
    bins: Mapping[int, int], q: float, rng: np.random.Generator, samples: int
) -> np.ndarray:
    index = np.array(sorted(bins))
    counts = np.array([bins[i] for i in index], dtype=float)
    n = int(counts.sum())
    draws = rng.multinomial(n, counts / n, size=samples).cumsum(axis=1)
    rank = max(1, math.ceil(q / 100 * n))
    position = (draws < rank).sum(axis=1)
    values = np.array([bin_value(int(i)) for i in index])
    chosen: np.ndarray = values[np.minimum(position, len(values) - 1)]
    return chosen


def _ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1000:.2f} ms"
