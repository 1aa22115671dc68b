"""Deployment policies: SageMaker's `DeploymentConfig` and the steps it turns into.

The models take SageMaker's field names (`BlueGreenUpdatePolicy`, `CanarySize`, ...), so the
native API, the SageMaker-compatible API and files share one schema; `ComparativeGuard` is
sluice's own addition. `plan` is pure: from a policy and the two configs it lists the steps
(green share per variant, instance counts for rolling updates, how long each bakes), which
the controller in `control/deployments.py` then carries out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticError

from sluice.entities import EndpointConfig
from sluice.errors import ValidationError

CapacityType = Literal["INSTANCE_COUNT", "CAPACITY_PERCENT"]


class _Shape(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    def document(self) -> dict[str, object]:
        """SageMaker's JSON form (field aliases, absent members left out)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class CapacitySize(_Shape):
    type: CapacityType = Field(alias="Type")
    value: int = Field(alias="Value", ge=1)

    def describe(self) -> str:
        return f"{self.value} %" if self.type == "CAPACITY_PERCENT" else f"{self.value} instances"


class TrafficRoutingConfiguration(_Shape):
    type: Literal["ALL_AT_ONCE", "CANARY", "LINEAR"] = Field(alias="Type")
    wait_interval_s: int = Field(
        0, alias="WaitIntervalInSeconds", ge=0, le=3600, description="Bake after each shift."
    )
    canary_size: CapacitySize | None = Field(None, alias="CanarySize")
    linear_step_size: CapacitySize | None = Field(None, alias="LinearStepSize")


class BlueGreenUpdatePolicy(_Shape):
    traffic_routing: TrafficRoutingConfiguration = Field(alias="TrafficRoutingConfiguration")
    termination_wait_s: int = Field(
        0,
        alias="TerminationWaitInSeconds",
        ge=0,
        le=3600,
        description="Final bake with all traffic on green and blue still up.",
    )
    max_execution_s: int | None = Field(
        None, alias="MaximumExecutionTimeoutInSeconds", ge=1, le=28800
    )


class RollingUpdatePolicy(_Shape):
    max_batch: CapacitySize = Field(alias="MaximumBatchSize")
    wait_interval_s: int = Field(alias="WaitIntervalInSeconds", ge=0, le=3600)
    max_execution_s: int | None = Field(
        None, alias="MaximumExecutionTimeoutInSeconds", ge=1, le=28800
    )
    rollback_max_batch: CapacitySize | None = Field(None, alias="RollbackMaximumBatchSize")


class AlarmName(_Shape):
    name: str = Field(alias="AlarmName", min_length=1, max_length=255)


class AutoRollbackConfiguration(_Shape):
    alarms: tuple[AlarmName, ...] = Field((), alias="Alarms", max_length=10)


class ComparativeGuard(_Shape):
    """Roll back when green is significantly worse than blue on the same window (sluice's own).

    Error rates: one-sided Fisher exact test, and the difference's lower confidence bound
    (Newcombe's score interval) must exceed the margin. Latency: one-sided Mann-Whitney test
    of green against blue slowed by the margin, and a bootstrap bound on the ratio of a tail
    percentile. Alpha is split (Bonferroni) over every look the deployment plans.
    """

    error_rate_margin: float = Field(
        0.0, alias="ErrorRateMargin", ge=0, le=1, description="Absolute, e.g. 0.01 = 1 point."
    )
    latency_margin: float = Field(
        0.2, alias="LatencyMargin", ge=0, le=10, description="Relative, e.g. 0.2 = 20 % slower."
    )
    latency_percentile: float = Field(99, alias="LatencyPercentile", gt=0, lt=100)
    alpha: float = Field(0.05, alias="Alpha", gt=0, lt=0.5)
    minimum_requests: int = Field(50, alias="MinimumRequests", ge=1)
    interval_s: float = Field(5, alias="EvaluationIntervalInSeconds", gt=0, le=3600)


class DeploymentConfig(_Shape):
    blue_green: BlueGreenUpdatePolicy | None = Field(None, alias="BlueGreenUpdatePolicy")
    rolling: RollingUpdatePolicy | None = Field(None, alias="RollingUpdatePolicy")
    auto_rollback: AutoRollbackConfiguration | None = Field(None, alias="AutoRollbackConfiguration")
    comparative_guard: ComparativeGuard | None = Field(None, alias="ComparativeGuard")

    @property
    def alarm_names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.auto_rollback.alarms) if self.auto_rollback else ()

    @property
    def kind(self) -> str:
        if self.rolling is not None:
            return "ROLLING"
        if self.blue_green is not None:
            return self.blue_green.traffic_routing.type
        return "NONE"

    @property
    def max_execution_s(self) -> int | None:
        policy = self.rolling or self.blue_green
        return policy.max_execution_s if policy else None


def parse_policy(document: Mapping[str, Any]) -> DeploymentConfig:
    """A DeploymentConfig from its document; a bad one is a ValidationError naming the field."""
    try:
        return DeploymentConfig.model_validate(document)
    except PydanticError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValidationError(f"DeploymentConfig.{where}: {first['msg']}", field=where) from None


@dataclass(frozen=True)
class Step:
    """One step of a deployment: reach this split, then bake (alarms watched throughout)."""

    label: str
    green_shares: dict[str, float]
    """Per production variant: the share of its traffic on green."""
    bake_s: float
    counts: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Rolling updates: per variant, (blue instances, green instances) after this step."""

    @property
    def guarded(self) -> bool:
        """Both fleets take traffic, so green can be compared with blue."""
        return any(0.0 < s < 1.0 for s in self.green_shares.values())

    def to_dict(self) -> dict[str, object]:
        return {
            "label": self.label,
            "green_shares": self.green_shares,
            "bake_s": self.bake_s,
            "counts": {k: list(v) for k, v in self.counts.items()},
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, object]) -> Step:
        counts = doc.get("counts") or {}
        assert isinstance(counts, dict)
        shares = doc["green_shares"]
        assert isinstance(shares, dict)
        bake = doc["bake_s"]
        assert isinstance(bake, int | float)
        return cls(
            str(doc["label"]),
            {str(k): float(v) for k, v in shares.items()},
            float(bake),
            {str(k): (int(v[0]), int(v[1])) for k, v in counts.items()},
        )


def plan(policy: DeploymentConfig, blue: EndpointConfig, green: EndpointConfig) -> list[Step]:
    """The steps that move an endpoint from `blue` to `green`; ValidationError if impossible."""
    validate(policy, blue, green)
    if policy.rolling is not None:
        return _rolling(policy.rolling, blue, green)
    names = _production_names(blue, green)
    everything = dict.fromkeys(names, 1.0)
    if policy.blue_green is None:
        return [Step("all traffic to green", everything, 0.0)]
    routing = policy.blue_green.traffic_routing
    wait = float(routing.wait_interval_s)
    steps: list[Step] = []
    if routing.type == "ALL_AT_ONCE":
        steps.append(Step("all traffic to green", everything, wait))
    elif routing.type == "CANARY":
        assert routing.canary_size is not None
        canary = _shares(routing.canary_size, green)
        steps.append(Step(f"canary {routing.canary_size.describe()}", canary, wait))
        steps.append(Step("all traffic to green", everything, 0.0))
    else:
        assert routing.linear_step_size is not None
        step = _shares(routing.linear_step_size, green)
        count = max(math.ceil(1.0 / s - 1e-9) for s in step.values())
        for k in range(1, count + 1):
            shares = {n: min(1.0, round(k * s, 6)) for n, s in step.items()}
            steps.append(Step(f"linear step {k} of {count}", shares, wait))
    if policy.blue_green.termination_wait_s:
        steps.append(
            Step("termination wait", everything, float(policy.blue_green.termination_wait_s))
        )
    return steps


def rollback_steps(
    policy: DeploymentConfig, counts: Mapping[str, tuple[int, int]], blue: EndpointConfig
) -> list[Step]:
    """Rolling updates: bring blue's capacity back in `RollbackMaximumBatchSize` batches.

    `counts` is where the update stands (blue, green instances per variant). Without a
    rollback batch size, blue comes back whole in one batch.
    """
    assert policy.rolling is not None
    full = {v.name: v.instance_count for v in blue.production}
    batch_size = policy.rolling.rollback_max_batch
    steps: list[Step] = []
    current = dict(counts)
    while any(b < full.get(n, b) or g > 0 for n, (b, g) in current.items()):
        nxt: dict[str, tuple[int, int]] = {}
        for name, (b, g) in current.items():
            target = full.get(name, b)
            size = target if batch_size is None else _batch(batch_size, target)
            nb = min(target, b + size)
            ng = 0 if nb >= target else max(0, g - size)
            nxt[name] = (nb, ng)
        shares = {n: _capacity_share(b, g) for n, (b, g) in nxt.items()}
        steps.append(Step(f"rollback batch {len(steps) + 1}", shares, 0.0, nxt))
        current = nxt
    return steps


def validate(policy: DeploymentConfig, blue: EndpointConfig, green: EndpointConfig) -> None:
    where = "DeploymentConfig"
    if policy.blue_green is not None and policy.rolling is not None:
        raise ValidationError(
            "give either BlueGreenUpdatePolicy or RollingUpdatePolicy, not both", field=where
        )
    guarded = policy.blue_green is not None or policy.rolling is not None
    if guarded and _production_names(blue, blue) != _production_names(green, green):
        raise ValidationError(
            "a guarded update needs the new endpoint config to keep the production variant "
            f"names ({', '.join(_production_names(blue, blue))}); got "
            f"{', '.join(_production_names(green, green))}",
            field="EndpointConfigName",
        )
    if (policy.auto_rollback or policy.comparative_guard) and not guarded:
        raise ValidationError(
            "alarms and a comparative guard need a BlueGreenUpdatePolicy or RollingUpdatePolicy",
            field=f"{where}.AutoRollbackConfiguration",
        )
    if policy.blue_green is not None:
        routing = policy.blue_green.traffic_routing
        field_base = f"{where}.BlueGreenUpdatePolicy.TrafficRoutingConfiguration"
        if routing.type == "CANARY":
            if routing.canary_size is None:
                raise ValidationError("CANARY needs a CanarySize", field=f"{field_base}.CanarySize")
            _check_share(routing.canary_size, green, 0.0, 0.5, f"{field_base}.CanarySize")
        elif routing.canary_size is not None:
            raise ValidationError(
                "CanarySize applies to CANARY only", field=f"{field_base}.CanarySize"
            )
        if routing.type == "LINEAR":
            if routing.linear_step_size is None:
                raise ValidationError(
                    "LINEAR needs a LinearStepSize", field=f"{field_base}.LinearStepSize"
                )
            _check_share(routing.linear_step_size, green, 0.1, 0.5, f"{field_base}.LinearStepSize")
        elif routing.linear_step_size is not None:
            raise ValidationError(
                "LinearStepSize applies to LINEAR only", field=f"{field_base}.LinearStepSize"
            )
    if policy.rolling is not None:
        if len(blue.production) != 1 or len(green.production) != 1:
            raise ValidationError(
                "a rolling update needs an endpoint with one production variant "
                "(use a blue/green policy for several)",
                field=f"{where}.RollingUpdatePolicy",
            )
        for name, size in (
            ("MaximumBatchSize", policy.rolling.max_batch),
            ("RollbackMaximumBatchSize", policy.rolling.rollback_max_batch),
        ):
            if size is not None and size.type == "CAPACITY_PERCENT" and not 5 <= size.value <= 50:
                raise ValidationError(
                    f"{name} must be 5 to 50 % of the variant's instances, got {size.value} %",
                    field=f"{where}.RollingUpdatePolicy.{name}",
                )
    timeout = policy.max_execution_s
    if timeout is not None:
        total = sum(s.bake_s for s in _unchecked_plan(policy, blue, green))
        if timeout <= total:
            raise ValidationError(
                f"MaximumExecutionTimeoutInSeconds ({timeout} s) must exceed the sum of the "
                f"waits ({total:g} s)",
                field=f"{where}.MaximumExecutionTimeoutInSeconds",
            )


def _unchecked_plan(
    policy: DeploymentConfig, blue: EndpointConfig, green: EndpointConfig
) -> list[Step]:
    timeless = policy.model_copy(
        update={
            "blue_green": policy.blue_green.model_copy(update={"max_execution_s": None})
            if policy.blue_green
            else None,
            "rolling": policy.rolling.model_copy(update={"max_execution_s": None})
            if policy.rolling
            else None,
        }
    )
    return plan(timeless, blue, green)


def _rolling(
    policy: RollingUpdatePolicy, blue: EndpointConfig, green: EndpointConfig
) -> list[Step]:
    (old,) = blue.production
    (new,) = green.production
    batch = _batch(policy.max_batch, new.instance_count)
    steps: list[Step] = []
    b, g = old.instance_count, 0
    while g < new.instance_count or b > 0:
        g = min(new.instance_count, g + batch)
        b = 0 if g >= new.instance_count else max(0, b - batch)
        counts = {new.name: (b, g)}
        steps.append(
            Step(
                f"rolling batch {len(steps) + 1}: {g} new, {b} old",
                {new.name: _capacity_share(b, g)},
                float(policy.wait_interval_s),
                counts,
            )
        )
    return steps


def _batch(size: CapacitySize, instances: int) -> int:
    if size.type == "INSTANCE_COUNT":
        return size.value
    return max(1, math.floor(size.value / 100 * instances))


def _capacity_share(blue: int, green: int) -> float:
    return green / (blue + green) if blue + green else 1.0


def _shares(size: CapacitySize, green: EndpointConfig) -> dict[str, float]:
    if size.type == "CAPACITY_PERCENT":
        return {v.name: size.value / 100 for v in green.production}
    return {v.name: min(1.0, size.value / v.instance_count) for v in green.production}


def _check_share(
    size: CapacitySize, green: EndpointConfig, low: float, high: float, where: str
) -> None:
    for name, share in _shares(size, green).items():
        if share < low - 1e-9 or share > high + 1e-9:
            bound = f"{low:.0%} to {high:.0%}" if low else f"at most {high:.0%}"
            raise ValidationError(
                f"{size.describe()} is {share:.0%} of variant {name!r}'s instances; "
                f"it must be {bound}",
                field=where,
            )


def _production_names(*configs: EndpointConfig) -> list[str]:
    names: list[str] = []
    for config in configs:
        names += [v.name for v in config.production if v.name not in names]
    return names
