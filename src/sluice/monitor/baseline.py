"""A baseline from training data: per-feature statistics as sketches and suggested
constraints, written as SageMaker Model Monitor's `statistics.json` and `constraints.json`.

Two streaming passes over the file (CSV, Parquet or JSON Lines), a block of rows at a
time, so the data is never held whole: the first settles each column's type (unless a
schema gives it), its range and its mean; the second counts, sums and sketches. Numeric
columns keep a KLL sketch (monitor/kll.py) and SageMaker's ten equal-width buckets; text
columns keep the count of each value. The numeric columns' correlations give the
multivariate model (monitor/multivariate.py), stored beside the features.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from sluice.errors import ValidationError
from sluice.monitor import tables
from sluice.monitor.columns import NumericProfile, TextProfile, as_numbers
from sluice.monitor.kll import KllSketch
from sluice.monitor.multivariate import Moments

BUCKETS = 10
"""SageMaker materialises numeric distributions in 10 buckets."""
MAX_DOMAIN = 20
"""A text column with at most this many distinct values gets a domain constraint."""
TYPES = ("Integral", "Fractional", "String")
DEFAULT_CONFIG: dict[str, Any] = {
    "evaluate_constraints": "Enabled",
    "emit_metrics": "Enabled",
    "datatype_check_threshold": 0.1,
    "domain_content_threshold": 0.1,
    "range_check_threshold": 0.01,
    "distribution_constraints": {
        "perform_comparison": "Enabled",
        "comparison_threshold": 0.1,
        "comparison_method": "Robust",
        "categorical_comparison_threshold": 0.1,
        "categorical_drift_method": "LInfinity",
        "wasserstein_threshold": 0.1,
    },
    "multivariate_constraints": {"perform_comparison": "Enabled", "threshold": 0.1},
}
"""SageMaker's monitoring_config, plus sluice's own keys (range_check_threshold,
wasserstein_threshold, multivariate_constraints); see monitor/check.py."""

Profile = NumericProfile | TextProfile


def baseline(
    path: Path, schema: Mapping[str, str] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(statistics.json, constraints.json) for a CSV (with a header), Parquet or JSONL file."""
    names = tables.columns_of(path)
    if not names:
        raise ValidationError(f"training data {path} is empty", field="data")
    kinds = _kinds(path, names, schema or {})
    profiles: list[Profile] = []
    for name in names:
        first = kinds[name]
        if isinstance(first, TextProfile):
            profiles.append(TextProfile(name))
            continue
        profile = NumericProfile(name, first.kind, sketch=KllSketch(), shift=first.mean)
        if first.present:
            high = first.high if first.high > first.low else first.low + 1
            profile.bucket_edges = np.linspace(first.low, high, BUCKETS + 1)
            profile.bucket_counts = np.zeros(BUCKETS, dtype=np.int64)
        profiles.append(profile)
    numeric = [p for p in profiles if isinstance(p, NumericProfile)]
    moments = Moments([p.name for p in numeric], [p.shift for p in numeric])
    rows = 0
    for block in tables.blocks(path, names):
        rows += len(block[names[0]])
        matrix = []
        for each in profiles:
            if isinstance(each, TextProfile):
                each.add(block[each.name])
            else:
                numbers = as_numbers(block[each.name])
                each.add(numbers)
                matrix.append(numbers.values)
        if matrix:
            moments.add(np.column_stack(matrix))
    if rows == 0:
        raise ValidationError(f"training data {path} has no rows", field="data")
    statistics = {
        "version": 0,
        "dataset": {"item_count": rows},
        "features": [feature_statistics(p) for p in profiles],
    }
    model = moments.fit()
    if model is not None:
        statistics["multivariate"] = model
    return statistics, _constraints(profiles)


def _kinds(path: Path, names: list[str], schema: Mapping[str, str]) -> dict[str, Profile]:
    """The first pass: each column's type, range and mean (numeric columns), given or inferred."""
    for name, kind in schema.items():
        if kind not in TYPES:
            raise ValidationError(
                f"schema type of {name!r} must be one of {', '.join(TYPES)}", field="schema"
            )
    found: dict[str, Profile] = {
        name: TextProfile(name) if schema.get(name) == "String" else NumericProfile(name, "")
        for name in names
    }
    for block in tables.blocks(path, names):
        for name in names:
            profile = found[name]
            if isinstance(profile, TextProfile):
                continue
            numbers = as_numbers(block[name])
            if numbers.mismatched:
                if name in schema:
                    raise ValidationError(
                        f"column {name!r} is {schema[name]} by the schema but holds text",
                        field="schema",
                    )
                found[name] = TextProfile(name)
                continue
            profile.add(numbers)
    for name, profile in found.items():
        if isinstance(profile, NumericProfile):
            given = schema.get(name)
            profile.kind = given or ("Fractional" if profile.fractional else "Integral")
    return found


def feature_statistics(profile: Profile) -> dict[str, Any]:
    """One feature of statistics.json: the baseline's (with its sketch) or a window's
    (no sketch; its buckets on the baseline's edges, widened to the window's range)."""
    common = {"num_present": profile.present, "num_missing": profile.missing}
    if isinstance(profile, TextProfile):
        buckets = [{"value": v, "count": n} for v, n in profile.values.most_common()]
        if profile.folded:
            buckets.append({"value": "__other__", "count": profile.folded})
        return {
            "name": profile.name,
            "inferred_type": "String",
            "string_statistics": {
                "common": common,
                "distinct_count": profile.distinct,
                "distribution": {"categorical": {"buckets": buckets}},
            },
        }
    kll: dict[str, Any] = {"buckets": _buckets(profile)}
    if profile.sketch is not None:
        kll["sketch"] = profile.sketch.to_dict()
    return {
        "name": profile.name,
        "inferred_type": profile.kind,
        "numerical_statistics": {
            "common": common,
            "mean": profile.mean,
            "sum": profile.total,
            "std_dev": profile.std,
            "min": profile.low if profile.present else 0.0,
            "max": profile.high if profile.present else 0.0,
            "distribution": {"kll": kll},
        },
    }


def _buckets(profile: NumericProfile) -> list[dict[str, float]]:
    """The buckets as SageMaker writes them (none for a column with no values); the outer
    edges widen to take values beyond them."""
    if profile.bucket_edges is None or profile.bucket_counts is None or not profile.present:
        return []
    edges = profile.bucket_edges.copy()
    edges[0], edges[-1] = min(edges[0], profile.low), max(edges[-1], profile.high)
    return [
        {"lower_bound": float(edges[i]), "upper_bound": float(edges[i + 1]), "count": float(c)}
        for i, c in enumerate(profile.bucket_counts)
    ]


def _constraints(profiles: list[Profile]) -> dict[str, Any]:
    features = []
    for profile in profiles:
        rows = profile.present + profile.missing
        feature: dict[str, Any] = {
            "name": profile.name,
            "inferred_type": profile.kind if isinstance(profile, NumericProfile) else "String",
            "completeness": profile.present / rows if rows else 0.0,
        }
        if isinstance(profile, NumericProfile):
            feature["num_constraints"] = {"is_non_negative": bool(profile.low >= 0)}
            if math.isfinite(profile.low):
                feature["num_constraints"]["lower_bound"] = profile.low
                feature["num_constraints"]["upper_bound"] = profile.high
        elif len(profile.values) <= MAX_DOMAIN and not profile.folded:
            feature["string_constraints"] = {"domains": sorted(profile.values)}
        features.append(feature)
    return {
        "version": 0,
        "features": features,
        "monitoring_config": {
            key: dict(value) if isinstance(value, dict) else value
            for key, value in DEFAULT_CONFIG.items()
        },
    }
