"""A pipeline step's RetryPolicies: which failures they retry, after how long, and until
when (MaxAttempts, ExpireAfterMin)."""

from __future__ import annotations

from typing import Any

from sluice.control.pipelines import Outcome, retry_delay
from sluice.entities import StepStatus
from sluice.pipelines.definition import Step

INTERNAL = Outcome(StepStatus.FAILED, "InternalServerError: OSError: disk full", {})


def step(*policies: dict[str, Any]) -> Step:
    return Step("Train", "Training", {}, retry_policies=policies)


def delays(step: Step, outcome: Outcome = INTERNAL, elapsed_s: float = 0.0) -> list[float]:
    """The delays before each attempt after the first, until the policy gives up."""
    out: list[float] = []
    attempt = 1
    while (delay := retry_delay(step, outcome, attempt, elapsed_s + sum(out))) is not None:
        out.append(delay)
        attempt += 1
        assert attempt < 100
    return out


def test_internal_failures_are_retried_with_backoff_up_to_max_attempts() -> None:
    policy = {
        "ExceptionType": ["SageMaker.JOB_INTERNAL_ERROR"],
        "IntervalSeconds": 2,
        "BackoffRate": 3.0,
        "MaxAttempts": 4,
    }
    assert delays(step(policy)) == [2.0, 6.0, 18.0]  # 4 attempts in all
    assert delays(step({"ExceptionType": ["Step.SERVICE_FAULT"]})) == [1.0, 2.0, 4.0, 8.0]


def test_expire_after_min_ends_retries_that_would_start_too_late() -> None:
    policy = {
        "ExceptionType": ["Step.SERVICE_FAULT"],
        "IntervalSeconds": 10,
        "BackoffRate": 2.0,
        "ExpireAfterMin": 1,
    }
    # Each attempt is assumed to fail at once: starts at 10, 30 (10 + 20) s; 70 is too late.
    assert delays(step(policy)) == [10.0, 20.0]
    assert delays(step(policy), elapsed_s=55) == []
    # Without MaxAttempts it is the time that limits, not the default of 5 attempts.
    quick = {**policy, "IntervalSeconds": 1, "BackoffRate": 1.0}
    assert len(delays(step(quick))) == 60
    assert len(delays(step({**quick, "MaxAttempts": 3}))) == 2


def test_a_scripts_own_failure_and_uncovered_types_are_not_retried() -> None:
    policy = {"ExceptionType": ["SageMaker.JOB_INTERNAL_ERROR"], "MaxAttempts": 3}
    own = Outcome(StepStatus.FAILED, "AlgorithmError: the program exited with code 1", {})
    assert delays(step(policy), own) == []
    assert delays(step({"ExceptionType": ["SageMaker.CAPACITY_ERROR"]})) == []
    assert delays(step()) == []
    assert retry_delay(step(policy), Outcome(StepStatus.SUCCEEDED, None, {}), 1, 0) is None
