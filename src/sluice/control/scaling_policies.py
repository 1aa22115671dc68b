"""Scaling policies as Application Auto Scaling defines them, and the arithmetic of each:
validation (ValidationError names the field), target tracking's desired count, and the
step a step-scaling policy takes for a breach. Pure: no clock, no store."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sluice.control.validation import check_range
from sluice.errors import ValidationError

TARGET_TRACKING = "TargetTrackingScaling"
STEP = "StepScaling"
INVOCATIONS_PER_INSTANCE = "SageMakerVariantInvocationsPerInstance"
"""Invocations per instance per minute (SageMaker's predefined metric)."""
DEFAULT_COOLDOWN_S = 300
"""Application Auto Scaling's default cooldowns for SageMaker variants."""
ADJUSTMENT_TYPES = ("ChangeInCapacity", "PercentChangeInCapacity", "ExactCapacity")
CUSTOM_STATISTICS = ("Average", "Minimum", "Maximum", "SampleCount", "Sum")


@dataclass(frozen=True)
class TargetTracking:
    target: float
    predefined: str | None
    """INVOCATIONS_PER_INSTANCE, or None for a customized metric."""
    namespace: str = ""
    metric: str = ""
    dimensions: tuple[tuple[str, str], ...] = ()
    statistic: str = "Average"
    scale_out_cooldown_s: int = DEFAULT_COOLDOWN_S
    scale_in_cooldown_s: int = DEFAULT_COOLDOWN_S
    disable_scale_in: bool = False

    def desired(self, value: float, current: int) -> int:
        """Instances that bring the metric to the target: the invocation rate over the
        target for the predefined metric (whose value here is the variant's total per
        minute), the current count scaled by value/target for a customized one."""
        load = value if self.predefined else value * current
        # A hair below an exact multiple is that multiple, not one more.
        return max(0, math.ceil(load / self.target - 1e-9))


@dataclass(frozen=True)
class Step:
    lower: float | None
    upper: float | None
    adjustment: int

    def holds(self, breach: float) -> bool:
        """Application Auto Scaling's intervals: lower bound inclusive, upper exclusive."""
        return (self.lower is None or breach >= self.lower) and (
            self.upper is None or breach < self.upper
        )


@dataclass(frozen=True)
class StepScaling:
    adjustment_type: str
    steps: tuple[Step, ...]
    cooldown_s: int = DEFAULT_COOLDOWN_S
    min_adjustment_magnitude: int | None = None

    def capacity(self, breach: float, current: int) -> int | None:
        """The count the step for `breach` (metric value minus the alarm's threshold) asks
        for; None when no step holds it."""
        step = next((s for s in self.steps if s.holds(breach)), None)
        if step is None:
            return None
        if self.adjustment_type == "ExactCapacity":
            return step.adjustment
        if self.adjustment_type == "ChangeInCapacity":
            return current + step.adjustment
        change = current * step.adjustment / 100
        change = math.floor(change) if change > 0 else math.ceil(change)
        magnitude = self.min_adjustment_magnitude or 0
        if step.adjustment > 0:
            change = max(change, magnitude, 1)
        elif step.adjustment < 0:
            change = min(change, -magnitude, -1)
        return current + change


def parse(policy_type: str, configuration: Mapping[str, Any]) -> TargetTracking | StepScaling:
    """A policy's configuration (Application Auto Scaling's fields), checked."""
    if policy_type == TARGET_TRACKING:
        return _target_tracking(configuration)
    if policy_type == STEP:
        return _step_scaling(configuration)
    raise ValidationError(
        f"PolicyType must be {TARGET_TRACKING} or {STEP} (predictive scaling is not "
        "supported by sluice)",
        field="PolicyType",
    )


def _target_tracking(given: Mapping[str, Any]) -> TargetTracking:
    where = "TargetTrackingScalingPolicyConfiguration"
    if "TargetValue" not in given:
        raise ValidationError(f"{where}.TargetValue is required", field=f"{where}.TargetValue")
    target = float(given["TargetValue"])
    if not math.isfinite(target) or target <= 0:
        raise ValidationError(
            f"{where}.TargetValue must be a number above 0", field=f"{where}.TargetValue"
        )
    cooldowns = {}
    for name in ("ScaleOutCooldown", "ScaleInCooldown"):
        value = given.get(name, DEFAULT_COOLDOWN_S)
        check_range(value, f"{where}.{name}", 0, 86_400)
        cooldowns[name] = int(value)
    predefined = given.get("PredefinedMetricSpecification")
    custom = given.get("CustomizedMetricSpecification")
    common: dict[str, Any] = {
        "target": target,
        "scale_out_cooldown_s": cooldowns["ScaleOutCooldown"],
        "scale_in_cooldown_s": cooldowns["ScaleInCooldown"],
        "disable_scale_in": bool(given.get("DisableScaleIn", False)),
    }
    if (predefined is None) == (custom is None):
        raise ValidationError(
            f"{where} takes one of PredefinedMetricSpecification and CustomizedMetricSpecification",
            field=where,
        )
    if predefined is not None:
        kind = predefined.get("PredefinedMetricType")
        if kind != INVOCATIONS_PER_INSTANCE:
            raise ValidationError(
                f"PredefinedMetricType {kind!r} is not supported by sluice for SageMaker "
                f"variants; use {INVOCATIONS_PER_INSTANCE} or a CustomizedMetricSpecification",
                field=f"{where}.PredefinedMetricSpecification.PredefinedMetricType",
            )
        return TargetTracking(predefined=INVOCATIONS_PER_INSTANCE, **common)
    assert custom is not None
    if custom.get("Metrics"):
        raise ValidationError(
            "metric math (Metrics) is not supported by sluice; name a MetricName",
            field=f"{where}.CustomizedMetricSpecification.Metrics",
        )
    for name in ("MetricName", "Namespace", "Statistic"):
        if not custom.get(name):
            raise ValidationError(
                f"CustomizedMetricSpecification.{name} is required",
                field=f"{where}.CustomizedMetricSpecification.{name}",
            )
    if custom["Statistic"] not in CUSTOM_STATISTICS:
        raise ValidationError(
            f"Statistic must be one of {', '.join(CUSTOM_STATISTICS)}",
            field=f"{where}.CustomizedMetricSpecification.Statistic",
        )
    dimensions = tuple(sorted((d["Name"], d["Value"]) for d in custom.get("Dimensions") or ()))
    return TargetTracking(
        predefined=None,
        namespace=custom["Namespace"],
        metric=custom["MetricName"],
        dimensions=dimensions,
        statistic=custom["Statistic"],
        **common,
    )


def _step_scaling(given: Mapping[str, Any]) -> StepScaling:
    where = "StepScalingPolicyConfiguration"
    kind = given.get("AdjustmentType")
    if kind not in ADJUSTMENT_TYPES:
        raise ValidationError(
            f"{where}.AdjustmentType must be one of {', '.join(ADJUSTMENT_TYPES)}",
            field=f"{where}.AdjustmentType",
        )
    raw: Sequence[Mapping[str, Any]] = given.get("StepAdjustments") or ()
    if not raw:
        raise ValidationError(
            f"{where}.StepAdjustments needs at least one step", field=f"{where}.StepAdjustments"
        )
    steps = tuple(
        Step(s.get("MetricIntervalLowerBound"), s.get("MetricIntervalUpperBound"),
             int(s["ScalingAdjustment"]))
        for s in raw
    )  # fmt: skip
    _check_steps(steps, f"{where}.StepAdjustments")
    if kind == "ExactCapacity" and any(s.adjustment < 0 for s in steps):
        raise ValidationError(
            "an ExactCapacity step's ScalingAdjustment is a count (0 or more)",
            field=f"{where}.StepAdjustments",
        )
    cooldown = given.get("Cooldown", DEFAULT_COOLDOWN_S)
    check_range(cooldown, f"{where}.Cooldown", 0, 86_400)
    magnitude = given.get("MinAdjustmentMagnitude")
    if magnitude is not None:
        if kind != "PercentChangeInCapacity":
            raise ValidationError(
                "MinAdjustmentMagnitude applies to PercentChangeInCapacity only",
                field=f"{where}.MinAdjustmentMagnitude",
            )
        check_range(magnitude, f"{where}.MinAdjustmentMagnitude", 1)
    aggregation = given.get("MetricAggregationType", "Average")
    if aggregation not in ("Average", "Minimum", "Maximum"):
        raise ValidationError(
            "MetricAggregationType must be Average, Minimum or Maximum",
            field=f"{where}.MetricAggregationType",
        )
    return StepScaling(kind, steps, int(cooldown), magnitude)


def _check_steps(steps: Sequence[Step], field: str) -> None:
    """Application Auto Scaling's rules: bounds in order, one open end at most on each
    side, and the intervals neither overlap nor leave a gap."""
    for step in steps:
        if step.lower is None and step.upper is None and len(steps) > 1:
            raise ValidationError("only a single step may be unbounded on both sides", field=field)
        if step.lower is not None and step.upper is not None and step.lower >= step.upper:
            raise ValidationError(
                "MetricIntervalLowerBound must be below MetricIntervalUpperBound", field=field
            )
    if sum(s.lower is None for s in steps) > 1 or sum(s.upper is None for s in steps) > 1:
        raise ValidationError(
            "at most one step may have no lower bound, and one no upper bound", field=field
        )
    ordered = sorted(steps, key=lambda s: -math.inf if s.lower is None else s.lower)
    for before, after in zip(ordered, ordered[1:], strict=False):
        if before.upper is None or after.lower is None or before.upper != after.lower:
            raise ValidationError(
                "step intervals must not overlap or leave a gap (each upper bound is the "
                "next step's lower bound)",
                field=field,
            )
