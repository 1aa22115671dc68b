"""CloudWatch's metric alarms, mapped onto sluice's alarms: `PutMetricAlarm`,
`DescribeAlarms`, `DescribeAlarmsForMetric`, `DescribeAlarmHistory`, `DeleteAlarms`,
`SetAlarmState`, `EnableAlarmActions` and `DisableAlarmActions`.

An alarm made here is a sluice alarm like any other: it can guard a deployment
(`AutoRollbackConfiguration` names it), and the native API and CLI see it. The
`AWS/SageMaker` endpoint metrics sluice's alarms watch live (`Invocations`,
`Invocation4XXErrors`, `Invocation5XXErrors`, `ModelLatency`, `OverheadLatency`, with
`EndpointName` and optionally `VariantName`) are evaluated on the gateway's running totals
(so a deployment can scope them to its green fleet); any other series (custom namespaces
put with PutMetricData, `CPUUtilization`, the async backlog, monitoring's metrics, ...) is
read from the metric history, dimensions matched exactly, periods in multiples of 10 s.
Also mapped: `Statistic` or `ExtendedStatistic`; the period, evaluation periods,
datapoints to alarm, comparison and missing-data treatment; `AlarmActions`: at most one
SNS topic ARN whose sink setting `sns_topics` names (the transitions are posted there)
and any number of Application Auto Scaling policy ARNs (step scaling: the policy acts
while the alarm is in ALARM);
`ActionsEnabled`, `EnableAlarmActions` and `DisableAlarmActions` switch both kinds;
`SetAlarmState` sets a state until the next evaluation (listeners, such as a deployment
the alarm guards, see it as a real transition). Latencies are in microseconds here,
as SageMaker publishes them (sluice's own alarms count milliseconds). Anything else is
refused by name rather than stored and ignored.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sluice.compat.cloudwatch.metrics import (
    CloudWatchError,
    InvalidNextToken,
    InvalidParameterValue,
    dimensions_of,
)
from sluice.control.alarms import BUILTIN, AlarmService
from sluice.entities import Alarm, AlarmState
from sluice.errors import NotFound

NAMESPACE = "AWS/SageMaker"
LATENCIES = ("ModelLatency", "OverheadLatency")
MICROSECONDS_PER_MS = 1000.0
PAGE = 100
HISTORY_LIMIT = 10_000
"""The most state changes DescribeAlarmHistory looks through."""


class ResourceNotFound(CloudWatchError):
    code = "ResourceNotFound"
    query_code = "ResourceNotFound"
    status = 404


SCALING_POLICY_ARN = "arn:aws:autoscaling:"


class CloudWatchAlarms:
    def __init__(
        self,
        alarms: AlarmService,
        topics: Mapping[str, str],
        region: str,
        check_actions: Callable[[Sequence[str]], None] = lambda arns: None,
    ) -> None:
        self.alarms = alarms
        self.topics = topics
        """SNS topic ARN to the webhook that receives its messages (setting sns_topics)."""
        self.region = region
        self.check_actions = check_actions
        """Raises unless every scaling policy ARN given exists."""

    def put_metric_alarm(self, members: dict[str, Any]) -> dict[str, Any]:
        name = members["AlarmName"]
        if members.get("Metrics"):
            raise InvalidParameterValue(
                "metric math alarms (Metrics) are not supported by sluice; name a MetricName"
            )
        if not members.get("Namespace") or not members.get("MetricName"):
            raise InvalidParameterValue("an alarm names its Namespace and MetricName")
        metric = members["MetricName"]
        dimensions = dimensions_of(members.get("Dimensions"))
        # SageMaker's endpoint metrics are judged live on the gateway's totals (and can
        # follow a deployment's green fleet); any other series from the metric history.
        live = members["Namespace"] == NAMESPACE and metric in BUILTIN
        if live and (
            set(dimensions) - {"EndpointName", "VariantName"} or "EndpointName" not in dimensions
        ):
            raise InvalidParameterValue(
                f"an alarm on {NAMESPACE} {metric} has the Dimensions EndpointName and, "
                "optionally, VariantName"
            )
        statistic = members.get("ExtendedStatistic") or members.get("Statistic")
        if statistic is None or ("ExtendedStatistic" in members and "Statistic" in members):
            raise InvalidParameterValue("name one of Statistic and ExtendedStatistic")
        for unsupported in ("OKActions", "InsufficientDataActions"):
            if members.get(unsupported):
                raise InvalidParameterValue(
                    f"{unsupported} are not supported by sluice: AlarmActions receive every "
                    "transition"
                )
        actions = members.get("AlarmActions") or []
        policies = [arn for arn in actions if arn.startswith(SCALING_POLICY_ARN)]
        topics = [arn for arn in actions if not arn.startswith(SCALING_POLICY_ARN)]
        if len(topics) > 1:
            raise InvalidParameterValue("sluice takes one SNS topic in AlarmActions")
        webhook = None
        if topics:
            webhook = self.topics.get(topics[0])
            if webhook is None:
                raise InvalidParameterValue(
                    f"no sink is configured for the SNS topic {topics[0]!r} (setting "
                    "sns_topics: topic ARN to a webhook URL)"
                )
        try:
            self.check_actions(policies)
        except Exception as exc:  # noqa: BLE001 - the autoscaler's words, in CloudWatch's shape
            raise InvalidParameterValue(getattr(exc, "message", str(exc))) from None
        threshold = float(members["Threshold"])
        if live and metric in LATENCIES:
            threshold /= MICROSECONDS_PER_MS
        evaluation_periods = members["EvaluationPeriods"]
        alarm = Alarm(
            name=name,
            metric=metric,
            statistic=statistic,
            comparison=members["ComparisonOperator"],
            threshold=threshold,
            period_s=members["Period"],
            evaluation_periods=evaluation_periods,
            datapoints_to_alarm=members.get("DatapointsToAlarm") or evaluation_periods,
            endpoint=dimensions["EndpointName"] if live else None,
            variant=dimensions.get("VariantName") if live else None,
            treat_missing_data=members.get("TreatMissingData") or "missing",
            webhook_url=webhook,
            description=members.get("AlarmDescription") or "",
            actions=tuple(policies),
            actions_enabled=members.get("ActionsEnabled", True),
            namespace=None if live else members["Namespace"],
            dimensions=() if live else tuple(sorted(dimensions.items())),
        )
        try:
            self.alarms.put(alarm)
        except CloudWatchError:
            raise
        except Exception as exc:  # noqa: BLE001 - sluice's validation, in CloudWatch's words
            message = getattr(exc, "message", str(exc))
            raise InvalidParameterValue(message) from None
        return {}

    def describe_alarms(self, members: dict[str, Any]) -> dict[str, Any]:
        names = set(members.get("AlarmNames") or [])
        prefix = members.get("AlarmNamePrefix")
        state = members.get("StateValue")
        found = [
            alarm
            for alarm in sorted(self.alarms.find(), key=lambda a: a.name)
            if (not names or alarm.name in names)
            and (prefix is None or alarm.name.startswith(prefix))
            and (state is None or alarm.state.value == state)
        ]
        size = members.get("MaxRecords") or PAGE
        offset = _offset(members.get("NextToken"))
        out: dict[str, Any] = {
            "MetricAlarms": [self._described(a) for a in found[offset : offset + size]],
            "CompositeAlarms": [],
        }
        if offset + size < len(found):
            out["NextToken"] = str(offset + size)
        return out

    def delete_alarms(self, members: dict[str, Any]) -> dict[str, Any]:
        names = members["AlarmNames"]
        known = {alarm.name for alarm in self.alarms.find()}
        missing = [name for name in names if name not in known]
        if missing:
            raise ResourceNotFound(f"Alarm(s) {', '.join(missing)} not found; none deleted")
        for name in names:
            try:
                self.alarms.delete(name)
            except NotFound:
                pass
            except Exception as exc:  # noqa: BLE001 - in CloudWatch's words
                raise InvalidParameterValue(getattr(exc, "message", str(exc))) from None
        return {}

    def set_alarm_state(self, members: dict[str, Any]) -> dict[str, Any]:
        name = members["AlarmName"]
        try:
            state = AlarmState(members["StateValue"])
        except ValueError:
            raise InvalidParameterValue(
                f"StateValue must be one of {', '.join(s.value for s in AlarmState)}"
            ) from None
        try:
            self.alarms.set_state(name, state, members["StateReason"])
        except NotFound:
            raise ResourceNotFound(f"Alarm {name} not found") from None
        return {}

    def enable_alarm_actions(self, members: dict[str, Any]) -> dict[str, Any]:
        self.alarms.set_actions_enabled(members["AlarmNames"], True)
        return {}

    def disable_alarm_actions(self, members: dict[str, Any]) -> dict[str, Any]:
        self.alarms.set_actions_enabled(members["AlarmNames"], False)
        return {}

    def describe_alarms_for_metric(self, members: dict[str, Any]) -> dict[str, Any]:
        """The alarms on one metric (and, where given, statistic, period and dimensions)."""
        dimensions = dimensions_of(members.get("Dimensions"))
        statistic = members.get("ExtendedStatistic") or members.get("Statistic")
        found = [
            alarm
            for alarm in sorted(self.alarms.find(), key=lambda a: a.name)
            if alarm.metric == members["MetricName"]
            and (alarm.namespace or NAMESPACE) == members.get("Namespace")
            and (statistic is None or alarm.statistic == statistic)
            and (members.get("Period") is None or alarm.period_s == members["Period"])
            and (not dimensions or dimensions == _alarm_dimensions(alarm))
        ]
        return {"MetricAlarms": [self._described(a) for a in found]}

    def describe_alarm_history(self, members: dict[str, Any]) -> dict[str, Any]:
        """State changes, newest first (ScanBy TimestampAscending: oldest first)."""
        name = members.get("AlarmName")
        kind = members.get("HistoryItemType")
        if kind is not None and kind != "StateUpdate":
            return {"AlarmHistoryItems": []}  # sluice records state changes only
        try:
            changes = self.alarms.history(name, limit=HISTORY_LIMIT)
        except NotFound:
            return {"AlarmHistoryItems": []}
        start, end = members.get("StartDate"), members.get("EndDate")
        items = [
            {
                "AlarmName": change.alarm,
                "AlarmType": "MetricAlarm",
                "Timestamp": change.at,
                "HistoryItemType": "StateUpdate",
                "HistorySummary": (
                    f"Alarm updated from {change.old_state.value} to {change.new_state.value}"
                ),
                "HistoryData": json.dumps(
                    {
                        "version": "1.0",
                        "oldState": {"stateValue": change.old_state.value},
                        "newState": {
                            "stateValue": change.new_state.value,
                            "stateReason": change.reason,
                        },
                        "scope": change.scope,
                    }
                ),
            }
            for change in changes
            if (start is None or change.at >= start) and (end is None or change.at <= end)
        ]
        if members.get("ScanBy") == "TimestampAscending":
            items.reverse()
        size = members.get("MaxRecords") or PAGE
        offset = _offset(members.get("NextToken"))
        out: dict[str, Any] = {"AlarmHistoryItems": items[offset : offset + size]}
        if offset + size < len(items):
            out["NextToken"] = str(offset + size)
        return out

    def _described(self, alarm: Alarm) -> dict[str, Any]:
        threshold = alarm.threshold
        if alarm.namespace is None and alarm.metric in LATENCIES:
            threshold *= MICROSECONDS_PER_MS
        dimensions = [{"Name": k, "Value": v} for k, v in _alarm_dimensions(alarm).items()]
        topics = [arn for arn, url in self.topics.items() if url == alarm.webhook_url]
        described: dict[str, Any] = {
            "AlarmName": alarm.name,
            "AlarmArn": f"arn:aws:cloudwatch:{self.region}:000000000000:alarm:{alarm.name}",
            "AlarmDescription": alarm.description,
            "ActionsEnabled": alarm.actions_enabled,
            "OKActions": [],
            "AlarmActions": [*topics[:1], *alarm.actions],
            "InsufficientDataActions": [],
            "StateValue": alarm.state.value,
            "StateReason": alarm.state_reason,
            "MetricName": alarm.metric,
            "Namespace": alarm.namespace or NAMESPACE,
            "Dimensions": dimensions,
            "Period": alarm.period_s,
            "EvaluationPeriods": alarm.evaluation_periods,
            "DatapointsToAlarm": alarm.datapoints_to_alarm,
            "Threshold": threshold,
            "ComparisonOperator": alarm.comparison,
            "TreatMissingData": alarm.treat_missing_data,
        }
        if alarm.statistic.startswith("p"):
            described["ExtendedStatistic"] = alarm.statistic
        else:
            described["Statistic"] = alarm.statistic
        if alarm.state_updated_at is not None:
            described["StateUpdatedTimestamp"] = alarm.state_updated_at
            described["StateTransitionedTimestamp"] = alarm.state_updated_at
        if alarm.created_at is not None:
            described["AlarmConfigurationUpdatedTimestamp"] = alarm.created_at
        return described


def _alarm_dimensions(alarm: Alarm) -> dict[str, str]:
    if alarm.namespace is not None:
        return dict(alarm.dimensions)
    found = {"EndpointName": alarm.endpoint or ""}
    if alarm.variant:
        found["VariantName"] = alarm.variant
    return found


def _offset(token: str | None) -> int:
    if not token:
        return 0
    if not token.isdigit():
        raise InvalidNextToken("The NextToken is not one this server gave")
    return int(token)
