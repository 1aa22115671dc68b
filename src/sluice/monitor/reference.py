"""A baseline (statistics.json + constraints.json) loaded for checking: each numeric
feature's KLL sketch is read once into a grid of up to 4,001 quantiles with the reference
CDF at each, which is all a check needs: between two points lies at most 1/4,000 of the
reference, so a KS distance read at the points is within 1e-3 of the exact one (sketch
error included). Built once per baseline and kept by whoever runs checks repeatedly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sluice.errors import ValidationError
from sluice.monitor.baseline import DEFAULT_CONFIG
from sluice.monitor.documents import read_object
from sluice.monitor.kll import KllSketch

GRID_POINTS = 4001

Floats = NDArray[np.float64]


@dataclass
class NumericReference:
    name: str
    kind: str
    count: int
    mean: float
    std: float
    low: float
    high: float
    grid: Floats
    cdf: Floats
    """The reference CDF at each grid point."""
    deciles: NDArray[np.int64]
    """Indices of the grid points closest to the reference's deciles (PSI's bins)."""
    bucket_edges: Floats | None


@dataclass
class TextReference:
    name: str
    count: int
    counts: dict[str, int]


@dataclass
class FeatureRules:
    """The constraints and thresholds that apply to one feature (overrides applied)."""

    completeness: float | None = None
    is_non_negative: bool | None = None
    lower_bound: float | None = None
    upper_bound: float | None = None
    domains: list[str] | None = None
    config: dict[str, Any] = field(default_factory=dict)
    """monitoring_config with `distribution_constraints` flattened in and the feature's
    `monitoringConfigOverrides` applied."""


@dataclass
class Reference:
    features: dict[str, NumericReference | TextReference]
    rules: dict[str, FeatureRules]
    config: dict[str, Any]
    multivariate: dict[str, Any] | None
    rows: int

    @property
    def names(self) -> list[str]:
        return list(self.features)

    @property
    def numeric(self) -> frozenset[str]:
        return frozenset(n for n, f in self.features.items() if isinstance(f, NumericReference))


def load(folder: Path) -> Reference:
    """The baseline in `folder` (statistics.json, and constraints.json when present)."""
    statistics = read_object(folder / "statistics.json")
    constraints_path = folder / "constraints.json"
    constraints = read_object(constraints_path) if constraints_path.exists() else {}
    return reference(statistics, constraints)


def reference(statistics: dict[str, Any], constraints: dict[str, Any]) -> Reference:
    features: dict[str, NumericReference | TextReference] = {}
    try:
        for raw in statistics["features"]:
            name = str(raw["name"])
            if "numerical_statistics" in raw:
                features[name] = _numeric(name, raw)
            elif "string_statistics" in raw:
                features[name] = _text(name, raw["string_statistics"])
            else:
                raise ValidationError(f"feature {name!r} has no statistics", field="baseline")
    except (KeyError, TypeError) as e:
        raise ValidationError(
            f"statistics.json is not in Model Monitor's format (missing {e})", field="baseline"
        ) from None
    config = _merged(DEFAULT_CONFIG, constraints.get("monitoring_config") or {})
    rules = {name: FeatureRules(config=_flat(config)) for name in features}
    for raw in constraints.get("features", []):
        name = raw.get("name")
        if name not in rules:
            continue
        rule = rules[name]
        rule.completeness = raw.get("completeness")
        numbers = raw.get("num_constraints") or {}
        rule.is_non_negative = numbers.get("is_non_negative")
        rule.lower_bound = numbers.get("lower_bound")
        rule.upper_bound = numbers.get("upper_bound")
        domains = (raw.get("string_constraints") or {}).get("domains")
        rule.domains = [str(d) for d in domains] if domains is not None else None
        rule.config.update(raw.get("monitoringConfigOverrides") or {})
    return Reference(
        features=features,
        rules=rules,
        config=config,
        multivariate=statistics.get("multivariate"),
        rows=int((statistics.get("dataset") or {}).get("item_count", 0)),
    )


def _numeric(name: str, raw: dict[str, Any]) -> NumericReference:
    numbers = raw["numerical_statistics"]
    common = numbers["common"]
    kll = numbers.get("distribution", {}).get("kll", {})
    low, high = float(numbers["min"]), float(numbers["max"])
    if kll.get("sketch"):
        sketch = KllSketch.from_dict(kll["sketch"])
        points = sketch.quantiles(np.linspace(0, 1, GRID_POINTS))
        grid = np.unique(np.concatenate([[low], points, [high]]))
        grid = grid[(grid >= low) & (grid <= high)]
        cdf = sketch.cdf(grid)
    else:  # a hand-written baseline with buckets only: their edges, CDF read linearly
        grid, cdf = _from_buckets(kll.get("buckets") or [], low, high)
    cdf[-1] = 1.0
    decile_values = np.interp(np.linspace(0.1, 0.9, 9), cdf, grid)
    deciles = np.minimum(np.searchsorted(grid, decile_values), len(grid) - 1)
    edges = kll.get("buckets") or []
    bucket_edges = (
        np.array([b["lower_bound"] for b in edges] + [edges[-1]["upper_bound"]], dtype=float)
        if edges
        else None
    )
    return NumericReference(
        name=name,
        kind=str(raw.get("inferred_type", "Fractional")),
        count=int(common.get("num_present", 0)),
        mean=float(numbers.get("mean", 0.0)),
        std=float(numbers.get("std_dev", 0.0)),
        low=low,
        high=high,
        grid=grid,
        cdf=cdf,
        deciles=np.unique(deciles),
        bucket_edges=bucket_edges,
    )


def _from_buckets(buckets: list[dict[str, Any]], low: float, high: float) -> tuple[Floats, Floats]:
    if not buckets:
        return np.array([low, high] if high > low else [low]), np.array(
            [0.0, 1.0] if high > low else [1.0]
        )
    edges = np.array([buckets[0]["lower_bound"]] + [b["upper_bound"] for b in buckets])
    counts = np.array([b["count"] for b in buckets], dtype=float)
    cdf = np.concatenate([[0.0], np.cumsum(counts) / max(counts.sum(), 1.0)])
    return edges, cdf


def _text(name: str, raw: dict[str, Any]) -> TextReference:
    buckets = raw.get("distribution", {}).get("categorical", {}).get("buckets", [])
    counts = {str(b["value"]): int(b["count"]) for b in buckets}
    return TextReference(name, int(raw["common"].get("num_present", 0)), counts)


def _merged(default: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    out = dict(default)
    for key, value in given.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


def _flat(config: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in config.items() if not isinstance(v, dict)}
    out.update(config.get("distribution_constraints") or {})
    out["multivariate_threshold"] = (config.get("multivariate_constraints") or {}).get(
        "threshold", 0.1
    )
    return out


def threshold(value: Any, default: float) -> float:
    """A threshold from a hand-edited file: a number, or the default."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return number if math.isfinite(number) else default
