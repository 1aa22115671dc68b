"""Model-quality problem types and constraint documents, checked without the analysis
libraries (the server validates a schedule with them; monitor/quality.py judges)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from sluice.errors import ValidationError

PROBLEM_TYPES = ("BinaryClassification", "MulticlassClassification", "Regression")
KEYS = {
    "BinaryClassification": "binary_classification",
    "MulticlassClassification": "multiclass_classification",
    "Regression": "regression",
}
"""The prefix of each problem type's `<key>_metrics` and `<key>_constraints` members."""
COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "LessThanThreshold": lambda v, t: v < t,
    "LessThanOrEqualToThreshold": lambda v, t: v <= t,
    "GreaterThanThreshold": lambda v, t: v > t,
    "GreaterThanOrEqualToThreshold": lambda v, t: v >= t,
}


def problem_type(value: str | None) -> str:
    if value not in PROBLEM_TYPES:
        raise ValidationError(
            f"ProblemType must be one of {', '.join(PROBLEM_TYPES)}, not {value!r}",
            field="ProblemType",
        )
    return value


def finite(value: Any) -> float | None:
    """The value as a float when it is a finite number (not "NaN", not text), else None."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def check_constraints(problem: str, constraints: dict[str, Any]) -> None:
    """ValidationError unless `constraints` is a model-quality constraints document for
    `problem` with a threshold and a known comparison for each metric."""
    key = f"{KEYS[problem]}_constraints"
    found = constraints.get(key)
    if not isinstance(found, dict):
        raise ValidationError(f"constraints.json has no {key!r}", field="constraints")
    for name, rule in found.items():
        if (
            not isinstance(rule, dict)
            or finite(rule.get("threshold")) is None
            or rule.get("comparison_operator") not in COMPARISONS
        ):
            raise ValidationError(
                f"constraint {name!r} needs a numeric threshold and a comparison_operator "
                f"among {', '.join(COMPARISONS)}",
                field=f"{key}.{name}",
            )
