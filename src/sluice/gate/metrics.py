"""Quality metrics of a validation run, and paired bootstrap intervals on differences.

Both models answered the same rows, so the interval on (candidate - baseline) resamples
rows once per round and scores both models on the same resample (a paired bootstrap):
far tighter than comparing two separate intervals, and right when the models agree on
most rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from sluice.gate import REGRESSION
from sluice.reports.stats import macro_f1


@dataclass(frozen=True)
class Answers:
    """One model's answers to the validation rows, in row order."""

    predictions: NDArray[np.generic]
    probabilities: NDArray[np.float64] | None
    """Per row, per class (the model's classes, sorted), when the model gives them."""
    latencies_ms: NDArray[np.float64]


def available(problem: str, answers: Answers, classes: int) -> list[str]:
    """The metrics this problem and these answers allow (AUC: binary with probabilities)."""
    if problem == "regression":
        return list(REGRESSION)
    names = ["accuracy", "f1_macro"]
    # Probability columns follow the model's sorted classes; they can be matched to the
    # labels only when the model knows exactly the classes seen here.
    if answers.probabilities is not None and answers.probabilities.shape[1] == classes:
        names.append("log_loss")
        if classes == 2:
            names.append("auc")
    return names


def score(name: str, truth: NDArray[np.generic], answers: Answers, rows: NDArray[np.intp],
          labels: NDArray[np.generic]) -> float:  # fmt: skip
    """Metric `name` over the given rows (indices, repeats allowed), in numpy: the bootstrap
    calls it thousands of times (the tests hold it to scikit-learn's values)."""
    y = truth[rows]
    predicted = answers.predictions[rows]
    if name == "accuracy":
        return float(np.mean(y == predicted))
    if name in REGRESSION:
        error = y.astype(float) - predicted.astype(float)
        if name == "mae":
            return float(np.mean(np.abs(error)))
        if name == "rmse":
            return float(np.sqrt(np.mean(error**2)))
        values = y.astype(float)
        spread = np.sum((values - np.mean(values)) ** 2)
        return float(1 - np.sum(error**2) / spread) if spread > 0 else float("nan")
    if name == "f1_macro":
        return macro_f1(np.searchsorted(labels, y), np.searchsorted(labels, predicted), len(labels))
    assert answers.probabilities is not None
    proba = answers.probabilities[rows]
    if name == "log_loss":
        eps = np.finfo(float).eps
        proba = np.clip(proba / proba.sum(axis=1, keepdims=True), eps, 1 - eps)
        return float(-np.mean(np.log(proba[np.arange(len(y)), np.searchsorted(labels, y)])))
    if name == "auc":
        return _auc(y == labels[1], proba[:, 1])
    raise ValueError(f"unknown metric {name!r}")


def _auc(positive: NDArray[np.bool_], scores: NDArray[np.float64]) -> float:
    """The area under the ROC curve as the Mann-Whitney statistic (ties count a half)."""
    count = int(positive.sum())
    if count in (0, len(positive)):
        return float("nan")  # a resample with one class has no AUC
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # Average ranks over ties.
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_scores)) + 1]
    ends = np.r_[starts[1:], len(scores)]
    ranks[order] = np.repeat((starts + ends + 1) / 2, ends - starts)
    negatives = len(positive) - count
    return float((ranks[positive].sum() - count * (count + 1) / 2) / (count * negatives))


def paired_difference(
    name: str,
    truth: NDArray[np.generic],
    candidate: Answers,
    baseline: Answers,
    labels: NDArray[np.generic],
    rounds: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(candidate - baseline, low, high): the difference and its bootstrap interval."""
    everything = np.arange(len(truth))
    point = score(name, truth, candidate, everything, labels) - score(
        name, truth, baseline, everything, labels
    )
    rng = np.random.default_rng(seed)
    draws = np.empty(rounds)
    for i in range(rounds):
        rows = rng.integers(0, len(truth), len(truth))
        draws[i] = score(name, truth, candidate, rows, labels) - score(
            name, truth, baseline, rows, labels
        )
    draws = draws[~np.isnan(draws)]
    tail = (1 - confidence) / 2
    low, high = np.quantile(draws, [tail, 1 - tail]) if len(draws) else (np.nan, np.nan)
    return point, float(low), float(high)


def latency_ratio(
    candidate: Answers, baseline: Answers, rounds: int = 1000, confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:  # fmt: skip
    """(median candidate / median baseline - 1, low, high), paired by row."""
    a, b = candidate.latencies_ms, baseline.latencies_ms
    point = float(np.median(a) / np.median(b) - 1)
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, len(a), (rounds, len(a)))
    draws = np.median(a[rows], axis=1) / np.median(b[rows], axis=1) - 1
    tail = (1 - confidence) / 2
    low, high = np.quantile(draws, [tail, 1 - tail])
    return point, float(low), float(high)
