"""The gate's verdict: every metric compared, the chosen one (and latency) held to limits.

A "drop" is how much worse the candidate is, in the metric's own direction (a fall in
accuracy, a rise in MAE), so that positive always means worse. By default the gate fails
when the measured drop exceeds the limit; told to fail only when significant, it fails
when the whole confidence interval of the drop lies beyond the limit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from sluice.errors import ValidationError
from sluice.gate import LOWER_IS_BETTER
from sluice.gate.data import ValidationSet
from sluice.gate.metrics import (
    Answers,
    available,
    latency_ratio,
    paired_difference,
    score,
)


@dataclass(frozen=True)
class Limits:
    metric: str
    max_drop: float
    relative: bool = False
    """`max_drop` is a share of the baseline's value rather than metric units."""
    max_latency_increase: float | None = None
    """A share: 0.2 lets the candidate's median latency be 20 % above the baseline's."""
    significant_only: bool = False
    confidence: float = 0.95
    rounds: int = 1000


@dataclass(frozen=True)
class Check:
    name: str
    baseline: float
    candidate: float
    drop: float
    """How much worse the candidate is (positive: worse)."""
    drop_low: float
    drop_high: float
    limit: float | None
    """The largest drop allowed; None: shown, not gated."""
    passed: bool
    unit: str = ""


@dataclass(frozen=True)
class Verdict:
    candidate: str
    baseline: str
    problem: str
    rows: int
    limits: Limits
    checks: tuple[Check, ...]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        return {
            "candidate": self.candidate,
            "baseline": self.baseline,
            "problem": self.problem,
            "rows": self.rows,
            "passed": self.passed,
            "limits": asdict(self.limits),
            "checks": [asdict(c) for c in self.checks],
        }


def judge(
    data: ValidationSet,
    candidate: Answers,
    baseline: Answers,
    limits: Limits,
    names: tuple[str, str] = ("candidate", "baseline"),
) -> Verdict:
    labels = np.unique(np.concatenate([data.labels, candidate.predictions, baseline.predictions]))
    metrics = [
        m
        for m in available(data.problem, candidate, len(labels))
        if m in available(data.problem, baseline, len(labels))
    ]
    if limits.metric not in metrics:
        raise ValidationError(
            f"metric {limits.metric!r} cannot be computed here ({data.problem}; "
            f"available: {', '.join(metrics)})",
            field="metric",
        )
    everything = np.arange(len(data.labels))
    checks = []
    for name in metrics:
        base = score(name, data.labels, baseline, everything, labels)
        cand = score(name, data.labels, candidate, everything, labels)
        diff, low, high = paired_difference(
            name, data.labels, candidate, baseline, labels, limits.rounds, limits.confidence
        )
        sign = 1 if name in LOWER_IS_BETTER else -1  # drop = sign * (candidate - baseline)
        drop, drop_low, drop_high = sign * diff, *sorted((sign * low, sign * high))
        limit = None
        if name == limits.metric:
            limit = limits.max_drop * abs(base) if limits.relative else limits.max_drop
        checks.append(
            Check(name, base, cand, drop, drop_low, drop_high, limit,
                  _passes(drop, drop_low, limit, limits.significant_only))
        )  # fmt: skip
    increase, low, high = latency_ratio(candidate, baseline, limits.rounds, limits.confidence)
    checks.append(
        Check(
            "latency p50",
            float(np.median(baseline.latencies_ms)),
            float(np.median(candidate.latencies_ms)),
            increase,
            low,
            high,
            limits.max_latency_increase,
            _passes(increase, low, limits.max_latency_increase, limits.significant_only),
            unit="ms",
        )
    )
    return Verdict(names[0], names[1], data.problem, len(data.labels), limits, tuple(checks))


def _passes(drop: float, drop_low: float, limit: float | None, significant_only: bool) -> bool:
    if limit is None:
        return True
    return (drop_low if significant_only else drop) <= limit
