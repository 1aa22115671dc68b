"""Distances between a reference distribution and a current window, from what the
profiles keep: the reference CDF at its grid points against the window's counts in the
same cells (numeric), or the two sets of category counts (text).

Numeric: Kolmogorov-Smirnov D (SageMaker's `linf_simple`) with its asymptotic p-value and
`linf_robust` (D less its critical value at c = 1.8), Wasserstein-1 normalised by the
reference's standard deviation, and PSI over the reference's deciles.
Categorical: the largest gap between category shares (SageMaker's `LInfinity`), its robust
form, chi-square homogeneity, Jensen-Shannon distance and PSI.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import special, stats
from scipy.spatial import distance

ROBUST_C = 1.8
"""Deequ's c(alpha) for `linf_robust` (alpha about 0.003)."""
PSI_FLOOR = 1e-4
"""Shares below this count as this in PSI, so an empty bin does not make it infinite."""

Floats = NDArray[np.float64]


def critical_distance(n: int, m: int, c: float = ROBUST_C) -> float:
    """The KS distance two samples of sizes n and m reach by chance at level c(alpha)."""
    if n <= 0 or m <= 0:
        return math.inf
    return c * math.sqrt((n + m) / (n * m))


def ks_p_value(d: float, n: int, m: int) -> float:
    """Two-sided asymptotic p-value of the two-sample KS distance."""
    if n <= 0 or m <= 0:
        return 1.0
    effective = n * m / (n + m)
    return float(special.kolmogorov(d * math.sqrt(effective)))


def numeric_distances(
    grid: Floats,
    reference_cdf: Floats,
    reference_count: int,
    reference_std: float,
    deciles: NDArray[np.int64],
    counts: NDArray[np.int64],
    below: float,
    above: float,
) -> dict[str, Any]:
    """Distances of a window (`counts` per grid cell, `below`/`above`: the summed distance
    of values beyond the grid's ends) from the reference (its CDF at the grid points)."""
    m = int(counts.sum())
    current_cdf = np.cumsum(counts[:-1]) / m
    gaps = np.abs(reference_cdf - current_cdf)
    d = float(gaps.max())
    widths = np.diff(grid)
    inside = float((gaps[:-1] * widths).sum())
    wasserstein = inside + (below + above) / m
    critical = critical_distance(reference_count, m)
    reference_bins = np.diff(np.concatenate([[0.0], reference_cdf[deciles], [1.0]]))
    current_bins = np.diff(np.concatenate([[0.0], current_cdf[deciles], [1.0]]))
    return {
        "ks": d,
        "ks_p_value": ks_p_value(d, reference_count, m),
        "ks_critical": critical,
        "linf_robust": max(0.0, d - critical),
        "wasserstein": wasserstein,
        "wasserstein_normed": wasserstein / reference_std if reference_std > 0 else math.inf,
        "psi": psi(reference_bins, current_bins),
    }


def categorical_distances(reference: dict[str, int], current: dict[str, int]) -> dict[str, Any]:
    """Distances between two sets of category counts."""
    names = sorted(reference.keys() | current.keys())
    ref = np.array([reference.get(k, 0) for k in names], dtype=float)
    cur = np.array([current.get(k, 0) for k in names], dtype=float)
    n, m = int(ref.sum()), int(cur.sum())
    p, q = ref / max(n, 1), cur / max(m, 1)
    gaps = np.abs(p - q)
    linf = float(gaps.max()) if len(gaps) else 0.0
    critical = critical_distance(n, m)
    chi2, chi2_p = _chi_square(ref, cur)
    return {
        "linf": linf,
        "linf_category": names[int(gaps.argmax())] if len(gaps) else None,
        "linf_critical": critical,
        "linf_robust": max(0.0, linf - critical),
        "chi_square": chi2,
        "chi_square_p_value": chi2_p,
        "jensen_shannon": float(distance.jensenshannon(p, q, base=2)) if n and m else 0.0,
        "psi": psi(p, q),
    }


def _chi_square(reference: Floats, current: Floats) -> tuple[float, float]:
    """Chi-square test that both samples share one distribution (2 x k contingency)."""
    table = np.vstack([reference, current])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 0.0, 1.0
    result = stats.chi2_contingency(table, correction=False)
    return float(result.statistic), float(result.pvalue)


def psi(reference: Floats, current: Floats) -> float:
    """Population stability index between two sets of bin shares."""
    p = np.maximum(np.asarray(reference, dtype=float), PSI_FLOOR)
    q = np.maximum(np.asarray(current, dtype=float), PSI_FLOOR)
    return float(((q - p) * np.log(q / p)).sum())
