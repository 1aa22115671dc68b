from __future__ import annotations

from typing import Any

import pytest

from sluice.control.policies import DeploymentConfig, plan, rollback_steps
from sluice.entities import EndpointConfig, VariantKind, VariantSpec
from sluice.errors import ValidationError


def _config(name: str, instances: int = 4, variants: tuple[str, ...] = ("A",)) -> EndpointConfig:
    return EndpointConfig(
        name,
        tuple(VariantSpec(v, "m", VariantKind.PRODUCTION, 1.0, instances) for v in variants),
    )


def _policy(doc: dict[str, Any]) -> DeploymentConfig:
    return DeploymentConfig.model_validate(doc)


def _blue_green(kind: str, wait: int = 60, **routing: Any) -> DeploymentConfig:
    return _policy(
        {
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": {
                    "Type": kind,
                    "WaitIntervalInSeconds": wait,
                    **routing,
                },
                "TerminationWaitInSeconds": 30,
            }
        }
    )


BLUE, GREEN = _config("v1"), _config("v2")


def test_no_policy_switches_at_once_without_baking() -> None:
    (step,) = plan(DeploymentConfig(), BLUE, _config("other", variants=("X",)))
    assert step.green_shares == {"A": 1.0, "X": 1.0} and step.bake_s == 0


def test_all_at_once_bakes_then_waits_for_termination() -> None:
    steps = plan(_blue_green("ALL_AT_ONCE"), BLUE, GREEN)
    assert [(s.green_shares["A"], s.bake_s) for s in steps] == [(1.0, 60), (1.0, 30)]


def test_canary_by_percent_and_by_instances() -> None:
    by_percent = plan(
        _blue_green("CANARY", CanarySize={"Type": "CAPACITY_PERCENT", "Value": 10}), BLUE, GREEN
    )
    assert [(s.green_shares["A"], s.bake_s) for s in by_percent] == [(0.1, 60), (1, 0), (1, 30)]
    assert by_percent[0].guarded and not by_percent[1].guarded
    by_count = plan(
        _blue_green("CANARY", CanarySize={"Type": "INSTANCE_COUNT", "Value": 1}), BLUE, GREEN
    )
    assert by_count[0].green_shares == {"A": 0.25}


def test_linear_steps_reach_everything() -> None:
    steps = plan(
        _blue_green("LINEAR", LinearStepSize={"Type": "CAPACITY_PERCENT", "Value": 30}), BLUE, GREEN
    )
    assert [s.green_shares["A"] for s in steps] == [0.3, 0.6, 0.9, 1.0, 1.0]
    assert [s.bake_s for s in steps] == [60, 60, 60, 60, 30]


def test_rolling_replaces_batch_by_batch_and_keeps_capacity() -> None:
    policy = _policy(
        {
            "RollingUpdatePolicy": {
                "MaximumBatchSize": {"Type": "INSTANCE_COUNT", "Value": 1},
                "WaitIntervalInSeconds": 5,
            }
        }
    )
    steps = plan(policy, BLUE, GREEN)
    assert [s.counts["A"] for s in steps] == [(3, 1), (2, 2), (1, 3), (0, 4)]
    assert [s.green_shares["A"] for s in steps] == [0.25, 0.5, 0.75, 1.0]
    assert all(sum(s.counts["A"]) >= 4 - 1 for s in steps)
    back = rollback_steps(policy, {"A": (2, 2)}, BLUE)
    assert [s.counts["A"] for s in back] == [(4, 0)]  # no rollback batch size: all at once
    doc = policy.document()
    doc["RollingUpdatePolicy"]["RollbackMaximumBatchSize"] = {  # type: ignore[index]
        "Type": "INSTANCE_COUNT",
        "Value": 1,
    }
    batched = DeploymentConfig.model_validate(doc)
    assert [s.counts["A"] for s in rollback_steps(batched, {"A": (1, 3)}, BLUE)] == [
        (2, 2),
        (3, 1),
        (4, 0),
    ]


@pytest.mark.parametrize(
    ("policy", "field", "message"),
    [
        (
            {"BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": {"Type": "CANARY"}}},
            "CanarySize",
            "CANARY needs a CanarySize",
        ),
        (
            {
                "BlueGreenUpdatePolicy": {
                    "TrafficRoutingConfiguration": {
                        "Type": "CANARY",
                        "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 60},
                    }
                }
            },
            "CanarySize",
            "at most 50%",
        ),
        (
            {
                "BlueGreenUpdatePolicy": {
                    "TrafficRoutingConfiguration": {
                        "Type": "LINEAR",
                        "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 5},
                    }
                }
            },
            "LinearStepSize",
            "10% to 50%",
        ),
        (
            {
                "BlueGreenUpdatePolicy": {
                    "TrafficRoutingConfiguration": {
                        "Type": "ALL_AT_ONCE",
                        "WaitIntervalInSeconds": 600,
                    },
                    "MaximumExecutionTimeoutInSeconds": 600,
                }
            },
            "MaximumExecutionTimeoutInSeconds",
            "must exceed the sum of the waits",
        ),
        (
            {"AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "x"}]}},
            "AutoRollbackConfiguration",
            "need a BlueGreenUpdatePolicy",
        ),
    ],
)
def test_bad_policies_name_the_field(policy: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message) as caught:
        plan(_policy(policy), BLUE, GREEN)
    assert caught.value.field is not None and field in caught.value.field


def test_guarded_updates_keep_variant_names_and_rolling_needs_one_variant() -> None:
    with pytest.raises(ValidationError, match="keep the production variant names"):
        plan(_blue_green("ALL_AT_ONCE"), BLUE, _config("v2", variants=("B",)))
    rolling = _policy(
        {
            "RollingUpdatePolicy": {
                "MaximumBatchSize": {"Type": "CAPACITY_PERCENT", "Value": 25},
                "WaitIntervalInSeconds": 0,
            }
        }
    )
    two = ("A", "B")
    with pytest.raises(ValidationError, match="one production variant"):
        plan(rolling, _config("v1", variants=two), _config("v2", variants=two))


def test_the_document_round_trips_in_sagemaker_field_names() -> None:
    doc = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "CANARY",
                "WaitIntervalInSeconds": 300,
                "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10},
            },
            "TerminationWaitInSeconds": 0,
        },
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "five-xx"}]},
    }
    policy = _policy(doc)
    assert policy.document() == doc and policy.alarm_names == ("five-xx",)
