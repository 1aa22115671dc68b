"""Alarms: a threshold on a metric, evaluated period by period, with states and a history.

Like a CloudWatch metric alarm: each period yields one datapoint (a statistic of the metric
over the period); the alarm is in ALARM when `datapoints_to_alarm` of the last
`evaluation_periods` datapoints breach, OK otherwise, INSUFFICIENT_DATA when there is none.
Built-in metrics come from the gateway's per-fleet totals; custom ones are pushed through
the API. While a deployment watches an alarm on its endpoint, the alarm is evaluated on
the green fleet alone (SageMaker's EndpointConfigName dimension), starting afresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from sluice.control.validation import check_name, check_range
from sluice.control.webhooks import Notifier
from sluice.entities import Alarm, AlarmState, AlarmTransition
from sluice.errors import AlreadyExists, NotFound, ValidationError
from sluice.gateway.fleet_stats import Window, extreme, mean, merge, percentile
from sluice.store.alarm_repo import AlarmRepository
from sluice.store.metric_repo import Datapoint, MetricRepository, Period, period_of, series
from sluice.waiting import wait_at_most

log = logging.getLogger(__name__)

COUNTS = ("Sum", "SampleCount")
LATENCY_STATISTICS = ("Average", "Minimum", "Maximum", "SampleCount")
BUILTIN: dict[str, tuple[str, ...]] = {
    "Invocations": COUNTS,
    "Invocation4XXErrors": ("Sum", "Average"),
    "Invocation5XXErrors": ("Sum", "Average"),
    "InvocationErrors": ("Sum", "Average"),
    "ModelLatency": LATENCY_STATISTICS,
    "OverheadLatency": LATENCY_STATISTICS,
}
"""Built-in metrics and their statistics (besides percentiles for the latencies).

Error metrics count failed requests; their Average is the error rate (0 to 1). Latencies
are in milliseconds.
"""
STATISTICS = ("Average", "Sum", "SampleCount", "Minimum", "Maximum")
COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "GreaterThanThreshold": lambda v, t: v > t,
    "GreaterThanOrEqualToThreshold": lambda v, t: v >= t,
    "LessThanThreshold": lambda v, t: v < t,
    "LessThanOrEqualToThreshold": lambda v, t: v <= t,
}
SYMBOLS = {
    "GreaterThanThreshold": ">",
    "GreaterThanOrEqualToThreshold": ">=",
    "LessThanThreshold": "<",
    "LessThanOrEqualToThreshold": "<=",
}
TREAT_MISSING = ("missing", "notBreaching", "breaching", "ignore")
_PERCENTILE = re.compile(r"^p(\d{1,2}(\.\d{1,2})?|100)$")
_METRIC_NAME = re.compile(r"^[A-Za-z0-9_.:/-]{1,255}$")
CUSTOM_NAMESPACE = "Sluice/Custom"
"""Where the history keeps metrics pushed through the native API."""
CUSTOM_RETENTION_S = 24 * 3600
CUSTOM_MAX_POINTS = 100_000


def validate(alarm: Alarm) -> Alarm:
    """Check a definition; ValidationError names the field at fault."""
    if not alarm.name or len(alarm.name) > 255 or not alarm.name.isprintable():
        raise ValidationError("AlarmName must be 1 to 255 printable characters", field="AlarmName")
    if not _METRIC_NAME.fullmatch(alarm.metric):
        raise ValidationError(
            f"MetricName {alarm.metric!r} must be 1 to 255 letters, digits or _.:/-",
            field="MetricName",
        )
    if alarm.namespace is not None:
        return _validate_stored(alarm)
    builtin = BUILTIN.get(alarm.metric)
    if builtin is not None and alarm.endpoint is None:
        raise ValidationError(
            f"{alarm.metric} is an endpoint metric: name the endpoint", field="EndpointName"
        )
    is_percentile = _PERCENTILE.fullmatch(alarm.statistic) is not None
    latency = alarm.metric in ("ModelLatency", "OverheadLatency")
    allowed = builtin if builtin is not None else STATISTICS
    if not (alarm.statistic in allowed or (is_percentile and (latency or builtin is None))):
        raise ValidationError(
            f"statistic {alarm.statistic!r} does not apply to {alarm.metric}; use one of "
            f"{', '.join(allowed)}" + (" or a percentile such as p99" if latency else ""),
            field="Statistic",
        )
    _check_rule(alarm, shortest_period_s=1)
    if alarm.endpoint is not None:
        check_name(alarm.endpoint, "EndpointName")
    if alarm.variant is not None:
        check_name(alarm.variant, "VariantName")
        if alarm.endpoint is None:
            raise ValidationError("a variant needs its endpoint", field="EndpointName")
    return alarm


def _validate_stored(alarm: Alarm) -> Alarm:
    """An alarm on a series of the metric history."""
    if not alarm.namespace or len(alarm.namespace) > 255:
        raise ValidationError("Namespace must be 1 to 255 characters", field="Namespace")
    if alarm.endpoint is not None or alarm.variant is not None:
        raise ValidationError(
            "an alarm on a stored series names it by Dimensions", field="Dimensions"
        )
    if not (alarm.statistic in STATISTICS or _PERCENTILE.fullmatch(alarm.statistic)):
        raise ValidationError(
            f"statistic {alarm.statistic!r} must be one of {', '.join(STATISTICS)} or a "
            "percentile such as p99",
            field="Statistic",
        )
    # The history keeps 10-second periods: a stored series is judged on multiples of them.
    _check_rule(alarm, shortest_period_s=10)
    return alarm


def _check_rule(alarm: Alarm, shortest_period_s: int) -> None:
    """What every alarm is judged by: comparison, missing data, threshold, periods (whole
    multiples of `shortest_period_s`)."""
    if alarm.comparison not in COMPARISONS:
        raise ValidationError(
            f"ComparisonOperator must be one of {', '.join(COMPARISONS)}",
            field="ComparisonOperator",
        )
    if alarm.treat_missing_data not in TREAT_MISSING:
        raise ValidationError(
            f"TreatMissingData must be one of {', '.join(TREAT_MISSING)}",
            field="TreatMissingData",
        )
    if not math.isfinite(alarm.threshold):
        raise ValidationError("Threshold must be a finite number", field="Threshold")
    if alarm.period_s % shortest_period_s:
        raise ValidationError(
            f"Period must be a multiple of {shortest_period_s} seconds for a stored series",
            field="Period",
        )
    check_range(alarm.period_s, "Period", shortest_period_s, 86400)
    check_range(alarm.evaluation_periods, "EvaluationPeriods", 1, 100)
    check_range(alarm.datapoints_to_alarm, "DatapointsToAlarm", 1, alarm.evaluation_periods)


def stored_datapoint(point: Datapoint | None, statistic: str) -> float | None:
    """A statistic of one period read from the metric history."""
    if point is None or point.samples == 0:
        return None
    if statistic.startswith("p"):
        return point.percentiles.get(float(statistic[1:]))
    return {
        "Sum": point.total,
        "SampleCount": point.samples,
        "Average": point.average,
        "Minimum": point.minimum,
        "Maximum": point.maximum,
    }[statistic]


def datapoint(alarm: Alarm, window: Window) -> float | None:
    """One built-in metric's statistic over a window; None when nothing was answered."""
    if window.invocations == 0:
        return None
    metric, stat = alarm.metric, alarm.statistic
    if metric in ("ModelLatency", "OverheadLatency"):
        bins = window.model_bins if metric == "ModelLatency" else window.overhead_bins
        if stat == "SampleCount":
            return float(sum(bins.values()))
        if stat == "Average":
            seconds = mean(bins)
        elif stat in ("Minimum", "Maximum"):
            seconds = extreme(bins, largest=stat == "Maximum")
        else:
            seconds = percentile(bins, float(stat[1:]))
        return None if seconds is None else seconds * 1000
    if metric == "Invocations":
        return float(window.invocations)
    count = {
        "Invocation4XXErrors": window.errors_4xx,
        "Invocation5XXErrors": window.errors_5xx,
        "InvocationErrors": window.errors,
    }[metric]
    return count / window.invocations if stat == "Average" else float(count)


def decide(
    alarm: Alarm, points: Sequence[float | None], current: AlarmState
) -> tuple[AlarmState, str]:
    """The state the last `evaluation_periods` datapoints put the alarm in, and why."""
    breach = COMPARISONS[alarm.comparison]
    breaching = present = 0
    for value in points:
        if value is None:
            if alarm.treat_missing_data == "breaching":
                breaching += 1
                present += 1
            elif alarm.treat_missing_data == "notBreaching":
                present += 1
            continue
        present += 1
        breaching += breach(value, alarm.threshold)
    shown = ", ".join("missing" if v is None else f"{v:.4g}" for v in points)
    test = f"{alarm.metric} {alarm.statistic} {SYMBOLS[alarm.comparison]} {alarm.threshold:g}"
    if breaching >= alarm.datapoints_to_alarm:
        return AlarmState.ALARM, (
            f"{breaching} of the last {len(points)} datapoints breached {test}: [{shown}]"
        )
    if present == 0:
        if alarm.treat_missing_data == "ignore":
            return current, "no data (kept state)"
        return AlarmState.INSUFFICIENT_DATA, f"no datapoints yet for {alarm.metric}"
    return (
        AlarmState.OK,
        f"{breaching} of the last {len(points)} datapoints breached {test}: [{shown}]",
    )


@dataclass(frozen=True)
class MetricPoint:
    """One value of a custom metric, as pushed through the API."""

    name: str
    value: float
    endpoint: str | None = None
    variant: str | None = None
    at: float | None = None
    """Epoch seconds; None: now."""


def _check_point(point: MetricPoint, now: float, where: str) -> None:
    if point.name in BUILTIN:
        raise ValidationError(
            f"{point.name} is a built-in metric; pick another name", field=f"{where}name"
        )
    if not _METRIC_NAME.fullmatch(point.name):
        raise ValidationError(f"metric name {point.name!r} is not valid", field=f"{where}name")
    if not math.isfinite(point.value):
        raise ValidationError("a metric value must be a finite number", field=f"{where}value")
    if point.at is not None and not now - CUSTOM_RETENTION_S <= point.at <= now + 300:
        raise ValidationError(
            "timestamp must be within the last day (and at most 5 minutes ahead)",
            field=f"{where}timestamp",
        )


class CustomMetrics:
    """Values pushed through the API, kept in memory for a day (or 100,000 per series)."""

    def __init__(self) -> None:
        self.series: dict[tuple[str, str | None, str | None], deque[tuple[float, float]]] = {}

    def put(self, points: Sequence[MetricPoint]) -> None:
        """Store every point, or none of them if one is not valid (the error names it)."""
        now = time.time()
        many = len(points) > 1
        for i, point in enumerate(points):
            _check_point(point, now, f"metrics[{i}]." if many else "")
        for point in points:
            key = (point.name, point.endpoint, point.variant)
            kept = self.series.setdefault(key, deque(maxlen=CUSTOM_MAX_POINTS))
            kept.append((now if point.at is None else point.at, point.value))
            while kept and kept[0][0] < now - CUSTOM_RETENTION_S:
                kept.popleft()

    def values(self, alarm: Alarm, start: float, end: float) -> list[float]:
        out: list[float] = []
        for (name, endpoint, variant), kept in self.series.items():
            if name != alarm.metric:
                continue
            if alarm.endpoint is not None and endpoint != alarm.endpoint:
                continue
            if alarm.variant is not None and variant != alarm.variant:
                continue
            out += [v for t, v in kept if start <= t < end]
        return out


def custom_datapoint(statistic: str, values: Sequence[float]) -> float | None:
    if not values:
        return None
    if statistic == "Sum":
        return float(sum(values))
    if statistic == "SampleCount":
        return float(len(values))
    if statistic == "Average":
        return float(sum(values) / len(values))
    if statistic == "Minimum":
        return float(min(values))
    if statistic == "Maximum":
        return float(max(values))
    return float(np.percentile(values, float(statistic[1:])))


@dataclass
class Scope:
    """What an alarm is evaluated on: its endpoint, or one update's green fleet."""

    config: str | None = None
    deployment_id: int | None = None

    def describe(self, alarm: Alarm) -> str:
        where = alarm.endpoint or "all endpoints"
        if alarm.variant:
            where += f"/{alarm.variant}"
        if self.config:
            return f"green fleet ({self.config}) of {where}, deployment {self.deployment_id}"
        return where


@dataclass
class Evaluation:
    """An alarm's running evaluation: its scope, last snapshot and recent datapoints."""

    alarm: Alarm
    scope: Scope = field(default_factory=Scope)
    started: float = field(default_factory=time.time)
    due: float = 0.0
    last: dict[tuple[str, str], Window] = field(default_factory=dict)
    points: deque[tuple[float, float | None]] = field(default_factory=deque)

    def __post_init__(self) -> None:
        self.due = self.started + self.alarm.period_s
        self.points = deque(maxlen=self.alarm.evaluation_periods)


Listener = Callable[[Alarm, AlarmTransition], None]
FleetSource = Callable[[str], Mapping[tuple[str, str], Window]]


class AlarmService:
    """Owns alarm definitions and evaluates them, one datapoint per period."""

    def __init__(
        self,
        repo: AlarmRepository,
        fleets: FleetSource,
        notifier: Notifier,
        tick_s: float = 1.0,
        history: MetricRepository | None = None,
        record: Callable[[list[Period]], None] | None = None,
    ) -> None:
        self.repo = repo
        self.fleets = fleets
        self.notifier = notifier
        self.tick_s = tick_s
        self.stored_series = history
        """Where alarms on stored series (those with a namespace) read their datapoints."""
        self.record = record
        """Stores custom metric values in the history (off the event loop)."""
        self.custom = CustomMetrics()
        self.evaluations: dict[str, Evaluation] = {}
        self.listeners: dict[str, list[Listener]] = {}
        self.changed = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    # -- definitions

    def put(self, alarm: Alarm, replace_existing: bool = True) -> Alarm:
        validate(alarm)
        if alarm.webhook_url is not None:
            self.notifier.check(alarm.webhook_url)
        if not replace_existing and alarm.name in self.evaluations:
            raise AlreadyExists(f"alarm {alarm.name!r} already exists", field="AlarmName")
        saved, _ = self.repo.put(alarm)
        previous = self.evaluations.get(alarm.name)
        scope = previous.scope if previous else Scope()
        self._begin(saved, scope)
        return saved

    def get(self, name: str) -> Alarm:
        return self.repo.get(name)

    def find(self, endpoint: str | None = None) -> list[Alarm]:
        return self.repo.find(endpoint)

    def delete(self, name: str) -> None:
        evaluation = self.evaluations.get(name)
        if evaluation is not None and evaluation.scope.deployment_id is not None:
            raise ValidationError(
                f"alarm {name!r} is watched by running deployment {evaluation.scope.deployment_id}",
                field="AlarmName",
            )
        self.repo.delete(name)
        self.evaluations.pop(name, None)

    def history(
        self, name: str | None = None, deployment_id: int | None = None, limit: int = 100
    ) -> list[AlarmTransition]:
        return self.repo.history(name, deployment_id, limit)

    def recent(self, name: str) -> list[tuple[float, float | None]]:
        """The datapoints the alarm's state rests on (time, value)."""
        evaluation = self.evaluations.get(name)
        if evaluation is None:
            raise NotFound(f"alarm {name!r} does not exist", field="AlarmName")
        return list(evaluation.points)

    def set_state(self, name: str, state: AlarmState, reason: str) -> Alarm:
        """Put an alarm in `state` until its next evaluation (CloudWatch's SetAlarmState):
        recorded and announced as any transition."""
        evaluation = self.evaluations.get(name)
        if evaluation is None:
            raise NotFound(f"alarm {name!r} does not exist", field="AlarmName")
        if state is not evaluation.alarm.state:
            self._transition(evaluation, state, f"set by a caller: {reason}")
        return evaluation.alarm

    def set_actions_enabled(self, names: Sequence[str], enabled: bool) -> None:
        """Switch alarms' webhook and actions on or off (unknown names are skipped, as
        CloudWatch does)."""
        for name in names:
            evaluation = self.evaluations.get(name)
            if evaluation is not None:
                evaluation.alarm = self.repo.set_actions_enabled(name, enabled)

    def put_metrics(
        self,
        points: Sequence[MetricPoint],
        namespace: str = CUSTOM_NAMESPACE,
        dimensions: Mapping[str, str] | None = None,
    ) -> None:
        """Custom metric values for alarms to watch: all stored, or none if one is bad.
        The history keeps them too, under `namespace` with `dimensions` (default: the
        points' EndpointName and VariantName)."""
        self.custom.put(points)
        if self.record is None:
            return
        now = time.time()
        periods = []
        for point in points:
            found = dict(dimensions) if dimensions is not None else {}
            if dimensions is None and point.endpoint is not None:
                found["EndpointName"] = point.endpoint
                if point.variant is not None:
                    found["VariantName"] = point.variant
            at = datetime.fromtimestamp(now if point.at is None else point.at, UTC)
            made = period_of(series(namespace, point.name, found), at, 10, [point.value])
            if made is not None:
                periods.append(made)
        self.record(periods)

    # -- deployments

    def watch_green(
        self,
        names: Sequence[str],
        endpoint: str,
        config: str,
        deployment_id: int,
        listener: Listener,
    ) -> list[Alarm]:
        """Evaluate these alarms on `endpoint`'s green fleet from now on, and call `listener`
        on each transition. Alarms not tied to an endpoint are watched as they are."""
        alarms = [self._watchable(n, endpoint) for n in names]
        for alarm in alarms:
            self.listeners.setdefault(alarm.name, []).append(listener)
            if alarm.endpoint == endpoint:
                self._begin(
                    alarm,
                    Scope(config, deployment_id),
                    f"evaluation moved to the green fleet ({config}) of deployment {deployment_id}",
                )
        return alarms

    def unwatch(self, names: Sequence[str], deployment_id: int, listener: Listener) -> None:
        """Stop calling `listener`; alarms this deployment scoped to its green fleet go back
        to the whole endpoint, starting afresh."""
        for name in names:
            listeners = self.listeners.get(name, [])
            if listener in listeners:
                listeners.remove(listener)
            evaluation = self.evaluations.get(name)
            if evaluation is not None and evaluation.scope.deployment_id == deployment_id:
                with contextlib.suppress(NotFound):
                    alarm = self.repo.get(name)
                    self._begin(alarm, Scope(), "evaluation back on the whole endpoint")

    def validate_watch(self, names: Sequence[str], endpoint: str) -> None:
        for name in names:
            self._watchable(name, endpoint)

    def _watchable(self, name: str, endpoint: str) -> Alarm:
        try:
            alarm = self.repo.get(name)
        except NotFound:
            raise ValidationError(
                f"alarm {name!r} does not exist", field="AutoRollbackConfiguration.Alarms"
            ) from None
        if alarm.endpoint is not None and alarm.endpoint != endpoint:
            raise ValidationError(
                f"alarm {name!r} watches endpoint {alarm.endpoint!r}, not {endpoint!r}",
                field="AutoRollbackConfiguration.Alarms",
            )
        return alarm

    def states(self, names: Sequence[str]) -> dict[str, str]:
        return {n: self.evaluations[n].alarm.state.value for n in names if n in self.evaluations}

    # -- evaluation

    def start(self) -> None:
        for alarm in self.repo.find():
            self._begin(alarm, Scope())
        self.task = asyncio.create_task(self._loop(), name="alarms")

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    def _begin(self, alarm: Alarm, scope: Scope, reason: str | None = None) -> None:
        """(Re)start an alarm's evaluation on `scope`, with no datapoints yet."""
        evaluation = Evaluation(alarm, scope)
        evaluation.last = self._snapshot(evaluation)
        self.evaluations[alarm.name] = evaluation
        if reason is not None and alarm.state is not AlarmState.INSUFFICIENT_DATA:
            self._transition(evaluation, AlarmState.INSUFFICIENT_DATA, reason)
        self.changed.set()

    async def _loop(self) -> None:
        while True:
            now = time.time()
            for evaluation in list(self.evaluations.values()):
                if now >= evaluation.due:
                    try:
                        self._evaluate(evaluation, now)
                    except Exception:  # noqa: BLE001 - one bad alarm must not stop the others
                        log.exception("evaluating alarm %s failed", evaluation.alarm.name)
                        evaluation.due = now + evaluation.alarm.period_s
            upcoming = min((e.due for e in self.evaluations.values()), default=now + self.tick_s)
            self.changed.clear()
            await wait_at_most(self.changed, min(self.tick_s, upcoming - time.time()))

    def _evaluate(self, evaluation: Evaluation, now: float) -> None:
        alarm = evaluation.alarm
        start = evaluation.due - alarm.period_s
        if alarm.namespace is not None:
            value = self._stored(alarm, evaluation.due)
        elif alarm.metric in BUILTIN:
            current = self._snapshot(evaluation)
            window = merge(w - evaluation.last.get(key, Window()) for key, w in current.items())
            evaluation.last = current
            value = datapoint(alarm, window)
        else:
            value = custom_datapoint(
                alarm.statistic, self.custom.values(alarm, start, evaluation.due)
            )
        evaluation.points.append((evaluation.due, value))
        # Periods missed (a stalled loop) count as one; the next is a full period from now.
        evaluation.due = max(evaluation.due + alarm.period_s, now + alarm.period_s * 0.5)
        state, reason = decide(alarm, [v for _, v in evaluation.points], alarm.state)
        if state is not alarm.state:
            self._transition(evaluation, state, reason)

    def _stored(self, alarm: Alarm, end: float) -> float | None:
        if self.stored_series is None:
            return None
        percentiles = [float(alarm.statistic[1:])] if alarm.statistic.startswith("p") else []
        # Whole 10-second periods of the history: the last period_s of them before `end`.
        until = math.floor(end / 10) * 10
        points = self.stored_series.datapoints(
            series(alarm.namespace or "", alarm.metric, dict(alarm.dimensions)),
            datetime.fromtimestamp(until - alarm.period_s, UTC),
            datetime.fromtimestamp(until, UTC),
            alarm.period_s,
            percentiles,
        )
        return stored_datapoint(points[-1] if points else None, alarm.statistic)

    def _snapshot(self, evaluation: Evaluation) -> dict[tuple[str, str], Window]:
        alarm, scope = evaluation.alarm, evaluation.scope
        if alarm.endpoint is None or alarm.metric not in BUILTIN or alarm.namespace:
            return {}
        return {
            (config, variant): window
            for (config, variant), window in self.fleets(alarm.endpoint).items()
            if (alarm.variant is None or variant == alarm.variant)
            and (scope.config is None or config == scope.config)
        }

    def _transition(self, evaluation: Evaluation, state: AlarmState, reason: str) -> None:
        alarm = evaluation.alarm
        at = datetime.now(UTC)
        scope = evaluation.scope.describe(alarm)
        saved, transition = self.repo.transition(
            alarm, state, reason, scope, evaluation.scope.deployment_id, at
        )
        evaluation.alarm = saved
        log.info("alarm %s: %s -> %s (%s)", alarm.name, alarm.state, state, reason)
        for listener in list(self.listeners.get(alarm.name, ())):
            try:
                listener(saved, transition)
            except Exception:  # noqa: BLE001 - a listener's bug must not stop evaluation
                log.exception("alarm listener for %s failed", alarm.name)
        if alarm.webhook_url and saved.actions_enabled:
            self.notifier.notify(alarm.webhook_url, transition_payload(saved, transition))

    def state_counts(self) -> Iterator[tuple[str, str]]:
        for name, evaluation in self.evaluations.items():
            yield name, evaluation.alarm.state.value


def transition_payload(alarm: Alarm, transition: AlarmTransition) -> dict[str, object]:
    return {
        "alarm": alarm.name,
        "old_state": transition.old_state.value,
        "new_state": transition.new_state.value,
        "reason": transition.reason,
        "scope": transition.scope,
        "deployment_id": transition.deployment_id,
        "at": transition.at.isoformat(),
        "metric": alarm.metric,
        "statistic": alarm.statistic,
        "threshold": alarm.threshold,
        "endpoint": alarm.endpoint,
        "variant": alarm.variant,
    }
