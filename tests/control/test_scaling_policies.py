"""Scaling policies: Application Auto Scaling's validation rules and the arithmetic of
target tracking and step scaling."""

from __future__ import annotations

from typing import Any

import pytest

from sluice.control.scaling_policies import StepScaling, TargetTracking, parse
from sluice.errors import ValidationError

PER_INSTANCE = {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"}


def steps(*bounds: tuple[float | None, float | None, int], **extra: Any) -> dict[str, Any]:
    return {
        "AdjustmentType": extra.pop("kind", "ChangeInCapacity"),
        "StepAdjustments": [
            {
                **({"MetricIntervalLowerBound": low} if low is not None else {}),
                **({"MetricIntervalUpperBound": high} if high is not None else {}),
                "ScalingAdjustment": change,
            }
            for low, high, change in bounds
        ],
        **extra,
    }


def test_target_tracking_wants_the_rate_over_the_target_rounded_up() -> None:
    rules = parse(
        "TargetTrackingScaling",
        {"TargetValue": 70, "PredefinedMetricSpecification": PER_INSTANCE},
    )
    assert isinstance(rules, TargetTracking)
    assert (rules.scale_in_cooldown_s, rules.scale_out_cooldown_s) == (300, 300)
    assert rules.desired(0, 3) == 0
    assert rules.desired(140, 1) == 2  # an exact multiple is not one more
    assert rules.desired(141, 1) == 3
    custom = parse(
        "TargetTrackingScaling",
        {"TargetValue": 50, "CustomizedMetricSpecification": {
            "MetricName": "CPUUtilization", "Namespace": "/aws/sagemaker/Endpoints",
            "Statistic": "Average", "Dimensions": [{"Name": "VariantName", "Value": "A"}]}},
    )  # fmt: skip
    assert isinstance(custom, TargetTracking) and custom.predefined is None
    assert custom.desired(90, 2) == 4  # 2 instances at 90 % need 4 to sit at 50 %


@pytest.mark.parametrize(
    ("configuration", "field"),
    [
        ({"PredefinedMetricSpecification": PER_INSTANCE}, "TargetValue"),
        ({"TargetValue": 0, "PredefinedMetricSpecification": PER_INSTANCE}, "TargetValue"),
        ({"TargetValue": 1}, "TargetTrackingScalingPolicyConfiguration"),
        ({"TargetValue": 1, "PredefinedMetricSpecification": {"PredefinedMetricType": "ALB"}},
         "PredefinedMetricType"),
        ({"TargetValue": 1, "PredefinedMetricSpecification": PER_INSTANCE,
          "ScaleInCooldown": -1}, "ScaleInCooldown"),
        ({"TargetValue": 1, "CustomizedMetricSpecification": {"MetricName": "m",
          "Namespace": "n", "Statistic": "p99"}}, "Statistic"),
    ],
)  # fmt: skip
def test_target_tracking_refusals_name_the_field(configuration: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse("TargetTrackingScaling", configuration)
    assert caught.value.field is not None and caught.value.field.endswith(field)


def test_step_scaling_picks_the_step_holding_the_breach() -> None:
    rules = parse("StepScaling", steps((None, 0, -1), (0, 10, 1), (10, None, 3)))
    assert isinstance(rules, StepScaling)
    assert rules.capacity(-5, 4) == 3
    assert rules.capacity(0, 4) == 5  # lower bounds are inclusive
    assert rules.capacity(9.9, 4) == 5
    assert rules.capacity(10, 4) == 7
    exact = parse("StepScaling", steps((0, None, 6), kind="ExactCapacity"))
    assert isinstance(exact, StepScaling) and exact.capacity(1, 2) == 6
    assert exact.capacity(-1, 2) is None  # no step holds it
    percent = parse(
        "StepScaling",
        steps((0, None, 10), kind="PercentChangeInCapacity", MinAdjustmentMagnitude=2),
    )
    assert isinstance(percent, StepScaling)
    assert percent.capacity(5, 4) == 6  # 10 % of 4 is 0.4: the magnitude floor adds 2
    assert percent.capacity(5, 40) == 44


@pytest.mark.parametrize(
    "configuration",
    [
        steps((0, 5, 1), (6, None, 2)),  # a gap
        steps((0, 10, 1), (5, None, 2)),  # an overlap
        steps((None, 0, 1), (None, 5, 2)),  # two open lower ends
        steps((5, 5, 1)),  # empty interval
        steps((0, None, -1), kind="ExactCapacity"),
        steps((0, None, 1), kind="ChangeInCapacity", MinAdjustmentMagnitude=2),
        steps((0, None, 1), kind="Double"),
        {"AdjustmentType": "ChangeInCapacity", "StepAdjustments": []},
    ],
)
def test_step_scaling_refuses_what_application_auto_scaling_refuses(
    configuration: dict[str, Any],
) -> None:
    with pytest.raises(ValidationError):
        parse("StepScaling", configuration)


def test_unknown_policy_types_are_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        parse("PredictiveScaling", {})
    assert caught.value.field == "PolicyType"
