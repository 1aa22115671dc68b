"""CloudWatch's metric operations over the metric history, protocol aside: members in
(checked against botocore's model already, timestamps as datetimes), members out.

`PutMetricData`, `GetMetricStatistics`, `ListMetrics` and `GetMetricData` (`MetricStat`
queries; metric math expressions are refused by name). The history keeps 10 s periods,
so a period must be 10, 30 or a multiple of 60 seconds (CloudWatch also takes 1 and 5
for its high-resolution metrics).
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sluice.errors import SluiceError
from sluice.store.metric_repo import (
    Datapoint,
    MetricRepository,
    Period,
    Series,
    align,
    period_of,
    series,
)

MAX_DATAPOINTS = 1440
"""GetMetricStatistics answers at most this many datapoints (CloudWatch's limit)."""
PAGE = 500
"""ListMetrics answers this many metrics a page."""
STATISTICS = ("SampleCount", "Average", "Sum", "Minimum", "Maximum")
_PERCENTILE = re.compile(r"^p(\d{1,2}(\.\d{1,10})?|100)$")


class CloudWatchError(SluiceError):
    """An error CloudWatch models: `code` its shape name, `query_code` its query code."""

    query_code = "InvalidParameterValue"

    def __init__(self, message: str) -> None:
        super().__init__(message)


class InvalidParameterValue(CloudWatchError):
    code = "InvalidParameterValueException"
    query_code = "InvalidParameterValue"
    status = 400


class InvalidParameterCombination(CloudWatchError):
    code = "InvalidParameterCombinationException"
    query_code = "InvalidParameterCombination"
    status = 400


class MissingParameter(CloudWatchError):
    code = "MissingRequiredParameterException"
    query_code = "MissingParameter"
    status = 400


class InvalidNextToken(CloudWatchError):
    code = "InvalidNextToken"
    query_code = "InvalidNextToken"
    status = 400


TRAINING_NAMESPACE = "/aws/sagemaker/TrainingJobs"


class CloudWatchMetrics:
    def __init__(self, repo: MetricRepository, now: Callable[[], datetime] | None = None) -> None:
        self.repo = repo
        self.now = now or (lambda: datetime.now(UTC))

    def put_metric_data(self, members: dict[str, Any]) -> dict[str, Any]:
        namespace: str = members["Namespace"]
        if namespace.startswith("AWS/"):
            raise InvalidParameterValue(
                "The value AWS/ for parameter Namespace is invalid: it is reserved"
            )
        now = self.now()
        periods: list[Period] = []
        for i, datum in enumerate(members.get("MetricData", []), start=1):
            where = f"MetricData.member.{i}"
            at = datum.get("Timestamp") or now
            if not now - timedelta(days=14) <= at <= now + timedelta(hours=2):
                raise InvalidParameterValue(
                    f"The parameter {where}.Timestamp must be within the last two weeks "
                    "and at most two hours ahead"
                )
            item = series(namespace, datum["MetricName"], dimensions_of(datum.get("Dimensions")))
            resolution = 10 if datum.get("StorageResolution") == 1 else 60
            periods.append(_datum_period(item, at, resolution, datum, where))
        self.repo.add(periods)
        return {}

    def put_training_metrics(self, job: str, points: Sequence[tuple[str, float, float]]) -> None:
        """A training job's metric values (metric, value, epoch seconds) where SageMaker
        keeps them: namespace /aws/sagemaker/TrainingJobs, dimension Host <job>/algo-1,
        at high resolution (the SDK's TrainingJobAnalytics reads them there)."""
        host = [{"Name": "Host", "Value": f"{job}/algo-1"}]
        data = [
            {
                "MetricName": name,
                "Value": value,
                "Timestamp": datetime.fromtimestamp(at, UTC),
                "Dimensions": host,
                "StorageResolution": 1,
            }
            for name, value, at in points
            if math.isfinite(value)
        ]
        if data:
            self.put_metric_data({"Namespace": TRAINING_NAMESPACE, "MetricData": data})

    def get_metric_statistics(self, members: dict[str, Any]) -> dict[str, Any]:
        statistics: list[str] = members.get("Statistics") or []
        extended: list[str] = members.get("ExtendedStatistics") or []
        if not statistics and not extended:
            raise MissingParameter(
                "Must specify either Statistics or ExtendedStatistics, but not both"
            )
        if statistics and extended:
            raise InvalidParameterCombination(
                "Must specify either Statistics or ExtendedStatistics, but not both"
            )
        percentiles = [_percentile(name) for name in extended]
        period = members["Period"]
        _check_period(period)
        start, end = _rounded(members["StartTime"], period), members["EndTime"]
        if end <= start:
            raise InvalidParameterValue("The parameter StartTime must be before EndTime")
        wanted = math.ceil((end - start).total_seconds() / period)
        if wanted > MAX_DATAPOINTS:
            raise InvalidParameterCombination(
                f"You have requested up to {wanted:,} datapoints, which exceeds the limit of "
                f"{MAX_DATAPOINTS:,}. You may reduce the datapoints requested by increasing "
                "Period, or decreasing the time range."
            )
        item = series(
            members["Namespace"], members["MetricName"], dimensions_of(members.get("Dimensions"))
        )
        unit = members.get("Unit")
        points = self.repo.datapoints(item, start, end, period, percentiles)
        out = []
        for point in points:
            if unit is not None and (point.unit or "None") != unit:
                continue
            datapoint: dict[str, Any] = {"Timestamp": point.at, "Unit": point.unit or "None"}
            for name in statistics:
                datapoint[name] = _statistic(point, name)
            if extended:
                datapoint["ExtendedStatistics"] = {
                    name: value
                    for name, q in zip(extended, percentiles, strict=True)
                    if (value := point.percentiles.get(q)) is not None
                }
            out.append(datapoint)
        return {"Label": members["MetricName"], "Datapoints": out}

    def list_metrics(self, members: dict[str, Any]) -> dict[str, Any]:
        filters = [(d["Name"], d.get("Value")) for d in members.get("Dimensions") or []]
        found = self.repo.series(members.get("Namespace"), members.get("MetricName"), filters)
        if members.get("RecentlyActive") == "PT3H":
            since = self.now() - timedelta(hours=3)
            found = [s for s in found if self.repo.datapoints(s, since, self.now(), 10800)]
        offset = _offset(members.get("NextToken"))
        page = found[offset : offset + PAGE]
        out: dict[str, Any] = {"Metrics": [_metric(s) for s in page]}
        if offset + PAGE < len(found):
            out["NextToken"] = _token(offset + PAGE)
        return out

    def get_metric_data(self, members: dict[str, Any]) -> dict[str, Any]:
        end = members["EndTime"]
        if end <= members["StartTime"]:
            raise InvalidParameterValue("The parameter StartTime must be before EndTime")
        descending = members.get("ScanBy", "TimestampDescending") == "TimestampDescending"
        results = []
        for query in members["MetricDataQueries"]:
            if "Expression" in query:
                raise InvalidParameterValue(
                    f"Query {query['Id']}: metric math expressions are not supported by "
                    "sluice; use MetricStat"
                )
            stat = query.get("MetricStat")
            if stat is None:
                raise MissingParameter(f"Query {query['Id']} needs MetricStat")
            _check_period(stat["Period"])
            start = _rounded(members["StartTime"], stat["Period"])
            metric = stat["Metric"]
            item = series(
                metric.get("Namespace", ""),
                metric.get("MetricName", ""),
                dimensions_of(metric.get("Dimensions")),
            )
            name = stat["Stat"]
            percentiles = [_percentile(name)] if name.startswith("p") else []
            if not percentiles and name not in STATISTICS:
                raise InvalidParameterValue(
                    f"Query {query['Id']}: the statistic {name!r} is not valid"
                )
            points = self.repo.datapoints(item, start, end, stat["Period"], percentiles)
            pairs = [
                (p.at, p.percentiles.get(percentiles[0]) if percentiles else _statistic(p, name))
                for p in points
                if stat.get("Unit") is None or (p.unit or "None") == stat["Unit"]
            ]
            pairs = [(at, value) for at, value in pairs if value is not None]
            if descending:
                pairs.reverse()
            if query.get("ReturnData", True):
                results.append(
                    {
                        "Id": query["Id"],
                        "Label": query.get("Label") or metric.get("MetricName", ""),
                        "Timestamps": [at for at, _ in pairs],
                        "Values": [value for _, value in pairs],
                        "StatusCode": "Complete",
                    }
                )
        return {"MetricDataResults": results, "Messages": []}


def _datum_period(
    item: Series, at: datetime, resolution: int, datum: Mapping[str, Any], where: str
) -> Period:
    unit = datum.get("Unit")
    given = [k for k in ("Value", "StatisticValues", "Values") if k in datum]
    if len(given) != 1:
        raise InvalidParameterCombination(
            f"The parameters {where}.Value, {where}.StatisticValues and {where}.Values are "
            "mutually exclusive, and one of them is required"
        )
    if "StatisticValues" in datum:
        s = datum["StatisticValues"]
        for key in ("SampleCount", "Sum", "Minimum", "Maximum"):
            if not math.isfinite(s[key]):
                raise InvalidParameterValue(
                    f"The parameter {where}.StatisticValues.{key} must be finite"
                )
        if s["SampleCount"] <= 0 or s["Minimum"] > s["Maximum"]:
            raise InvalidParameterValue(
                f"The parameter {where}.StatisticValues must have SampleCount > 0 and "
                "Minimum <= Maximum"
            )
        return Period(
            item, align(at, resolution), resolution, s["SampleCount"], s["Sum"], s["Minimum"],
            s["Maximum"], unit, None,
        )  # fmt: skip
    values = [datum["Value"]] if "Value" in datum else list(datum["Values"])
    counts = list(datum.get("Counts") or [1.0] * len(values))
    if len(counts) != len(values):
        raise InvalidParameterValue(
            f"The parameters {where}.Values and {where}.Counts differ in length"
        )
    if not values or not all(math.isfinite(v) for v in values):
        raise InvalidParameterValue(f"The parameter {where} needs finite values")
    expanded = [v for v, n in zip(values, counts, strict=True) for _ in range(max(1, round(n)))]
    made = period_of(item, at, resolution, expanded, unit)
    assert made is not None
    return made


def _statistic(point: Datapoint, name: str) -> float:
    return {
        "SampleCount": point.samples,
        "Average": point.average,
        "Sum": point.total,
        "Minimum": point.minimum,
        "Maximum": point.maximum,
    }[name]


def _percentile(name: str) -> float:
    match = _PERCENTILE.match(name)
    if match is None:
        raise InvalidParameterValue(
            f"The value {name} for ExtendedStatistics is not valid (pNN.NN)"
        )
    return float(name[1:])


def _rounded(start: datetime, period: int) -> datetime:
    """StartTime rounded down as CloudWatch rounds it (to the minute; to the period for
    periods under a minute), so datapoints fall on whole periods."""
    return align(start, min(period, 60))


def _check_period(period: int) -> None:
    if period not in (10, 30) and (period < 60 or period % 60):
        raise InvalidParameterValue(
            f"The parameter Period must be 10, 30 or a multiple of 60 (sluice keeps 10 s "
            f"periods), not {period}"
        )


def dimensions_of(given: Sequence[Mapping[str, str]] | None) -> dict[str, str]:
    return {d["Name"]: d["Value"] for d in given or []}


def _metric(item: Series) -> dict[str, Any]:
    return {
        "Namespace": item.namespace,
        "MetricName": item.name,
        "Dimensions": [{"Name": k, "Value": v} for k, v in item.dimensions],
    }


def _token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def _offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        kind, _, number = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        if kind == "offset" and number.isdigit():
            return int(number)
    except (ValueError, UnicodeDecodeError):
        pass
    raise InvalidNextToken("The NextToken is not one this server gave")
