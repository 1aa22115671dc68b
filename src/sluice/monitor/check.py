"""The data-quality check: a window of captured inputs against a baseline.

Each block of the window goes into one profile per feature (monitor/columns.py), its
numeric values counted into the reference's grid cells, and into the multivariate check.
The verdicts come from the profiles alone:

- `data_type_check`: more than `datatype_check_threshold` of a numeric feature's values
  are not numbers (for an Integral feature: or not whole).
- `completeness_check`: the non-null share falls below the baseline's `completeness` by
  more than 3 standard errors (`Robust`) or at all (`Simple`).
- `baseline_drift_check`: numeric: KS D (`Simple`) or D less its critical value
  (`Robust`) above `comparison_threshold`; or the normalised Wasserstein distance (less
  the same critical value, `Robust`) above `wasserstein_threshold` while D is
  significant. Text: the largest gap between category shares (`LInfinity`, robust as
  above) above `categorical_comparison_threshold`, or the chi-square p-value below it
  (`ChiSquared`).
- `categorical_values_check`: more than `domain_content_threshold` of a text feature's
  values lie outside its `domains`.
- `out_of_range_check`: more than `range_check_threshold` of the values lie outside
  [`lower_bound`, `upper_bound`], or below 0 when `is_non_negative`.
- `missing_column_check` / `extra_column_check`: rows carried fewer / more values than
  the baseline has columns, or JSON objects lacked / added names.
- `multivariate_drift_check`: the PCA reconstruction error moved by more than the
  threshold (relative) after 3 standard errors are taken off the move.

The first six are SageMaker Model Monitor's; the last two are sluice's own.
"""

from __future__ import annotations

import contextlib
import math
import queue
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from sluice.monitor import drift
from sluice.monitor.baseline import feature_statistics
from sluice.monitor.capture import WindowCounts
from sluice.monitor.columns import NumericProfile, TextProfile, as_numbers
from sluice.monitor.multivariate import ReconstructionCheck
from sluice.monitor.reference import (
    FeatureRules,
    NumericReference,
    Reference,
    TextReference,
    threshold,
)
from sluice.monitor.tables import Block

COMPLETENESS_SE = 3.0
CHART_BINS = 20
CHART_CATEGORIES = 12


@dataclass
class CheckResult:
    report: dict[str, Any]
    """The full result: per feature statistics, distances and verdicts (report.json)."""
    violations: dict[str, Any]
    """SageMaker's constraint_violations.json."""
    statistics: dict[str, Any]
    """The window's statistics.json, in the baseline's format."""

    @property
    def status(self) -> str:
        """Completed, CompletedWithViolations, or (model quality) InsufficientGroundTruth."""
        return str(self.report["status"])


def check(
    reference: Reference,
    blocks: Iterator[Block],
    counts: WindowCounts,
    window: dict[str, Any] | None = None,
    threads: int = 2,
) -> CheckResult:
    """Check the blocks of a window (read by a WindowReader, whose `counts` are passed)."""
    began = time.perf_counter()
    profiles = {name: _profile(reference, name) for name in reference.names}
    multivariate = _multivariate(reference)
    mv_columns = multivariate.features if multivariate else []
    with ThreadPoolExecutor(max(1, threads)) as pool:
        for block in _read_ahead(blocks):
            columns = [(profiles[n], block[n]) for n in reference.names]
            if threads > 1:
                added = list(pool.map(lambda pair: _add(*pair), columns))
            else:
                added = [_add(*pair) for pair in columns]
            values = dict(zip(reference.names, added, strict=True))
            if multivariate is not None:
                multivariate.add(np.column_stack([values[n] for n in mv_columns]))
    features = [
        _feature(reference.features[name], reference.rules[name], profiles[name])
        for name in reference.names
    ]
    violations = [v for f in features for v in f["violations"]]
    violations += _column_violations(counts, reference)
    mv = None
    if multivariate is not None:
        mv = multivariate.result(
            threshold(reference.config.get("multivariate_constraints", {}).get("threshold"), 0.1)
        )
        if mv["drift"]:
            violations.append(
                {
                    "feature_name": ",".join(mv["features"]),
                    "constraint_check_type": "multivariate_drift_check",
                    "description": (
                        f"PCA reconstruction error {mv['current_error']:.4g} against "
                        f"{mv['reference_error']:.4g} in the baseline "
                        f"({mv['relative_change']:+.1%}, z = {mv['z']:.1f})"
                    ),
                }
            )
    report = {
        "kind": "data_quality",
        "status": "CompletedWithViolations" if violations else "Completed",
        "window": window or {},
        "counts": counts.as_dict(),
        "summary": {
            "features": len(features),
            "drifted": [f["name"] for f in features if f.get("drift", {}).get("flagged")],
            "violations": len(violations),
        },
        "features": features,
        "multivariate": mv,
        "violations": violations,
        "seconds": round(time.perf_counter() - began, 4),
    }
    return CheckResult(
        report=report,
        violations={"violations": violations},
        statistics=_window_statistics(profiles, counts.rows),
    )


def _read_ahead(blocks: Iterator[Block], depth: int = 2) -> Iterator[Block]:
    """The blocks, read by a thread of their own: parsing (in Arrow, without the GIL)
    overlaps with profiling the block before."""
    ready: queue.Queue[tuple[Block | None, BaseException | None]] = queue.Queue(depth)
    stop = threading.Event()

    def read() -> None:
        try:
            for block in blocks:
                if stop.is_set():
                    return
                ready.put((block, None))
            ready.put((None, None))
        except BaseException as e:  # handed to the consumer, raised there
            ready.put((None, e))

    reader = threading.Thread(target=read, name="monitor-read", daemon=True)
    reader.start()
    try:
        while True:
            block, error = ready.get()
            if error is not None:
                raise error
            if block is None:
                return
            yield block
    finally:
        stop.set()
        with contextlib.suppress(queue.Empty):
            while True:
                ready.get_nowait()
        reader.join()


def _profile(reference: Reference, name: str) -> NumericProfile | TextProfile:
    feature = reference.features[name]
    if isinstance(feature, TextReference):
        return TextProfile(name)
    rules = reference.rules[name]
    profile = NumericProfile(
        name,
        feature.kind,
        shift=feature.mean,
        grid=feature.grid,
        grid_counts=np.zeros(feature.grid.size + 1, dtype=np.int64),
    )
    if feature.bucket_edges is not None:
        profile.bucket_edges = feature.bucket_edges
        profile.bucket_counts = np.zeros(feature.bucket_edges.size - 1, dtype=np.int64)
    low = rules.lower_bound if rules.lower_bound is not None else -math.inf
    high = rules.upper_bound if rules.upper_bound is not None else math.inf
    if rules.is_non_negative:
        low = max(low, 0.0)
    if math.isfinite(low) or math.isfinite(high):
        profile.bounds = (low, high)
    return profile


def _multivariate(reference: Reference) -> ReconstructionCheck | None:
    model = reference.multivariate
    enabled = (reference.config.get("multivariate_constraints") or {}).get("perform_comparison")
    if not model or enabled == "Disabled":
        return None
    if not set(model.get("features", [])) <= reference.numeric:
        return None
    return ReconstructionCheck(model)


def _add(profile: NumericProfile | TextProfile, column: Any) -> Any:
    if isinstance(profile, TextProfile):
        profile.add(column)
        return None
    numbers = as_numbers(column, whole=profile.kind == "Integral")
    profile.add(numbers)
    return numbers.values


def _feature(
    feature: NumericReference | TextReference,
    rules: FeatureRules,
    profile: NumericProfile | TextProfile,
) -> dict[str, Any]:
    if isinstance(feature, NumericReference):
        assert isinstance(profile, NumericProfile)
        return _numeric_feature(feature, rules, profile)
    assert isinstance(profile, TextProfile)
    return _text_feature(feature, rules, profile)


def _numeric_feature(
    feature: NumericReference, rules: FeatureRules, profile: NumericProfile
) -> dict[str, Any]:
    config = rules.config
    seen = profile.present + profile.missing
    non_null = profile.present + profile.mismatched
    out: dict[str, Any] = {
        "name": feature.name,
        "type": feature.kind,
        "rows": seen,
        "present": profile.present,
        "missing": seen - non_null,
        "mismatched": profile.mismatched,
        "completeness": non_null / seen if seen else None,
        "current": _moments(profile),
        "reference": {
            "count": feature.count,
            "mean": feature.mean,
            "std": feature.std,
            "min": feature.low,
            "max": feature.high,
            "completeness": rules.completeness,
        },
        "violations": [],
    }
    checks = config.get("evaluate_constraints") != "Disabled"
    violations: list[dict[str, Any]] = out["violations"]
    if checks:
        wrong = profile.mismatched + (profile.fractional if feature.kind == "Integral" else 0)
        share = wrong / non_null if non_null else 0.0
        limit = threshold(config.get("datatype_check_threshold"), 0.1)
        out["type_mismatch_share"] = share
        if share > limit:
            violations.append(
                _violation(
                    feature.name,
                    "data_type_check",
                    f"{share:.2%} of values are not {feature.kind} (threshold {limit:.0%})",
                )
            )
        violations += _completeness(feature.name, rules, config, non_null, seen)
        if profile.bounds is not None and profile.present:
            share = profile.outside / profile.present
            limit = threshold(config.get("range_check_threshold"), 0.01)
            out["out_of_range_share"] = share
            if share > limit:
                low, high = profile.bounds
                violations.append(
                    _violation(
                        feature.name,
                        "out_of_range_check",
                        f"{share:.2%} of values lie outside [{low:.6g}, {high:.6g}] "
                        f"(threshold {limit:.0%})",
                    )
                )
    if profile.present == 0 or profile.grid_counts is None:
        out["drift"] = {"status": "no_values", "flagged": False}
        return out
    distances = drift.numeric_distances(
        feature.grid,
        feature.cdf,
        feature.count,
        feature.std,
        feature.deciles,
        profile.grid_counts,
        profile.below_grid,
        profile.above_grid,
    )
    by = []
    if config.get("perform_comparison") != "Disabled":
        robust = _robust(config)
        limit = threshold(config.get("comparison_threshold"), 0.1)
        distance = distances["linf_robust"] if robust else distances["ks"]
        if distance > limit:
            by.append(f"{'robust ' if robust else ''}KS distance {distance:.4g} > {limit:g}")
        wasserstein = config.get("wasserstein_threshold")
        if wasserstein not in (None, "Disabled"):
            limit = threshold(wasserstein, 0.1)
            normed = distances["wasserstein_normed"]
            allowance = distances["ks_critical"] if robust else 0.0
            if normed - allowance > limit and distances["ks"] > distances["ks_critical"]:
                by.append(
                    f"{'robust ' if robust else ''}normalised Wasserstein distance "
                    f"{normed - allowance:.4g} > {limit:g}"
                )
    out["drift"] = {"status": "ok", **distances, "flagged": bool(by), "by": by}
    if by:
        violations.append(_violation(feature.name, "baseline_drift_check", "; ".join(by)))
    out["chart"] = _numeric_chart(feature, profile)
    return out


def _text_feature(
    feature: TextReference, rules: FeatureRules, profile: TextProfile
) -> dict[str, Any]:
    config = rules.config
    seen = profile.present + profile.missing
    current = dict(profile.values)
    if profile.folded:
        current["__other__"] = profile.folded
    out: dict[str, Any] = {
        "name": feature.name,
        "type": "String",
        "rows": seen,
        "present": profile.present,
        "missing": profile.missing,
        "completeness": profile.present / seen if seen else None,
        "distinct": profile.distinct,
        "reference": {"count": feature.count, "completeness": rules.completeness},
        "violations": [],
    }
    violations: list[dict[str, Any]] = out["violations"]
    if config.get("evaluate_constraints") != "Disabled":
        violations += _completeness(feature.name, rules, config, profile.present, seen)
        if rules.domains is not None and profile.present:
            allowed = set(rules.domains)
            unknown = {v: n for v, n in current.items() if v not in allowed}
            share = sum(unknown.values()) / profile.present
            limit = threshold(config.get("domain_content_threshold"), 0.1)
            out["unknown_share"] = share
            out["unknown_values"] = sorted(unknown, key=lambda v: -unknown[v])[:20]
            if share > limit:
                violations.append(
                    _violation(
                        feature.name,
                        "categorical_values_check",
                        f"{share:.2%} of values are outside the baseline's domain, e.g. "
                        + ", ".join(repr(v) for v in out["unknown_values"][:5])
                        + f" (threshold {limit:.0%})",
                    )
                )
    if profile.present == 0:
        out["drift"] = {"status": "no_values", "flagged": False}
        return out
    distances = drift.categorical_distances(feature.counts, current)
    by = []
    if config.get("perform_comparison") != "Disabled":
        limit = threshold(config.get("categorical_comparison_threshold"), 0.1)
        method = str(config.get("categorical_drift_method", "LInfinity")).lower()
        if method == "chisquared":
            if distances["chi_square_p_value"] < limit:
                by.append(f"chi-square p-value {distances['chi_square_p_value']:.3g} < {limit:g}")
        else:
            robust = _robust(config)
            distance = distances["linf_robust"] if robust else distances["linf"]
            if distance > limit:
                by.append(
                    f"{'robust ' if robust else ''}L-infinity distance {distance:.4g} > {limit:g}"
                    f" (at {distances['linf_category']!r})"
                )
    out["drift"] = {"status": "ok", **distances, "flagged": bool(by), "by": by}
    if by:
        violations.append(_violation(feature.name, "baseline_drift_check", "; ".join(by)))
    out["chart"] = _text_chart(feature.counts, current)
    return out


def _completeness(
    name: str, rules: FeatureRules, config: dict[str, Any], non_null: int, seen: int
) -> list[dict[str, Any]]:
    if rules.completeness is None or not seen:
        return []
    expected = float(rules.completeness)
    current = non_null / seen
    robust = _robust(config)
    allowance = COMPLETENESS_SE * math.sqrt(expected * (1 - expected) / seen) if robust else 0.0
    if current >= expected - allowance - 1e-12:
        return []
    return [
        _violation(
            name,
            "completeness_check",
            f"completeness {current:.4f} is below the baseline's {expected:.4f}",
        )
    ]


def _robust(config: dict[str, Any]) -> bool:
    """SageMaker's `comparison_method`: Robust (the default) or Simple, as either spelling."""
    return str(config.get("comparison_method", "Robust")).lower() in ("robust", "linf_robust")


def _column_violations(counts: WindowCounts, reference: Reference) -> list[dict[str, Any]]:
    out = []
    width = len(reference.names)
    if counts.short_rows:
        out.append(
            _violation(
                "",
                "missing_column_check",
                f"{counts.short_rows} rows had fewer than the baseline's {width} columns "
                "and were left out",
            )
        )
    for name, times in sorted(counts.absent.items()):
        out.append(_violation(name, "missing_column_check", f"absent from {times} JSON records"))
    if counts.long_rows:
        out.append(
            _violation(
                "",
                "extra_column_check",
                f"{counts.long_rows} rows had more than the baseline's {width} columns "
                "and were left out",
            )
        )
    for name, times in sorted(counts.extra.items()):
        out.append(
            _violation(name, "extra_column_check", f"not in the baseline; in {times} records")
        )
    return out


def _violation(feature: str, kind: str, description: str) -> dict[str, Any]:
    return {"feature_name": feature, "constraint_check_type": kind, "description": description}


def _moments(profile: NumericProfile) -> dict[str, Any]:
    if not profile.present:
        return {"count": 0}
    return {
        "count": profile.present,
        "mean": profile.mean,
        "std": profile.std,
        "min": profile.low,
        "max": profile.high,
    }


def _numeric_chart(feature: NumericReference, profile: NumericProfile) -> dict[str, Any]:
    """Shares of both distributions in equal-width bins over the reference's range, plus
    what fell below and above it (read from the CDFs at the grid points)."""
    assert profile.grid_counts is not None
    low, high = feature.low, feature.high
    if not high > low:
        high = low + 1.0
    edges = np.linspace(low, high, CHART_BINS + 1)
    current_cdf = np.cumsum(profile.grid_counts[:-1]) / max(profile.present, 1)
    reference_at = np.interp(edges, feature.grid, feature.cdf)
    reference_at[0] = 0.0  # the CDF just below the reference's minimum
    current_at = np.interp(edges, feature.grid, current_cdf)
    below = profile.under_grid / max(profile.present, 1)
    above = 1.0 - float(current_cdf[-1])
    current_at[0] = below
    reference, current = np.diff(reference_at), np.diff(current_at)
    return {
        "edges": edges.tolist(),
        "reference": reference.tolist(),
        "current": np.clip(current, 0.0, None).tolist(),
        "current_below": below,
        "current_above": above,
    }


def _text_chart(reference: dict[str, int], current: dict[str, int]) -> dict[str, Any]:
    ref_total = sum(reference.values()) or 1
    cur_total = sum(current.values()) or 1
    names = sorted(
        reference.keys() | current.keys(),
        key=lambda k: -(reference.get(k, 0) / ref_total + current.get(k, 0) / cur_total),
    )[:CHART_CATEGORIES]
    return {
        "categories": names,
        "reference": [reference.get(k, 0) / ref_total for k in names],
        "current": [current.get(k, 0) / cur_total for k in names],
    }


def _window_statistics(
    profiles: dict[str, NumericProfile | TextProfile], rows: int
) -> dict[str, Any]:
    """statistics.json of the window (no sketch: drift reads the grid counts instead)."""
    features = [feature_statistics(profile) for profile in profiles.values()]
    return {"version": 0, "dataset": {"item_count": rows}, "features": features}
