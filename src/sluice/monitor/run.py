"""One monitoring check, start to finish: data quality (a baseline against the window's
captured inputs) or model quality (the window's predictions against ground truth)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sluice.monitor import outputs, quality
from sluice.monitor.capture import Columns, WindowReader
from sluice.monitor.check import CheckResult, check
from sluice.monitor.ground_truth import Attributes, join
from sluice.monitor.quality_rules import KEYS, check_constraints
from sluice.monitor.reference import Reference
from sluice.monitor.times import iso

MIN_GROUND_TRUTH_ROWS = 100
"""Fewer joined rows than this and a model-quality check reports that it has not enough
ground truth yet, rather than metrics too noisy to trust."""
INSUFFICIENT = "InsufficientGroundTruth"


def data_quality(
    reference: Reference,
    sources: Sequence[Path],
    start: float | None,
    end: float | None,
    out: Path | None = None,
    title: str = "",
) -> CheckResult:
    """Check the inputs captured in [start, end) under `sources` (capture folders of one
    variant each, or files) and, with `out`, write the execution's files there."""
    reader = WindowReader(sources, Columns(reference.names, reference.numeric), start, end)
    result = check(reference, reader.blocks(), reader.counts, _window(start, end, sources))
    if out is not None:
        result.report["files"] = outputs.write(result, out, title)
    return result


def model_quality(
    problem: str,
    constraints: dict[str, Any],
    sources: Sequence[Path],
    ground_truth: Path,
    start: float | None,
    end: float | None,
    attributes: Attributes,
    out: Path | None = None,
    title: str = "",
    baseline: dict[str, Any] | None = None,
    min_rows: int = MIN_GROUND_TRUTH_ROWS,
) -> CheckResult:
    """Join the predictions captured in [start, end) with the ground truth under
    `ground_truth`, compute `problem`'s metrics and check them against `constraints`.
    Under `min_rows` joined rows the status is InsufficientGroundTruth and no metric is
    judged. `baseline`: the baseline's statistics, shown beside the window's."""
    began = time.perf_counter()
    check_constraints(problem, constraints)
    joined = join(sources, ground_truth, start, end, attributes)
    counts = joined.counts.to_dict()
    window = _window(start, end, sources) | {"ground_truth": str(ground_truth)}
    if len(joined.pairs) < min_rows:
        statistics: dict[str, Any] = {}
        violations: list[dict[str, Any]] = []
        status = INSUFFICIENT
        reason = (
            f"not enough ground truth yet: {len(joined.pairs)} rows joined, "
            f"{min_rows} needed ({counts['captured_records']} records captured in the "
            f"window, {counts['labelled_records']} of them labelled)"
        )
    else:
        statistics = quality.metrics(problem, joined.pairs, attributes.positive)
        violations = quality.violations(problem, statistics, constraints)
        status = "CompletedWithViolations" if violations else "Completed"
        reason = ""
    report = {
        "kind": "model_quality",
        "problem_type": problem,
        "status": status,
        "reason": reason,
        "window": window,
        "counts": counts,
        "min_rows": min_rows,
        "metrics": statistics.get(f"{KEYS[problem]}_metrics", {}),
        "baseline": (baseline or {}).get(f"{KEYS[problem]}_metrics", {}),
        "constraints": constraints.get(f"{KEYS[problem]}_constraints", {}),
        "violations": violations,
        "seconds": round(time.perf_counter() - began, 4),
    }
    result = CheckResult(
        report,
        {"violations": violations},
        {"version": 0.0, "dataset": {"item_count": len(joined.pairs)}, **statistics},
    )
    if out is not None:
        result.report["files"] = outputs.write(result, out, title)
    return result


def _window(start: float | None, end: float | None, sources: Sequence[Path]) -> dict[str, Any]:
    return {
        "start": iso(start) if start is not None else None,
        "end": iso(end) if end is not None else None,
        "sources": [str(s) for s in sources],
    }
