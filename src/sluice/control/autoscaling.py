"""The autoscaler: scalable targets, their policies and scheduled actions, and the loop
that sets each target's instance count.

Every `autoscaling_tick_s` it reads, for each registered variant, the requests its fleets
answered so far (the gateway's running totals, no store or CloudWatch hop) and decides:

- target tracking (`SageMakerVariantInvocationsPerInstance`, invocations per instance per
  minute): the rate over the stable window (60 s) gives the count that meets the target.
  Over the panic window (6 s) too: a load needing twice the running instances scales out
  at once, past the scale-out cooldown, and for a stable window after it the variant does
  not scale in (Knative's panic mode: fast out, slow in). Scale-in needs a whole stable
  window of data below target and the scale-in cooldown since the last change.
  Customized metrics are read from the metric history over the stable window.
- step scaling: an alarm whose actions name the policy and which is in ALARM invokes it,
  again each cooldown while it stays there; the step is chosen by how far the alarm's
  last datapoint is past its threshold.
- several policies: the largest count wins; scale-in only when every target-tracking
  policy agrees (Application Auto Scaling's rule).
- min/max: a count outside them (a new registration, a scheduled action) is brought back.

A decision is a scaling activity (cause, description, outcome) in the store. Scale-in
takes instances out of the routing table first and stops them once their requests are
answered. While an endpoint is being updated (a deployment, or anything not InService)
the autoscaler leaves it alone, and a deployment waits for a resize under way (SageMaker
does not scale an endpoint being updated either).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sluice.control import cadence
from sluice.control.alarms import AlarmService
from sluice.control.endpoints import MAX_INSTANCES, EndpointService
from sluice.control.scaling_policies import (
    INVOCATIONS_PER_INSTANCE,
    StepScaling,
    TargetTracking,
    parse,
)
from sluice.control.validation import check_name, check_range
from sluice.entities import (
    Alarm,
    AlarmState,
    ScalableTarget,
    ScalingActivity,
    ScalingPolicy,
    ScheduledAction,
    VariantKind,
)
from sluice.errors import NotFound, ValidationError
from sluice.store.metric_repo import MetricRepository, align, series
from sluice.store.scaling_repo import ScalingRepository

log = logging.getLogger(__name__)

SUSPENSIONS = (
    "DynamicScalingInSuspended",
    "DynamicScalingOutSuspended",
    "ScheduledScalingSuspended",
)
PANIC_FACTOR = 2.0
CUSTOM_EVERY_S = 10.0
"""A customized metric is read from the history (10 s periods) this often."""
LATENCY_METRICS = ("ModelLatency", "OverheadLatency")
"""Alarms hold these in milliseconds; step bounds are in CloudWatch's microseconds."""


@dataclass
class Load:
    """A variant's answered requests, sampled each tick: (time, running total)."""

    samples: deque[tuple[float, int]] = field(default_factory=deque)

    def add(self, at: float, total: int, keep_s: float) -> None:
        if self.samples and total < self.samples[-1][1]:
            self.samples.clear()  # a fleet went away (an update): its count starts over
        self.samples.append((at, total))
        while self.samples and self.samples[0][0] < at - keep_s:
            self.samples.popleft()

    def per_minute(self, window_s: float) -> tuple[float, float] | None:
        """(requests per minute over the last `window_s`, seconds of data it rests on)."""
        if len(self.samples) < 2:
            return None
        end, last = self.samples[-1]
        start, first = next(
            ((t, n) for t, n in self.samples if t >= end - window_s - 1e-6), self.samples[0]
        )
        if end <= start:
            return None
        return (last - first) / (end - start) * 60, end - start


@dataclass
class Tracked:
    """The autoscaler's running state for one target."""

    load: Load = field(default_factory=Load)
    last_out: float = -math.inf
    last_change: float = -math.inf
    panic_until: float = -math.inf
    steps_done: dict[str, float] = field(default_factory=dict)
    """Policy ARN to when its alarm last made it act."""
    busy: bool = False
    woken: bool = False
    """A request found the variant scaled to zero and waits for an instance."""


Rule = tuple[ScalingPolicy, TargetTracking | StepScaling]
"""A policy and its parsed configuration."""


@dataclass(frozen=True)
class Proposal:
    count: int
    cause: str
    tracking: bool = False
    """From a target-tracking policy (scale-in needs every one of them to agree)."""


class Autoscaler:
    def __init__(
        self,
        repo: ScalingRepository,
        endpoints: EndpointService,
        alarms: AlarmService,
        metrics: MetricRepository,
        region: str,
        tick_s: float = 1.0,
        stable_window_s: float = 60.0,
        panic_window_s: float = 6.0,
        realtime_scale_to_zero: bool = False,
    ) -> None:
        self.repo = repo
        self.endpoints = endpoints
        self.alarms = alarms
        self.metrics = metrics
        self.region = region
        self.tick_s = tick_s
        self.stable_window_s = stable_window_s
        self.panic_window_s = panic_window_s
        self.realtime_scale_to_zero = realtime_scale_to_zero
        endpoints.on_cold = self.wake
        self.tracked: dict[tuple[str, str], Tracked] = {}
        self.targets: dict[tuple[str, str], ScalableTarget] = {}
        self.policies: dict[tuple[str, str], list[Rule]] = {}
        self.scheduled: dict[tuple[str, str], list[ScheduledAction]] = {}
        self._task: asyncio.Task[None] | None = None
        self._resizes: set[asyncio.Task[None]] = set()
        self._custom: dict[str, tuple[float, float | None]] = {}
        """Policy ARN to (when read, value) of its customized metric."""

    # -- scalable targets

    def register(
        self,
        endpoint: str,
        variant: str,
        min_capacity: int | None,
        max_capacity: int | None,
        role_arn: str | None = None,
        suspended: Mapping[str, bool] | None = None,
    ) -> ScalableTarget:
        """Register a variant, or change a registered one (what is not given is kept)."""
        existing = self.repo.target(endpoint, variant)
        if existing is None:
            self._check_variant(endpoint, variant)
            if min_capacity is None or max_capacity is None:
                raise ValidationError(
                    "MinCapacity and MaxCapacity are required to register a new scalable target",
                    field="MinCapacity",
                )
        low = min_capacity if min_capacity is not None else existing.min_capacity  # type: ignore[union-attr]
        high = max_capacity if max_capacity is not None else existing.max_capacity  # type: ignore[union-attr]
        floor = 0 if self.realtime_scale_to_zero or self._is_async(endpoint) else 1
        check_range(low, "MinCapacity", floor, MAX_INSTANCES)
        check_range(high, "MaxCapacity", max(floor, 1), MAX_INSTANCES)
        if low > high:
            raise ValidationError(
                f"MinCapacity ({low}) must not be above MaxCapacity ({high})", field="MinCapacity"
            )
        flags = set(existing.suspended) if existing else set()
        for name, on in (suspended or {}).items():
            if name not in SUSPENSIONS:
                raise ValidationError(f"unknown SuspendedState {name!r}", field="SuspendedState")
            (flags.add if on else flags.discard)(name)
        target = ScalableTarget(
            endpoint,
            variant,
            low,
            high,
            role_arn if role_arn is not None else (existing.role_arn if existing else ""),
            frozenset(flags),
        )
        saved = self.repo.put_target(target)
        self._reload()
        return saved

    def deregister(self, endpoint: str, variant: str) -> None:
        self.repo.delete_target(endpoint, variant)
        self.tracked.pop((endpoint, variant), None)
        self._reload()

    def find_targets(self) -> list[ScalableTarget]:
        return self.repo.targets()

    def target(self, endpoint: str, variant: str) -> ScalableTarget:
        found = self.repo.target(endpoint, variant)
        if found is None:
            raise NotFound(
                f"No scalable target registered for service namespace: sagemaker, resource ID: "
                f"endpoint/{endpoint}/variant/{variant}, scalable dimension: "
                "sagemaker:variant:DesiredInstanceCount"
            )
        return found

    # -- policies

    def put_policy(
        self,
        endpoint: str,
        variant: str,
        name: str,
        policy_type: str,
        configuration: dict[str, Any],
    ) -> ScalingPolicy:
        self.target(endpoint, variant)
        if not name or len(name) > 256 or not name.isprintable() or ":" in name:
            raise ValidationError(
                "PolicyName must be 1 to 256 printable characters, no ':'", field="PolicyName"
            )
        parse(policy_type, configuration)
        arn = (
            f"arn:aws:autoscaling:{self.region}:000000000000:scalingPolicy:{uuid.uuid4()}:"
            f"resource/sagemaker/endpoint/{endpoint}/variant/{variant}:policyName/{name}"
        )
        saved = self.repo.put_policy(
            ScalingPolicy(arn, name, endpoint, variant, policy_type, configuration)
        )
        self._reload()
        return saved

    def delete_policy(self, endpoint: str, variant: str, name: str) -> None:
        self.repo.delete_policy(endpoint, variant, name)
        self._reload()

    def find_policies(
        self, endpoint: str | None = None, variant: str | None = None
    ) -> list[ScalingPolicy]:
        return self.repo.policies(endpoint, variant)

    def policy_alarms(self, arn: str) -> list[Alarm]:
        """The alarms whose actions name this policy (as the evaluator holds them now)."""
        return [e.alarm for e in self.alarms.evaluations.values() if arn in e.alarm.actions]

    def check_actions(self, actions: Sequence[str]) -> None:
        """Alarm actions must name scaling policies that exist (an action that names
        nothing would silently never scale)."""
        for arn in actions:
            if self.repo.policy(arn) is None:
                raise ValidationError(
                    f"no scaling policy has the ARN {arn!r}", field="AlarmActions"
                )

    # -- scheduled actions

    def put_scheduled(
        self,
        endpoint: str,
        variant: str,
        name: str,
        schedule: str | None,
        timezone: str | None,
        start: datetime | None,
        end: datetime | None,
        min_capacity: int | None,
        max_capacity: int | None,
    ) -> ScheduledAction:
        self.target(endpoint, variant)
        if not name or len(name) > 256 or ":" in name or not name.isprintable():
            raise ValidationError(
                "ScheduledActionName must be 1 to 256 printable characters, no ':'",
                field="ScheduledActionName",
            )
        existing = next((a for a in self.repo.scheduled(endpoint, variant) if a.name == name), None)
        schedule = schedule or (existing.schedule if existing else None)
        if not schedule:
            raise ValidationError("Schedule is required", field="Schedule")
        zone = timezone or (existing.timezone if existing else "UTC")
        _times(schedule, zone, 0, 0)  # checks the expression and the zone
        for value, label in ((min_capacity, "MinCapacity"), (max_capacity, "MaxCapacity")):
            if value is not None:
                check_range(value, f"ScalableTargetAction.{label}", 0, MAX_INSTANCES)
        if min_capacity is None and max_capacity is None:
            raise ValidationError(
                "ScalableTargetAction needs MinCapacity, MaxCapacity or both",
                field="ScalableTargetAction",
            )
        arn = (
            existing.arn
            if existing
            else (
                f"arn:aws:autoscaling:{self.region}:000000000000:scheduledAction:{uuid.uuid4()}:"
                f"resource/sagemaker/endpoint/{endpoint}/variant/{variant}:scheduledActionName/{name}"
            )
        )
        saved = self.repo.put_scheduled(
            ScheduledAction(arn, name, endpoint, variant, schedule, zone, start, end,
                            min_capacity, max_capacity)
        )  # fmt: skip
        self._reload()
        return saved

    def delete_scheduled(self, endpoint: str, variant: str, name: str) -> None:
        self.repo.delete_scheduled(endpoint, variant, [name])
        self._reload()

    def find_scheduled(
        self, endpoint: str | None = None, variant: str | None = None
    ) -> list[ScheduledAction]:
        return self.repo.scheduled(endpoint, variant)

    def activities(
        self, endpoint: str | None = None, variant: str | None = None
    ) -> list[ScalingActivity]:
        return self.repo.activities(endpoint, variant)

    def wake(self, endpoint: str, variant: str) -> None:
        """A request found `variant` scaled to zero: start an instance now, or as soon as
        the resize under way is done (the request waits meanwhile)."""
        key = (endpoint, variant)
        tracked = self.tracked.setdefault(key, Tracked())
        tracked.woken = True
        self._wake_if_cold(key, time.time())

    def _wake_if_cold(self, key: tuple[str, str], now: float) -> bool:
        tracked = self.tracked[key]
        if not tracked.woken or tracked.busy or not self.endpoints.resizable(key[0]):
            return False
        tracked.woken = False
        if self.endpoints.instance_counts(key[0]).get(key[1]) != 0:
            return False
        target = self.targets.get(key) or ScalableTarget(key[0], key[1], 0, 1)
        count = max(1, target.min_capacity)
        self._resize(
            target, tracked, 0, Proposal(count, "a request arrived while no instance ran"), now
        )
        return True

    # -- the loop

    def start(self) -> None:
        failed = self.repo.fail_unfinished("the server stopped before the change was done")
        if failed:
            log.warning("%d scaling activities were cut off by a restart", failed)
        self._reload()
        self._task = asyncio.create_task(self._run(), name="autoscaler")

    async def close(self) -> None:
        tasks = [t for t in (self._task, *self._resizes) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            started = time.monotonic()
            for key in list(self.targets):
                try:
                    self.tick(key, time.time())
                except Exception:  # noqa: BLE001 - one target's failure must not stop the rest
                    log.exception("autoscaling %s/%s failed", *key)
            await asyncio.sleep(max(0.05, self.tick_s - (time.monotonic() - started)))

    def tick(self, key: tuple[str, str], now: float) -> None:
        """Sample one target's load and act on its policies and scheduled actions."""
        target = self.targets.get(key)
        if target is None:
            return
        endpoint, variant = key
        tracked = self.tracked.setdefault(key, Tracked())
        totals = self.endpoints.fleet_stats(endpoint)
        if not totals:
            return
        answered = sum(w.invocations for (_, v), w in totals.items() if v == variant)
        tracked.load.add(now, answered, self.stable_window_s + self.tick_s)
        target = self._run_scheduled(target, now)
        if self._wake_if_cold(key, now) or tracked.busy or not self.endpoints.resizable(endpoint):
            return
        current = self.endpoints.instance_counts(endpoint).get(variant)
        if current is None:
            return
        proposals = self._proposals(target, tracked, current, now)
        decision = self._decide(target, tracked, current, proposals, now)
        if decision is not None:
            self._resize(target, tracked, current, decision, now)

    def _proposals(
        self, target: ScalableTarget, tracked: Tracked, current: int, now: float
    ) -> list[Proposal]:
        proposals: list[Proposal] = []
        for policy, rules in self.policies.get((target.endpoint, target.variant), ()):
            if isinstance(rules, TargetTracking):
                found = self._tracking(policy, rules, tracked, current, now)
            else:
                found = self._stepping(policy, rules, tracked, current, now)
            if found is not None:
                proposals.append(found)
        return proposals

    def _tracking(
        self, policy: ScalingPolicy, rules: TargetTracking, tracked: Tracked, current: int,
        now: float,
    ) -> Proposal | None:  # fmt: skip
        if rules.predefined == INVOCATIONS_PER_INSTANCE:
            stable = tracked.load.per_minute(self.stable_window_s)
            panic = tracked.load.per_minute(self.panic_window_s)
            if stable is None or panic is None or panic[1] < self.panic_window_s * 0.5:
                return None
            wanted = rules.desired(stable[0], current)
            quick = rules.desired(panic[0], current)
            if current > 0 and quick >= PANIC_FACTOR * current:
                if tracked.panic_until < now:
                    log.info("autoscaling %s: panic (%d instances wanted)", policy.name, quick)
                tracked.panic_until = now + self.stable_window_s
            in_panic = tracked.panic_until >= now
            if in_panic:
                wanted = max(wanted, quick, current)
            full = stable[1] >= self.stable_window_s - self.tick_s
            if wanted < current and (not full or rules.disable_scale_in):
                wanted = current
            if (
                wanted > current
                and not in_panic
                and now - tracked.last_out < rules.scale_out_cooldown_s
            ):
                wanted = current
            if wanted < current and now - tracked.last_change < rules.scale_in_cooldown_s:
                wanted = current
            window, per_minute, need = (
                (self.panic_window_s, panic[0], quick)
                if in_panic
                else (self.stable_window_s, stable[0], rules.desired(stable[0], current))
            )
            cause = (
                f"target tracking policy {policy.name}: {per_minute:,.0f} invocations per "
                f"minute over the last {window:g} s{' (panic mode)' if in_panic else ''} "
                f"need {need} instance(s) at {rules.target:g} per instance"
            )
            return Proposal(wanted, cause, tracking=True)
        value = self._custom_value(policy, rules, now)
        if value is None:
            return None
        wanted = rules.desired(value, current)
        if wanted < current and (
            rules.disable_scale_in or now - tracked.last_change < rules.scale_in_cooldown_s
        ):
            wanted = current
        if wanted > current and now - tracked.last_out < rules.scale_out_cooldown_s:
            wanted = current
        cause = (
            f"target tracking policy {policy.name}: {rules.namespace} {rules.metric} "
            f"{rules.statistic} = {value:.4g} against a target of {rules.target:g}"
        )
        return Proposal(wanted, cause, tracking=True)

    def _custom_value(
        self, policy: ScalingPolicy, rules: TargetTracking, now: float
    ) -> float | None:
        """The customized metric's statistic over the stable window (at least the last two
        of the history's 10 s periods), read from the history at most every 10 s."""
        cached = self._custom.get(policy.arn)
        if cached is not None and now - cached[0] < CUSTOM_EVERY_S:
            return cached[1]
        end = datetime.fromtimestamp(now, UTC)
        start = end - timedelta(seconds=max(self.stable_window_s, 2 * CUSTOM_EVERY_S))
        start = align(start, 10)
        span = int((end - start).total_seconds()) + 10
        points = self.metrics.datapoints(
            series(rules.namespace, rules.metric, dict(rules.dimensions)), start, end, span
        )
        value = None
        if points and points[0].samples:
            point = points[0]
            value = {
                "Average": point.average,
                "Sum": point.total,
                "SampleCount": point.samples,
                "Minimum": point.minimum,
                "Maximum": point.maximum,
            }[rules.statistic]
        self._custom[policy.arn] = (now, value)
        return value

    def _stepping(
        self, policy: ScalingPolicy, rules: StepScaling, tracked: Tracked, current: int,
        now: float,
    ) -> Proposal | None:  # fmt: skip
        for alarm in self.policy_alarms(policy.arn):
            name = alarm.name
            if not alarm.actions_enabled or alarm.state is not AlarmState.ALARM:
                continue
            if now - tracked.steps_done.get(policy.arn, -math.inf) < rules.cooldown_s:
                return None
            values = [v for _, v in self.alarms.recent(name) if v is not None]
            if not values:
                continue
            scale = 1000.0 if alarm.metric in LATENCY_METRICS else 1.0
            breach = (values[-1] - alarm.threshold) * scale
            wanted = rules.capacity(breach, current)
            if wanted is None:
                continue
            tracked.steps_done[policy.arn] = now
            return Proposal(
                wanted,
                f"monitor alarm {name} in state ALARM triggered {policy.name} "
                f"(metric {values[-1] * scale:.4g}, {breach:+.4g} past the threshold)",
            )
        return None

    def _decide(
        self,
        target: ScalableTarget,
        tracked: Tracked,
        current: int,
        proposals: Sequence[Proposal],
        now: float,
    ) -> Proposal | None:
        if current < target.min_capacity:
            return Proposal(
                target.min_capacity, f"the count is below MinCapacity {target.min_capacity}"
            )
        if current > target.max_capacity:
            return Proposal(
                target.max_capacity, f"the count is above MaxCapacity {target.max_capacity}"
            )
        if not proposals:
            return None
        chosen = max(proposals, key=lambda p: p.count)
        if chosen.count < current and any(p.tracking and p.count >= current for p in proposals):
            return None  # scale in only when every target-tracking policy agrees
        count = min(max(chosen.count, target.min_capacity), target.max_capacity)
        if count > current and "DynamicScalingOutSuspended" in target.suspended:
            return None
        if count < current and "DynamicScalingInSuspended" in target.suspended:
            return None
        if count == current:
            return None
        return replace(chosen, count=count)

    def _resize(
        self, target: ScalableTarget, tracked: Tracked, current: int, decision: Proposal,
        now: float,
    ) -> None:  # fmt: skip
        activity = self.repo.add_activity(
            ScalingActivity(
                str(uuid.uuid4()),
                target.endpoint,
                target.variant,
                f"Setting desired instance count to {decision.count}.",
                decision.cause,
                "InProgress",
                datetime.fromtimestamp(now, UTC),
                details=f"from {current} to {decision.count} instance(s)",
            )
        )
        log.info(
            "autoscaling %s/%s: %d -> %d (%s)",
            target.endpoint, target.variant, current, decision.count, decision.cause,
        )  # fmt: skip
        if decision.count > current:
            tracked.last_out = now
        tracked.last_change = now
        tracked.busy = True

        async def resize() -> None:
            try:
                done = await self.endpoints.autoscale(
                    target.endpoint, target.variant, decision.count
                )
            except asyncio.CancelledError:
                self.repo.end_activity(activity.id, "Failed", "the server stopped")
                raise
            except Exception as exc:  # noqa: BLE001 - recorded, and the next tick may retry
                self.repo.end_activity(activity.id, "Failed", str(exc)[:1000])
            else:
                self.repo.end_activity(
                    activity.id,
                    "Successful" if done else "Failed",
                    "" if done else "the endpoint was being updated; nothing was changed",
                )
            finally:
                tracked.busy = False
                tracked.last_change = time.time()

        task = asyncio.create_task(resize(), name=f"autoscale {target.resource_id}")
        self._resizes.add(task)
        task.add_done_callback(self._resizes.discard)

    def _run_scheduled(self, target: ScalableTarget, now: float) -> ScalableTarget:
        """Apply the target's scheduled actions that came due since they last ran."""
        if "ScheduledScalingSuspended" in target.suspended:
            return target
        for action in self.scheduled.get((target.endpoint, target.variant), ()):
            since = (action.last_run_at or action.created_at or datetime.now(UTC)).timestamp()
            begin = action.start_time.timestamp() if action.start_time else -math.inf
            finish = action.end_time.timestamp() if action.end_time else math.inf
            due = [t for t in _times(action.schedule, action.timezone, since, now)
                   if begin <= t <= finish]  # fmt: skip
            if not due:
                continue
            low = action.min_capacity if action.min_capacity is not None else target.min_capacity
            high = action.max_capacity if action.max_capacity is not None else target.max_capacity
            if action.min_capacity is not None and action.max_capacity is None:
                high = max(high, low)
            if action.max_capacity is not None and action.min_capacity is None:
                low = min(low, high)
            at = datetime.fromtimestamp(due[-1], UTC)
            target = self.repo.put_target(replace(target, min_capacity=low, max_capacity=high))
            self.repo.ran_scheduled(action.arn, at)
            self.repo.add_activity(
                ScalingActivity(
                    str(uuid.uuid4()), target.endpoint, target.variant,
                    f"Setting min capacity to {low} and max capacity to {high}",
                    f"scheduled action name {action.name} was triggered",
                    "Successful", at, datetime.now(UTC),
                )
            )  # fmt: skip
            self._reload()
        return target

    # -- helpers

    def _reload(self) -> None:
        """The definitions the loop works from, read once after every change."""
        self.targets = {(t.endpoint, t.variant): t for t in self.repo.targets()}
        policies: dict[tuple[str, str], list[Rule]] = {}
        for policy in self.repo.policies():
            rules = parse(policy.policy_type, policy.configuration)
            policies.setdefault((policy.endpoint, policy.variant), []).append((policy, rules))
        self.policies = policies
        scheduled: dict[tuple[str, str], list[ScheduledAction]] = {}
        for action in self.repo.scheduled():
            scheduled.setdefault((action.endpoint, action.variant), []).append(action)
        self.scheduled = scheduled
        for key in list(self.tracked):
            if key not in self.targets:
                del self.tracked[key]

    def _check_variant(self, endpoint: str, variant: str) -> None:
        check_name(endpoint, "ResourceId")
        check_name(variant, "ResourceId")
        try:
            found = self.endpoints.get_endpoint(endpoint)
        except NotFound:
            raise ValidationError(
                f"The endpoint {endpoint!r} does not exist", field="ResourceId"
            ) from None
        record = found.variant(variant)
        if record is None or record.kind is not VariantKind.PRODUCTION:
            raise ValidationError(
                f"{variant!r} is not a production variant of endpoint {endpoint!r}",
                field="ResourceId",
            )

    def _is_async(self, endpoint: str) -> bool:
        with contextlib.suppress(NotFound):
            config = self.endpoints.get_endpoint_config(
                self.endpoints.get_endpoint(endpoint).config_name
            )
            return "AsyncInferenceConfig" in config.details
        return False

    def blocks_update(self, endpoint: str) -> str | None:
        """A deployment waits while the autoscaler resizes the endpoint."""
        if endpoint in self.endpoints.resizing:
            return self.endpoints.resizing_reason(endpoint)
        return None


def _times(schedule: str, zone: str, after: float, until: float) -> list[float]:
    """When a scheduled action runs in (after, until]: `at(...)` once, `rate(...)` and
    `cron(...)` as the monitoring schedules read them (cron in UTC)."""
    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"unknown Timezone {zone!r}", field="Timezone") from None
    if schedule.startswith("at(") and schedule.endswith(")"):
        try:
            at = datetime.fromisoformat(schedule[3:-1])
        except ValueError:
            raise ValidationError("at(...) takes yyyy-mm-ddThh:mm:ss", field="Schedule") from None
        moment = (at if at.tzinfo else at.replace(tzinfo=tz)).timestamp()
        return [moment] if after < moment <= until else []
    if schedule.startswith("cron(") and zone not in ("UTC", "Etc/UTC"):
        raise ValidationError(
            "sluice runs cron(...) scheduled actions in UTC; give Timezone UTC",
            field="Timezone",
        )
    try:
        every = cadence.parse(schedule)
    except ValidationError as exc:
        raise ValidationError(exc.message, field="Schedule") from None
    if every.once:
        raise ValidationError("Schedule is at(...), rate(...) or cron(...)", field="Schedule")
    return every.times(after, until) if until > after else []
