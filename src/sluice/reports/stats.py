"""The statistics behind the reports: intervals, paired and unpaired tests, power, and an
always-valid (sequential) p-value for A/B tests that are looked at every day."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

Z95 = 1.959963984540054
Z80 = 0.8416212335729143
"""Quantile for 80 % power."""


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float

    def to_dict(self) -> dict[str, float | list[float | None] | None]:
        return {"value": rounded(self.value), "ci95": [rounded(self.low), rounded(self.high)]}


def rounded(x: float | None) -> float | None:
    """A figure for a JSON report: 6 decimals, None when not a finite number."""
    return None if x is None or not math.isfinite(x) else round(float(x), 6)


def wilson(successes: int, n: int) -> Estimate:
    """A proportion with its Wilson score interval."""
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan)
    p = successes / n
    centre = (p + Z95**2 / (2 * n)) / (1 + Z95**2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95**2 / (4 * n * n)) / (1 + Z95**2 / n)
    return Estimate(p, max(0.0, centre - half), min(1.0, centre + half))


def mean_interval(x: np.ndarray) -> Estimate:
    """A mean with its t interval."""
    n = len(x)
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan)
    m = float(np.mean(x))
    if n < 2:
        return Estimate(m, math.nan, math.nan)
    half = float(sps.t.ppf(0.975, n - 1)) * float(np.std(x, ddof=1)) / math.sqrt(n)
    return Estimate(m, m - half, m + half)


# -- paired classification outcomes (shadow tests: both models answered the same rows)


@dataclass(frozen=True)
class PairedProportions:
    """Accuracy of baseline and candidate on the same rows, and their difference."""

    n: int
    only_baseline_right: int
    only_candidate_right: int
    difference: Estimate
    """Candidate minus baseline (Bonett-Price adjusted interval)."""
    p_value: float
    """McNemar's exact test (binomial on the discordant pairs), two-sided."""
    mde: float
    """Smallest difference detectable at 80 % power, alpha 0.05, at this sample size."""


def paired_proportions(
    baseline_right: np.ndarray, candidate_right: np.ndarray
) -> PairedProportions:
    n = len(baseline_right)
    b = int(np.count_nonzero(baseline_right & ~candidate_right))
    c = int(np.count_nonzero(~baseline_right & candidate_right))
    if n == 0:
        nan = Estimate(math.nan, math.nan, math.nan)
        return PairedProportions(0, 0, 0, nan, math.nan, math.nan)
    p12, p21 = (b + 1) / (n + 2), (c + 1) / (n + 2)
    half = Z95 * math.sqrt(max(0.0, p12 + p21 - (p21 - p12) ** 2) / (n + 2))
    diff = (c - b) / n
    p_value = float(sps.binomtest(b, b + c, 0.5).pvalue) if b + c else 1.0
    discordant = max((b + c) / n, 1 / n)
    mde = (Z95 + Z80) * math.sqrt(discordant / n)
    return PairedProportions(
        n, b, c, Estimate(diff, p21 - p12 - half, p21 - p12 + half), p_value, mde
    )


# -- paired numbers (regression errors, latencies)


@dataclass(frozen=True)
class PairedNumbers:
    n: int
    difference: Estimate
    """Mean of candidate minus baseline, with its t interval."""
    p_value: float
    """Wilcoxon signed-rank test, two-sided (zero differences split)."""
    mde: float


def paired_numbers(baseline: np.ndarray, candidate: np.ndarray) -> PairedNumbers:
    d = candidate - baseline
    n = len(d)
    interval = mean_interval(d)
    if n < 2 or not np.any(d):
        return PairedNumbers(n, interval, 1.0 if n >= 2 else math.nan, math.nan)
    p_value = float(sps.wilcoxon(d, zero_method="zsplit", method="auto").pvalue)
    mde = (Z95 + Z80) * float(np.std(d, ddof=1)) / math.sqrt(n)
    return PairedNumbers(n, interval, p_value, mde)


# -- unpaired (A/B tests: each request saw one variant)


@dataclass(frozen=True)
class TwoSamples:
    n_baseline: int
    n_candidate: int
    baseline: Estimate
    candidate: Estimate
    difference: Estimate
    """Candidate minus baseline."""
    p_value: float
    """Fixed-sample test: two-proportion z (rates) or Welch's t (means)."""
    always_valid_p: float
    """Mixture SPRT p-value: stays valid however often it is looked at."""
    mde: float
    power: float
    """Chance of detecting the observed difference again at this sample size."""
    test: str


def two_proportions(x1: int, n1: int, x2: int, n2: int) -> TwoSamples:
    """Baseline x1 of n1 against candidate x2 of n2 (rates: accuracy, conversion)."""
    a, b = wilson(x1, n1), wilson(x2, n2)
    if n1 == 0 or n2 == 0:
        nan = Estimate(math.nan, math.nan, math.nan)
        return TwoSamples(
            n1, n2, a, b, nan, math.nan, math.nan, math.nan, math.nan, "two-proportion z"
        )
    p1, p2 = x1 / n1, x2 / n2
    # Newcombe's hybrid score interval for the difference.
    d = p2 - p1
    low = d - math.sqrt((p2 - b.low) ** 2 + (a.high - p1) ** 2)
    high = d + math.sqrt((b.high - p2) ** 2 + (p1 - a.low) ** 2)
    pooled = (x1 + x2) / (n1 + n2)
    se0 = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    p_value = 2 * float(sps.norm.sf(abs(d) / se0)) if se0 > 0 else 1.0
    variance = p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2
    sigma = math.sqrt(max(pooled * (1 - pooled), 1e-12))
    return TwoSamples(
        n1,
        n2,
        a,
        b,
        Estimate(d, low, high),
        p_value,
        msprt_p(d, variance, tau=0.1 * sigma),
        (Z95 + Z80) * se0,
        _power(d, math.sqrt(variance)),
        "two-proportion z",
    )


def two_means(x1: np.ndarray, x2: np.ndarray) -> TwoSamples:
    """Baseline values x1 against candidate values x2 (means: revenue, error)."""
    a, b = mean_interval(x1), mean_interval(x2)
    n1, n2 = len(x1), len(x2)
    if n1 < 2 or n2 < 2:
        nan = Estimate(math.nan, math.nan, math.nan)
        return TwoSamples(n1, n2, a, b, nan, math.nan, math.nan, math.nan, math.nan, "Welch t")
    v1, v2 = float(np.var(x1, ddof=1)) / n1, float(np.var(x2, ddof=1)) / n2
    d = b.value - a.value
    se = math.sqrt(v1 + v2)
    if se == 0:
        return TwoSamples(
            n1, n2, a, b, Estimate(d, d, d), 1.0 if d == 0 else 0.0, 1.0, 0.0, math.nan, "Welch t"
        )
    df = (v1 + v2) ** 2 / (v1**2 / (n1 - 1) + v2**2 / (n2 - 1))
    t = float(sps.t.ppf(0.975, df))
    p_value = 2 * float(sps.t.sf(abs(d) / se, df))
    sigma = math.sqrt((float(np.var(x1, ddof=1)) + float(np.var(x2, ddof=1))) / 2)
    return TwoSamples(
        n1,
        n2,
        a,
        b,
        Estimate(d, d - t * se, d + t * se),
        p_value,
        msprt_p(d, se * se, tau=0.1 * sigma),
        (Z95 + Z80) * se,
        _power(d, se),
        "Welch t",
    )


def msprt_p(difference: float, variance: float, tau: float) -> float:
    """The mixture sequential probability ratio test's p-value for a normal difference.

    With a N(0, tau^2) mixture over the true difference, Lambda = sqrt(V / (V + tau^2)) *
    exp(d^2 tau^2 / (2 V (V + tau^2))); 1/Lambda is a p-value that is valid at any
    stopping time (Johari, Pekelis and Walsh, "Always valid inference", 2017), so a user
    may look every day and stop when it drops below alpha.
    """
    if variance <= 0 or tau <= 0 or not math.isfinite(difference):
        return math.nan
    t2 = tau * tau
    log_lambda = 0.5 * math.log(variance / (variance + t2)) + difference**2 * t2 / (
        2 * variance * (variance + t2)
    )
    return float(min(1.0, math.exp(-log_lambda)))


def _power(effect: float, se: float) -> float:
    if se <= 0 or not math.isfinite(effect):
        return math.nan
    shift = abs(effect) / se
    return float(sps.norm.sf(Z95 - shift) + sps.norm.cdf(-Z95 - shift))


# -- classification summaries


def macro_f1(
    truth: np.ndarray, predicted: np.ndarray, classes: int, weights: np.ndarray | None = None
) -> float:
    """Macro-averaged F1 over the classes present in the truth or the predictions."""
    if len(truth) == 0:
        return math.nan
    confusion = np.bincount(
        truth * classes + predicted, weights=weights, minlength=classes * classes
    )
    confusion = confusion.reshape(classes, classes)
    tp = np.diag(confusion)
    actual, called = confusion.sum(axis=1), confusion.sum(axis=0)
    present = (actual + called) > 0
    denominator = actual + called
    f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp, dtype=float), where=denominator > 0)
    return float(f1[present].mean()) if present.any() else math.nan


def bootstrap_f1(
    truth: np.ndarray,
    baseline: np.ndarray,
    candidate: np.ndarray,
    classes: int,
    rounds: int = 200,
    seed: int = 0,
) -> tuple[Estimate, Estimate, Estimate]:
    """Macro F1 of both on the same rows and their difference, with bootstrap percentile
    intervals (the same resample for both, so the difference is paired).

    F1 depends only on how many rows fall in each (truth, baseline, candidate) cell, so
    resampling rows is drawing those cell counts from a multinomial: exact, and as fast
    for a million rows as for a hundred.
    """
    fa, fb = macro_f1(truth, baseline, classes), macro_f1(truth, candidate, classes)
    n = len(truth)
    if n < 2:
        nan = Estimate(math.nan, math.nan, math.nan)
        return Estimate(fa, math.nan, math.nan), Estimate(fb, math.nan, math.nan), nan
    cell = (truth.astype(np.int64) * classes + baseline) * classes + candidate
    cells, counts = np.unique(cell, return_counts=True)
    t, rest = np.divmod(cells, classes * classes)
    a, b = np.divmod(rest, classes)
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n, counts / n, size=rounds).astype(np.float64)
    scores = np.array([(macro_f1(t, a, classes, w), macro_f1(t, b, classes, w)) for w in draws])
    lo, hi = np.percentile(scores, [2.5, 97.5], axis=0)
    dlo, dhi = np.percentile(scores[:, 1] - scores[:, 0], [2.5, 97.5])
    return Estimate(fa, lo[0], hi[0]), Estimate(fb, lo[1], hi[1]), Estimate(fb - fa, dlo, dhi)
