from __future__ import annotations

import asyncio
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from sluice.control.alarms import (
    CustomMetrics,
    MetricPoint,
    custom_datapoint,
    datapoint,
    decide,
    validate,
)
from sluice.control.webhooks import Notifier, WebhookPolicy
from sluice.entities import Alarm, AlarmState
from sluice.errors import ValidationError
from sluice.gateway.fleet_stats import FleetStats


def _alarm(**changes: Any) -> Alarm:
    base: dict[str, Any] = dict(
        name="a",
        metric="Invocation5XXErrors",
        statistic="Average",
        comparison="GreaterThanThreshold",
        threshold=0.05,
        period_s=10,
        evaluation_periods=3,
        datapoints_to_alarm=2,
        endpoint="ep",
    )
    base.update(changes)
    return Alarm(**base)


def test_m_of_n_datapoints_and_missing_data() -> None:
    alarm = _alarm()
    assert decide(alarm, [0.1, 0.0, 0.2], AlarmState.OK)[0] is AlarmState.ALARM
    assert decide(alarm, [0.1, 0.0, 0.0], AlarmState.ALARM)[0] is AlarmState.OK
    assert decide(alarm, [None, None, None], AlarmState.OK)[0] is AlarmState.INSUFFICIENT_DATA
    assert decide(alarm, [0.1, None, None], AlarmState.OK)[0] is AlarmState.OK
    breaching = _alarm(treat_missing_data="breaching")
    assert decide(breaching, [0.1, None, None], AlarmState.OK)[0] is AlarmState.ALARM
    ignore = _alarm(treat_missing_data="ignore")
    assert decide(ignore, [None, None, None], AlarmState.ALARM)[0] is AlarmState.ALARM
    state, reason = decide(alarm, [0.1, 0.2, 0.0], AlarmState.OK)
    assert "2 of the last 3 datapoints breached Invocation5XXErrors Average > 0.05" in reason


def test_datapoints_from_fleet_totals() -> None:
    stats = FleetStats()
    for i in range(100):
        stats.record(0.010 if i < 99 else 0.500, 0.0002, 5 if i < 7 else 0)
    window = stats.snapshot()
    assert datapoint(_alarm(), window) == pytest.approx(0.07)
    assert datapoint(_alarm(statistic="Sum"), window) == 7
    p99 = datapoint(_alarm(metric="ModelLatency", statistic="p99"), window)
    assert p99 == pytest.approx(10, rel=0.01)
    top = datapoint(_alarm(metric="ModelLatency", statistic="Maximum"), window)
    assert top == pytest.approx(500, rel=0.01)
    assert datapoint(_alarm(), FleetStats().snapshot()) is None  # no traffic: missing


def test_definitions_are_validated_field_by_field() -> None:
    with pytest.raises(ValidationError) as bad:
        validate(_alarm(statistic="p99"))
    assert bad.value.field == "Statistic"
    with pytest.raises(ValidationError) as bad:
        validate(_alarm(datapoints_to_alarm=4))
    assert bad.value.field == "DatapointsToAlarm"
    with pytest.raises(ValidationError) as bad:
        validate(_alarm(endpoint=None))
    assert bad.value.field == "EndpointName"
    with pytest.raises(ValidationError) as bad:
        validate(_alarm(comparison="Above"))
    assert bad.value.field == "ComparisonOperator"
    validate(_alarm(metric="conversion-rate", endpoint=None, statistic="p90"))


def test_custom_metrics_by_window_and_dimensions() -> None:
    metrics = CustomMetrics()
    now = time.time()
    metrics.put(
        [
            MetricPoint("revenue", 5.0, "ep", "A", now - 5),
            MetricPoint("revenue", 7.0, "ep", "B", now - 5),
            MetricPoint("revenue", 100.0, "ep", "A", now - 50),
        ]
    )
    alarm = _alarm(metric="revenue", statistic="Sum", variant="A")
    assert custom_datapoint("Sum", metrics.values(alarm, now - 10, now)) == 5.0
    everything = _alarm(metric="revenue", statistic="Sum", endpoint=None)
    assert custom_datapoint("Sum", metrics.values(everything, now - 60, now)) == 112.0
    with pytest.raises(ValidationError, match="built-in"):
        metrics.put([MetricPoint("ModelLatency", 1.0)])
    with pytest.raises(ValidationError, match="finite") as bad:
        metrics.put([MetricPoint("revenue", float("nan"))])
    assert bad.value.field == "value"


def test_a_bad_point_stores_none_of_its_batch() -> None:
    metrics = CustomMetrics()
    now = time.time()
    with pytest.raises(ValidationError, match="within the last day") as bad:
        metrics.put([MetricPoint("revenue", 1.0), MetricPoint("revenue", 2.0, at=now - 2 * 86400)])
    assert bad.value.field == "metrics[1].timestamp"
    assert not metrics.series


def test_webhook_retries_until_delivered() -> None:
    received: list[dict[str, Any]] = []
    attempts = {"n": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            attempts["n"] += 1
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if attempts["n"] < 3:
                self.send_response(503)
            else:
                received.append(json.loads(body))
                self.send_response(200)
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    http = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    outcomes: list[str] = []

    async def main() -> None:
        notifier = Notifier(
            attempts=4,
            backoff_s=0.05,
            on_outcome=outcomes.append,
            policy=WebhookPolicy(["http://127.0.0.1"]),
        )
        notifier.start()
        notifier.notify(f"http://127.0.0.1:{http.server_port}/hook", {"alarm": "a"})
        notifier.notify("http://127.0.0.1:9/nobody", {"alarm": "b"})
        await notifier.close(grace_s=5)

    try:
        asyncio.run(main())
    finally:
        http.shutdown()
    assert received == [{"alarm": "a"}] and attempts["n"] == 3
    assert sorted(outcomes) == ["delivered", "failed"]


def test_binned_latencies_are_within_half_a_percent() -> None:
    from sluice.gateway.fleet_stats import bin_of, bin_value

    for seconds in (0.00013, 0.0021, 0.0457, 0.3, 1.7, 42.0):
        assert bin_value(bin_of(seconds)) == pytest.approx(seconds, rel=0.005)
