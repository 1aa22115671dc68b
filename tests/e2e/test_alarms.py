"""Alarms through the native API of a running server: definitions, custom metrics,
transitions, webhooks and the errors a user meets."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from sluice.client import Client
from sluice.errors import SluiceError
from tests.conftest import RunningServer
from tests.e2e.helpers import metric

pytestmark = pytest.mark.slow


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A real HTTP receiver; yields its URL and the JSON bodies it was sent."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the handler API's name
            length = int(self.headers["Content-Length"])
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{http.server_address[1]}/hook", received
    finally:
        http.shutdown()


def _wait_alarm(client: Client, name: str, state: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while client.get_alarm(name).state != state:
        assert time.monotonic() < deadline, client.get_alarm(name)
        time.sleep(0.1)


def test_custom_metric_alarm_goes_to_alarm_and_back_and_notifies(
    server: RunningServer, webhook: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = webhook
    with Client(server.url) as client:
        created = client.put_alarm(
            "queue-depth-high",
            metric="queue-depth",
            statistic="Maximum",
            threshold=10,
            period_s=1,
            treat_missing_data="notBreaching",
            webhook_url=url,
            description="jobs waiting",
        )
        assert created.state == "INSUFFICIENT_DATA" and created.description == "jobs waiting"
        client.put_metrics([{"name": "queue-depth", "value": 50.0}])
        _wait_alarm(client, "queue-depth-high", "ALARM")
        assert metric(server.url, "sluice_alarm_state", alarm="queue-depth-high") == 1
        # No more values: missing data counts as not breaching.
        _wait_alarm(client, "queue-depth-high", "OK")
        history = client.alarm_history("queue-depth-high")
        states = [(t.old_state, t.new_state) for t in reversed(history)]
        assert ("INSUFFICIENT_DATA", "ALARM") in states or ("OK", "ALARM") in states
        assert states[-1] == ("ALARM", "OK")
        deadline = time.monotonic() + 10
        while len(received) < 2:
            assert time.monotonic() < deadline, received
            time.sleep(0.1)
        first_alarm = next(r for r in received if r["new_state"] == "ALARM")
        assert first_alarm["alarm"] == "queue-depth-high"
        assert "queue-depth" in first_alarm["reason"]
        assert [a.name for a in client.list_alarms()] == ["queue-depth-high"]
        client.delete_alarm("queue-depth-high")
        with pytest.raises(SluiceError, match="does not exist") as gone:
            client.get_alarm("queue-depth-high")
        assert gone.value.status == 404


def test_bad_alarms_and_metrics_get_clear_errors_and_store_nothing(
    server: RunningServer, artifacts: dict[str, Path]
) -> None:
    with Client(server.url) as client:
        custom = {"metric": "queue-depth", "threshold": 1}
        cases: list[tuple[dict[str, Any], str]] = [
            ({"metric": "ModelLatency", "threshold": 1}, "name the endpoint"),
            ({**custom, "comparison": "Bigger"}, "comparison"),
            ({**custom, "statistic": "p101"}, "statistic"),
            ({**custom, "period_s": 0}, "period"),
            ({**custom, "evaluation_periods": 2, "datapoints_to_alarm": 3}, "datapoints"),
            ({**custom, "treat_missing_data": "guess"}, "missing"),
            ({**custom, "variant": "A"}, "variant needs its endpoint"),
            ({**custom, "webhook_url": "ftp://x"}, "webhook"),
        ]
        for definition, words in cases:
            with pytest.raises(SluiceError) as bad:
                client.put_alarm("bad", **definition)
            assert bad.value.status in (400, 404), definition
            assert words.lower() in bad.value.message.lower(), (definition, bad.value.message)
        assert client.list_alarms() == []
        # Like CloudWatch, an alarm may name an endpoint that does not exist yet.
        assert client.put_alarm("later", metric="ModelLatency", threshold=1, endpoint="x").state
        client.delete_alarm("later")
        response = httpx.put(f"{server.url}/api/v1/alarms/bad", content=b"{not json")
        assert response.status_code == 400

        with pytest.raises(SluiceError, match="built-in metric") as builtin:
            client.put_metrics([{"name": "ModelLatency", "value": 1.0}])
        assert builtin.value.status == 400
        client.put_alarm(
            "revenue-low",
            metric="revenue",
            statistic="SampleCount",
            comparison="LessThanThreshold",
            threshold=0,
            period_s=1,
        )
        stale = time.time() - 3 * 86400
        with pytest.raises(SluiceError, match="within the last day") as batch:
            client.put_metrics(
                [
                    {"name": "revenue", "value": 1.0},
                    {"name": "revenue", "value": 2.0, "timestamp": stale},
                ]
            )
        assert batch.value.field == "metrics[1].timestamp"
        with pytest.raises(SluiceError, match="does not exist"):
            client.get_alarm("nope")
        with pytest.raises(SluiceError, match="does not exist"):
            client.delete_alarm("nope")

        # A deployment may only watch alarms that exist and belong to its endpoint.
        client.create_model("logreg", str(artifacts["logreg"]))
        client.create_endpoint_config("v1", [{"name": "A", "model": "logreg"}])
        client.create_endpoint_config("v2", [{"name": "A", "model": "logreg"}])
        client.create_endpoint("ep", "v1", wait=True, timeout=60)
        client.put_alarm("other-5xx", metric="Invocation5XXErrors", threshold=0, endpoint="other")
        policy = {
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0}
            },
            "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "missing"}]},
        }
        with pytest.raises(SluiceError, match="alarm 'missing' does not exist") as unknown:
            client.update_endpoint("ep", "v2", policy)
        assert unknown.value.field == "AutoRollbackConfiguration.Alarms"
        policy["AutoRollbackConfiguration"] = {"Alarms": [{"AlarmName": "other-5xx"}]}
        with pytest.raises(SluiceError, match="other"):
            client.update_endpoint("ep", "v2", policy)
        assert client.list_deployments("ep") == []
        assert client.get_endpoint("ep").status == "InService"
