"""Inference experiments (shadow tests) driven through the API of a real server, with real
models answering: the status machine, sampling, promote / retain / remove, the schedule,
restarts, and the report served while the test runs and after it ends."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest

from sluice.client import Client
from sluice.errors import SluiceError
from tests import models
from tests.conftest import RunningServer
from tests.e2e.helpers import Load, digit_rows, metric, send_many

pytestmark = pytest.mark.slow


@pytest.fixture
def client(server: RunningServer, artifacts: dict[str, Path]) -> Iterator[Client]:
    """An endpoint "ep" (production variant "A": logistic regression, capture on) and a
    second model, "tree", to test in shadow."""
    with Client(server.url) as c:
        c.create_model("logreg", str(artifacts["logreg"]))
        c.create_model("tree", str(artifacts["tree"]))
        c.create_endpoint_config("base", [{"name": "A", "model": "logreg"}], [], {})
        c.create_endpoint("ep", "base", wait=True, timeout=60)
        yield c


def shadow(sampling: int = 100, name: str = "cand") -> dict[str, object]:
    return {"name": name, "model": "tree", "instances": 1, "sampling_percentage": sampling}


def wait_status(client: Client, name: str, status: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while (current := client.get_experiment(name).status) != status:
        assert time.monotonic() < deadline, f"{name} stuck in {current}, wanted {status}"
        time.sleep(0.1)


def test_a_shadow_test_runs_reports_and_is_removed_without_dropping_a_request(
    server: RunningServer, client: Client
) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    created = client.create_experiment(
        "exp", "ep", "A", [shadow(50)], start=later, description="tree vs A"
    )
    assert created.status == "Created"
    assert created.end - created.start == timedelta(days=7)  # SageMaker's default
    assert [v.status for v in created.variants] == ["InService", "Creating"]
    rows = digit_rows(200)
    with Load(server.url, "ep", rows, concurrency=4) as load:
        time.sleep(0.5)
        starting = client.start_experiment("exp")
        assert starting.status == "Starting"
        running = client.wait_for_experiment("exp", ("Running",), 60)
        assert running.status == "Running", running.status_reason
        assert [v.status for v in running.variants] == ["InService", "InService"]
        endpoint = client.get_endpoint("ep")
        assert endpoint.config == running.experiment_config
        assert [(v.name, v.kind) for v in endpoint.variants] == [
            ("A", "production"),
            ("cand", "shadow"),
        ]
        time.sleep(0.5)
    during = load.replies
    assert during and {r.status for r in during} == {200}, "a request failed while starting"

    # Sampling: 50 % of the source's requests are copied, within 4 standard deviations.
    sent_before = metric(server.url, "sluice_shadow_copies_total", variant="cand")
    replies = asyncio.run(send_many(server.url, "ep", digit_rows(2000)))
    assert {r.status for r in replies} == {200}
    deadline = time.monotonic() + 30
    while True:
        copies = metric(server.url, "sluice_shadow_copies_total", variant="cand") - sent_before
        if copies >= 900 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert abs(copies - 1000) < 4 * (2000 * 0.25) ** 0.5, copies

    # Ground truth for the labelled part, then the live report.
    _, y = models.digits()
    truth = [{"inference_id": f"req-{i}", "label": int(y[i % len(y)])} for i in range(2000)]
    assert client.put_ground_truth("ep", truth) == 2000
    time.sleep(1.5)  # capture flushes every second
    live = client.experiment_report("exp", refresh=True)
    assert live["experiment"] == {"name": "exp", "status": "Running", "final": False}
    variants = live["variants"]
    assert variants["A"]["role"] == "production" and variants["cand"]["role"] == "shadow"
    assert variants["A"]["requests"] >= 2000
    assert variants["cand"]["cpu_seconds"] is not None and variants["cand"]["cpu_seconds"] > 0
    assert variants["cand"]["memory_bytes"] > 10_000_000
    assert variants["cand"]["shed_copies"] == 0
    comparison = live["comparisons"][0]
    assert comparison["paired_rows"] == variants["cand"]["rows"]
    assert comparison["quality"]["labelled_rows"] >= 900

    with Load(server.url, "ep", rows, concurrency=4) as load:
        time.sleep(0.3)
        stopping = client.stop_experiment("exp", {"cand": "Remove"}, reason="enough data")
        assert stopping.status == "Stopping"
        done = client.wait_for_experiment("exp", ("Completed",), 60)
        time.sleep(0.3)
    assert {r.status for r in load.replies} == {200}, "a request failed while stopping"
    assert done.status == "Completed" and done.status_reason == "enough data"
    assert [v.status for v in done.variants] == ["InService", "Deleted"]
    assert done.completion_time is not None
    endpoint = client.get_endpoint("ep")
    assert endpoint.config == "base"  # back to the state before the test
    assert [v.name for v in endpoint.variants] == ["A"]
    assert metric(server.url, "sluice_worker_processes", variant="cand") == 0

    final = client.experiment_report("exp")
    assert final["experiment"]["final"] is True
    assert (server.home / "reports" / "experiments" / "exp.json").exists()
    page = client.experiment_report_html("exp")
    text = _text(page)
    assert "Shadow test exp" in text
    paired = f"{final['comparisons'][0]['paired_rows']} paired rows"
    assert paired in text
    events = [ev.message for ev in done.events]
    assert events[0] == "created" and events[-1].startswith("completed")


def test_promote_through_a_canary_and_retain(server: RunningServer, client: Client) -> None:
    client.create_experiment("keep", "ep", "A", [shadow(100)])
    client.start_experiment("keep", wait=True)
    asyncio.run(send_many(server.url, "ep", digit_rows(50)))
    kept = client.stop_experiment("keep", {"cand": "Retain"}, wait=True)
    assert kept.status == "Completed"
    assert [v.status for v in kept.variants] == ["InService", "InService"]
    endpoint = client.get_endpoint("ep")
    assert [(v.name, v.kind) for v in endpoint.variants] == [
        ("A", "production"),
        ("cand", "shadow"),
    ]
    assert endpoint.config == kept.experiment_config

    # A second experiment on the same endpoint, promoted through a canary.
    client.create_experiment("promote", "ep", "A", [shadow(100, "next")])
    client.start_experiment("promote", wait=True)
    canary = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "CANARY",
                "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 50},
                "WaitIntervalInSeconds": 1,
            },
            "TerminationWaitInSeconds": 0,
        }
    }
    with Load(server.url, "ep", digit_rows(100), concurrency=4) as load:
        time.sleep(0.3)
        client.stop_experiment(
            "promote", {"next": "Promote", "A": "Remove"}, deployment_config=canary
        )
        done = client.wait_for_experiment("promote", ("Completed",), 120)
    assert {r.status for r in load.replies} == {200}
    assert done.status == "Completed", done.status_reason
    assert [v.status for v in done.variants] == ["Deleted", "InService"]
    deployment = client.list_deployments("ep")[0]
    assert deployment.kind == "CANARY" and deployment.state == "Completed"
    assert done.stop["deployment_id"] == deployment.id
    endpoint = client.get_endpoint("ep")
    production = [v for v in endpoint.variants if v.kind == "production"]
    assert [(v.name, v.model) for v in production] == [("A", "tree")]
    # The shadow retained by the first experiment stays (it was not this one's to remove).
    assert [v.name for v in endpoint.variants if v.kind == "shadow"] == ["cand"]
    x, _ = models.digits()
    answer = client.invoke("ep", digit_rows(1)[0]).json()
    assert answer["predictions"] == models.digits_tree().predict(x[:1]).tolist()


def test_the_schedule_starts_and_completes_an_experiment(client: Client) -> None:
    # No schedule: it starts at once (SageMaker's default) and runs seven days.
    now = client.wait_for_experiment(
        client.create_experiment("now", "ep", "A", [shadow()]).name, ("Running",), 60
    )
    assert now.status == "Running" and now.end - now.start == timedelta(days=7)
    client.stop_experiment("now", wait=True)
    now = datetime.now(UTC)
    client.create_experiment(
        "timed",
        "ep",
        "A",
        [shadow()],
        start=now + timedelta(seconds=1),
        end=now + timedelta(seconds=6),
    )
    assert client.get_experiment("timed").status == "Created"
    wait_status(client, "timed", "Running", 30)
    done = client.wait_for_experiment("timed", ("Completed",), 60)
    assert done.status == "Completed"
    assert done.status_reason == "its schedule ended; the shadows were removed"
    assert client.get_endpoint("ep").config == "base"


def test_bad_requests_get_clear_errors_and_change_nothing(client: Client) -> None:
    def refused(status: int, field: str | None, call: object, *args: object, **kw: object) -> str:
        with pytest.raises(SluiceError) as info:
            call(*args, **kw)  # type: ignore[operator]
        assert info.value.status == status, info.value.message
        if field is not None:
            assert info.value.field == field, info.value.message
        return info.value.message

    create = client.create_experiment
    refused(404, None, create, "x", "nope", "A", [shadow()])
    assert "not a production variant" in refused(
        400, "SourceModelVariantName", create, "x", "ep", "B", [shadow()]
    )
    refused(400, "ShadowModelVariantName", create, "x", "ep", "A", [shadow(name="A")])
    refused(400, "ModelName", create, "x", "ep", "A", [{"name": "s", "model": "missing"}])
    far = datetime.now(UTC) + timedelta(days=31)
    refused(400, "EndTime", create, "x", "ep", "A", [shadow()], end=far)
    refused(400, "Name", create, "bad_name", "ep", "A", [shadow()])
    refused(400, "shadows.0.sampling_percentage", create, "x", "ep", "A", [shadow(101)])
    assert client.list_experiments() == []

    client.create_experiment("one", "ep", "A", [shadow()])
    refused(409, "EndpointName", create, "two", "ep", "A", [shadow()])
    refused(409, "Name", create, "one", "ep", "A", [shadow()])
    client.start_experiment("one", wait=True)
    assert client.start_experiment("one").status == "Running"  # already started: as it is
    refused(409, "Name", client.delete_experiment, "one")
    refused(400, "ModelVariantActions", client.stop_experiment, "one", {"ghost": "Remove"})
    refused(400, "ModelVariantActions", client.stop_experiment, "one", {"A": "Remove"})
    refused(
        400,
        "ModelVariantActions",
        client.stop_experiment,
        "one",
        {"cand": "Promote", "A": "Retain"},
    )
    # The endpoint cannot be moved under a running experiment.
    client.create_endpoint_config("other", [{"name": "A", "model": "tree"}], [], {})
    assert "stop it first" in refused(409, "EndpointName", client.update_endpoint, "ep", "other")
    assert client.get_experiment("one").status == "Running"
    stopped = client.stop_experiment("one", desired_state="Cancelled", wait=True)
    assert stopped.status == "Cancelled"
    refused(409, "Name", client.stop_experiment, "one")
    client.delete_experiment("one")
    refused(404, "Name", client.get_experiment, "one")


def test_a_running_experiment_survives_a_restart_and_ends_with_its_endpoint(
    server: RunningServer, client: Client
) -> None:
    client.create_experiment("durable", "ep", "A", [shadow(100)])
    client.start_experiment("durable", wait=True)
    server.stop(signal.SIGKILL)
    again = RunningServer(server.home)
    try:
        with Client(again.url) as c:
            c.wait_for_endpoint("ep", 60)
            assert c.get_experiment("durable").status == "Running"
            assert [v.name for v in c.get_endpoint("ep").variants] == ["A", "cand"]
            replies = asyncio.run(send_many(again.url, "ep", digit_rows(40)))
            assert {r.status for r in replies} == {200}
            c.update_experiment("durable", sampling={"cand": 20})
            assert c.get_endpoint("ep").variants[1].sampling_percentage == 20
            c.delete_endpoint("ep")
            gone = c.get_experiment("durable")
            assert gone.status == "Cancelled" and gone.status_reason == "endpoint ep was deleted"
    finally:
        again.stop()


def _text(page: str) -> str:
    parts: list[str] = []

    class Collect(HTMLParser):
        def handle_data(self, data: str) -> None:
            parts.append(data)

    Collect().feed(page)
    return " ".join(parts)
