"""Model quality: metrics of predictions against ground truth, in SageMaker's formats.

`metrics` computes one problem type's statistics (`binary_classification_metrics`,
`multiclass_classification_metrics` or `regression_metrics`), each metric as
`{"value": x, "standard_deviation": s}`; the deviation comes from 5 random 80 % samples
and is "NaN" under 200 samples, as in SageMaker. `suggest` turns a baseline's metrics into
constraints, `violations` checks a window's metrics against them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn import metrics as skm

from sluice.errors import ValidationError
from sluice.monitor.quality_rules import COMPARISONS, KEYS, finite
from sluice.reports.records import canonical

STD_MIN_SAMPLES = 200
STD_DRAWS = 5
STD_SHARE = 0.8
CURVE_POINTS = 101
SUGGESTED: dict[str, dict[str, str]] = {
    "BinaryClassification": {
        "accuracy": "LessThanThreshold",
        "precision": "LessThanThreshold",
        "recall": "LessThanThreshold",
        "f1": "LessThanThreshold",
        "auc": "LessThanThreshold",
    },
    "MulticlassClassification": {
        "accuracy": "LessThanThreshold",
        "weighted_precision": "LessThanThreshold",
        "weighted_recall": "LessThanThreshold",
        "weighted_f1": "LessThanThreshold",
    },
    "Regression": {
        "mae": "GreaterThanThreshold",
        "rmse": "GreaterThanThreshold",
        "r2": "LessThanThreshold",
    },
}
"""The metrics a suggested constraints.json holds, and which way is worse."""
SUGGEST_SE = 3.0
"""A suggested threshold sits this many standard deviations from the baseline's value
(at least 1 % of it, or 0.01), so noise alone rarely crosses it."""


@dataclass(frozen=True)
class Pairs:
    """Joined rows: the ground truth, the prediction and, for binary problems, the
    probability of the positive class (NaN where the model gave none)."""

    truth: Sequence[str]
    predicted: Sequence[str]
    probability: Sequence[float]

    def __len__(self) -> int:
        return len(self.truth)


def metrics(problem: str, pairs: Pairs, positive: str = "1", seed: int = 0) -> dict[str, Any]:
    """The statistics document's metrics, `{"<problem>_metrics": {...}}`."""
    compute = _COMPUTE[problem]
    truth, predicted = np.asarray(pairs.truth), np.asarray(pairs.predicted)
    probability = np.asarray(pairs.probability, dtype=float)
    full = compute(truth, predicted, probability, positive)
    deviations: dict[str, list[float]] = {}
    if len(truth) >= STD_MIN_SAMPLES:
        rng = np.random.default_rng(seed)
        size = int(len(truth) * STD_SHARE)
        for _ in range(STD_DRAWS):
            pick = rng.choice(len(truth), size, replace=False)
            sample = compute(truth[pick], predicted[pick], probability[pick], positive)
            for name, value in sample.items():
                if isinstance(value, float):
                    deviations.setdefault(name, []).append(value)
    out: dict[str, Any] = {}
    for name, value in full.items():
        if not isinstance(value, float):
            out[name] = value
            continue
        draws = deviations.get(name)
        std = float(np.std(draws, ddof=1)) if draws and len(draws) == STD_DRAWS else math.nan
        out[name] = {"value": _plain(value), "standard_deviation": _plain(std)}
    return {f"{KEYS[problem]}_metrics": out}


def _plain(value: float) -> float | str:
    return value if math.isfinite(value) else "NaN"


def _regression(truth: np.ndarray, predicted: np.ndarray, _: np.ndarray, __: str) -> dict[str, Any]:
    y, p = _floats(truth, "ground truth"), _floats(predicted, "predictions")
    mse = float(skm.mean_squared_error(y, p))
    return {
        "mae": float(skm.mean_absolute_error(y, p)),
        "mse": mse,
        "rmse": math.sqrt(mse),
        "r2": float(skm.r2_score(y, p)) if len(y) > 1 else math.nan,
    }


def _floats(values: np.ndarray, what: str) -> np.ndarray:
    try:
        return values.astype(float)
    except ValueError:
        raise ValidationError(f"regression {what} must be numbers", field=what) from None


def _binary(
    truth: np.ndarray, predicted: np.ndarray, probability: np.ndarray, positive: str
) -> dict[str, Any]:
    y, p = truth == positive, predicted == positive
    tp = int(np.sum(y & p))
    fp = int(np.sum(~y & p))
    fn = int(np.sum(y & ~p))
    tn = int(np.sum(~y & ~p))
    positives, negatives = tp + fn, tn + fp
    out: dict[str, Any] = {
        "confusion_matrix": _confusion(truth, predicted),
        "recall": _ratio(tp, positives),
        "precision": _ratio(tp, tp + fp),
        "accuracy": _ratio(tp + tn, len(y)),
        "true_positive_rate": _ratio(tp, positives),
        "true_negative_rate": _ratio(tn, negatives),
        "false_positive_rate": _ratio(fp, negatives),
        "false_negative_rate": _ratio(fn, positives),
    }
    for beta, name in ((0.5, "f0_5"), (1.0, "f1"), (2.0, "f2")):
        out[name] = _fbeta(tp, fp, fn, beta)
    # The best constant classifier always answers the majority class.
    majority_positive = positives >= negatives
    constant = (positives, negatives, 0, 0) if majority_positive else (0, 0, positives, negatives)
    ctp, cfp, cfn, ctn = constant
    out["recall_best_constant_classifier"] = _ratio(ctp, positives)
    out["precision_best_constant_classifier"] = _ratio(ctp, ctp + cfp)
    out["accuracy_best_constant_classifier"] = _ratio(ctp + ctn, len(y))
    for beta, name in ((0.5, "f0_5"), (1.0, "f1"), (2.0, "f2")):
        out[f"{name}_best_constant_classifier"] = _fbeta(ctp, cfp, cfn, beta)
    scored = np.isfinite(probability)
    if scored.all() and positives and negatives:
        out["auc"] = float(skm.roc_auc_score(y, probability))
        fpr, tpr, _ = skm.roc_curve(y, probability)
        precision, recall, _ = skm.precision_recall_curve(y, probability)
        out["receiver_operating_characteristic_curve"] = {
            "false_positive_rates": _thin(fpr),
            "true_positive_rates": _thin(tpr),
        }
        out["precision_recall_curve"] = {"precisions": _thin(precision), "recalls": _thin(recall)}
    else:
        out["auc"] = math.nan
    return out


def _multiclass(truth: np.ndarray, predicted: np.ndarray, _: np.ndarray, __: str) -> dict[str, Any]:
    labels = np.unique(np.concatenate([truth, predicted]))
    out: dict[str, Any] = {
        "confusion_matrix": _confusion(truth, predicted),
        "accuracy": float(np.mean(truth == predicted)) if len(truth) else math.nan,
    }
    precision, recall, _, _ = skm.precision_recall_fscore_support(
        truth, predicted, labels=labels, average="weighted", zero_division=0
    )
    out["weighted_recall"] = float(recall)
    out["weighted_precision"] = float(precision)
    for beta, name in ((0.5, "weighted_f0_5"), (1.0, "weighted_f1"), (2.0, "weighted_f2")):
        out[name] = float(
            skm.fbeta_score(
                truth, predicted, beta=beta, labels=labels, average="weighted", zero_division=0
            )
        )
    values, counts = np.unique(truth, return_counts=True)
    constant = np.full(len(truth), values[np.argmax(counts)]) if len(truth) else truth
    out["accuracy_best_constant_classifier"] = (
        float(np.mean(truth == constant)) if len(truth) else math.nan
    )
    precision, recall, _, _ = skm.precision_recall_fscore_support(
        truth, constant, labels=labels, average="weighted", zero_division=0
    )
    out["weighted_recall_best_constant_classifier"] = float(recall)
    out["weighted_precision_best_constant_classifier"] = float(precision)
    for beta, name in ((0.5, "weighted_f0_5"), (1.0, "weighted_f1"), (2.0, "weighted_f2")):
        out[f"{name}_best_constant_classifier"] = float(
            skm.fbeta_score(
                truth, constant, beta=beta, labels=labels, average="weighted", zero_division=0
            )
        )
    return out


_COMPUTE = {
    "BinaryClassification": _binary,
    "MulticlassClassification": _multiclass,
    "Regression": _regression,
}


def _ratio(top: int, bottom: int) -> float:
    return top / bottom if bottom else math.nan


def _fbeta(tp: int, fp: int, fn: int, beta: float) -> float:
    b2 = beta * beta
    bottom = (1 + b2) * tp + b2 * fn + fp
    return (1 + b2) * tp / bottom if bottom else math.nan


def _confusion(truth: np.ndarray, predicted: np.ndarray) -> dict[str, dict[str, int]]:
    """{actual: {predicted: count}} over every label seen on either side."""
    labels = sorted(set(truth.tolist()) | set(predicted.tolist()))
    matrix: dict[str, dict[str, int]] = {a: {p: 0 for p in labels} for a in labels}
    pairs, counts = np.unique(np.stack([truth, predicted]), axis=1, return_counts=True)
    for (actual, guess), count in zip(pairs.T.tolist(), counts.tolist(), strict=True):
        matrix[actual][guess] = int(count)
    return matrix


def _thin(values: np.ndarray) -> list[float]:
    """At most CURVE_POINTS points of a curve, evenly spaced along it, ends kept."""
    if len(values) > CURVE_POINTS:
        values = values[np.linspace(0, len(values) - 1, CURVE_POINTS).round().astype(int)]
    return [round(float(v), 6) for v in values]


# -- constraints and violations


def suggest(problem: str, statistics: dict[str, Any]) -> dict[str, Any]:
    """Suggested constraints from a baseline's metrics: each metric may not get worse
    than its value by SUGGEST_SE standard deviations."""
    key = KEYS[problem]
    found = statistics.get(f"{key}_metrics", {})
    constraints: dict[str, Any] = {}
    for name, operator in SUGGESTED[problem].items():
        metric = found.get(name)
        value = finite(metric.get("value")) if isinstance(metric, dict) else None
        if value is None:
            continue
        std = finite(metric.get("standard_deviation"))
        margin = max(SUGGEST_SE * std if std is not None else 0.0, 0.01 * abs(value), 0.01)
        bound = value - margin if operator.startswith("Less") else value + margin
        constraints[name] = {"threshold": round(bound, 6), "comparison_operator": operator}
    return {"version": 0.0, f"{key}_constraints": constraints}


def violations(
    problem: str, statistics: dict[str, Any], constraints: dict[str, Any]
) -> list[dict[str, Any]]:
    """SageMaker's model-quality violations: one per metric whose value meets its
    constraint's comparison (the comparison names the bad side)."""
    key = KEYS[problem]
    found = statistics[f"{key}_metrics"]
    out = []
    for name, rule in constraints.get(f"{key}_constraints", {}).items():
        metric = found.get(name)
        if not isinstance(metric, dict) or (value := finite(metric.get("value"))) is None:
            continue
        operator, bound = rule["comparison_operator"], float(rule["threshold"])
        if COMPARISONS[operator](value, bound):
            std = finite(metric.get("standard_deviation"))
            spread = f" +/- {std:.4g}" if std is not None else ""
            out.append(
                {
                    "constraint_check_type": operator,
                    "description": f"Metric {name} with {value:.4g}{spread} was "
                    f"{operator} '{bound:g}'",
                    "metric_name": name,
                }
            )
    return out


# -- a baseline from a validation table


def baseline(
    path: Path,
    problem: str,
    label: str,
    prediction: str | None,
    probability: str | None = None,
    threshold: float | None = None,
    positive: str = "1",
    negative: str = "0",
) -> tuple[dict[str, Any], dict[str, Any]]:
    """statistics.json and suggested constraints.json from a table of labels and the
    model's predictions; with a probability column and `threshold`, the prediction is
    `positive` exactly when the probability reaches the threshold."""
    from sluice.monitor import tables

    cut = probability is not None and threshold is not None
    if prediction is None and not cut:
        raise ValidationError(
            "name the prediction column, or a probability column and a threshold",
            field="prediction",
        )
    names = [n for n in (label, None if cut else prediction, probability) if n is not None]
    present = tables.columns_of(path)
    for name in names:
        if name not in present:
            raise ValidationError(f"{path} has no column {name!r}", field="columns")
    truth: list[str] = []
    predicted: list[str] = []
    scores: list[float] = []
    for block in tables.blocks(path, names):
        truth += [canonical(v) for v in block[label].to_pylist()]
        given = [math.nan] * len(block[label])
        if probability is not None:
            given = [math.nan if v is None else float(v) for v in block[probability].to_pylist()]
        if cut:
            predicted += [positive if s >= threshold else negative for s in given]  # type: ignore[operator]
        else:
            predicted += [canonical(v) for v in block[prediction].to_pylist()]  # type: ignore[index]
        scores += given
    if not truth:
        raise ValidationError(f"{path} has no rows", field="data")
    statistics = {
        "version": 0.0,
        "dataset": {"item_count": len(truth)},
        **metrics(problem, Pairs(truth, predicted, scores), positive),
    }
    return statistics, suggest(problem, statistics)
