"""The async dispatcher's rules, with a real queue (SQLite) and object store and a
scripted backend standing in for the worker: expiry and retries by cause."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from sluice.control.async_inference import AsyncInference, AsyncRequest
from sluice.entities import AsyncConfig, WorkStatus
from sluice.errors import ModelError, ValidationError
from sluice.gateway.metrics import Metrics
from sluice.gateway.routing import Router, RouteTable, VariantRoute
from sluice.settings import Settings
from sluice.store.db import open_database
from sluice.store.objects import ObjectStore
from sluice.store.tables import WorkItemRow, utcnow
from sluice.store.work_queue import WorkQueue
from sluice.workers.client import WorkerDied, WorkerLost
from sluice.workers.file_request import INPUT_FIELD, FileRequest

TOPIC = "arn:aws:sns:us-east-1:000000000000:events"


class Scripted:
    """A variant's instances that fail as scripted, then answer by upper-casing the input."""

    instance_count = 1

    def __init__(self, failures: list[Exception]) -> None:
        self.failures = failures
        self.calls = 0

    async def invoke(self, body: bytes, content_type: str, accept: str) -> Any:
        raise AssertionError("async requests never take the real-time path")

    async def invoke_file(self, request: FileRequest, timeout: float) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        source, output = Path(request.input), Path(request.output)
        if not source.is_file():  # as a worker reports it
            raise ValidationError("the input does not exist", field=INPUT_FIELD)
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_bytes(source.read_bytes().upper())
        return "text/plain"


class Harness:
    def __init__(self, home: Path, backend: Scripted, **changes: Any) -> None:
        self.home = home
        settings = Settings(
            **{
                "home": home,
                "async_retry_backoff_s": 0.01,
                "async_poll_s": 0.02,
                "sns_topics": {TOPIC: "https://hooks.example.com/sns"},
                **changes,
            }
        )
        self.queue = WorkQueue(open_database(settings.resolved_database_url))
        router = Router()
        router.publish(
            RouteTable(
                "ep",
                (VariantRoute("A", backend, 1.0, Metrics().for_variant("ep", "A")),),
                asynchronous=AsyncConfig(
                    "s3://bucket/out", "s3://bucket/failed", success_topic=TOPIC, error_topic=TOPIC
                ),
            )
        )
        self.sent: list[dict[str, Any]] = []
        self.delivery = "delivered"
        """What every notification's delivery comes to."""
        self.transfers: list[tuple[str, str, str, float | None]] = []

        def notify(url: str, payload: dict[str, Any], done: Callable[[str], None]) -> None:
            self.sent.append(payload)
            done(self.delivery)

        self.objects = ObjectStore(home / "s3")
        self.service = AsyncInference(
            self.queue,
            router,
            self.objects,
            notify,
            lambda url, field: None,
            settings,
            on_transfer=lambda *event: self.transfers.append(event),
        )
        source = home / "s3" / "bucket" / "in.txt"
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_text("hello")

    async def submit(self, inference_id: str) -> Any:
        return await self.service.submit(
            AsyncRequest("ep", "s3://bucket/in.txt", inference_id=inference_id)
        )

    async def finished(self, inference_id: str) -> Any:
        for _ in range(500):
            item, _ = self.service.status("ep", inference_id)
            if item.status.finished:
                return item
            await asyncio.sleep(0.01)
        raise AssertionError(f"{inference_id} did not finish")


@pytest.fixture
async def run(tmp_path: Path) -> AsyncIterator[Any]:
    harnesses: list[Harness] = []

    def start(backend: Scripted, **changes: Any) -> Harness:
        harness = Harness(tmp_path / f"home{len(harnesses)}", backend, **changes)
        harness.service.start()
        harnesses.append(harness)
        return harness

    yield start
    for harness in harnesses:
        await harness.service.close()
        harness.queue.db.close()


async def test_retryable_failures_are_retried_then_succeed(run: Any) -> None:
    backend = Scripted([WorkerLost("restarting"), WorkerDied("exited", original_status=500)])
    h = run(backend)
    accepted = await h.submit("r1")
    item = await h.finished("r1")
    assert item.status is WorkStatus.SUCCEEDED and item.attempts == 3 and backend.calls == 3
    assert (h.home / "s3" / accepted.output_location.removeprefix("s3://")).read_text() == "HELLO"


async def test_requests_reaching_an_empty_queue_are_dispatched_together(run: Any) -> None:
    h = run(Scripted([]), async_poll_s=30.0, async_gather_s=0.3)
    claims: list[int] = []
    claim = h.queue.claim

    def counted(*args: Any) -> Any:
        found = claim(*args)
        claims.append(len(found))
        return found

    h.queue.claim = counted
    await h.submit("alone")
    assert (await h.finished("alone")).status is WorkStatus.SUCCEEDED  # the queue is empty now
    claims.clear()
    await asyncio.gather(*(h.submit(f"together-{i}") for i in range(5)))
    for i in range(5):
        assert (await h.finished(f"together-{i}")).status is WorkStatus.SUCCEEDED
    assert [c for c in claims if c] == [5]  # one claim took them all


async def test_a_model_error_fails_at_once_and_repeated_deaths_give_up(run: Any) -> None:
    failures: list[Exception] = [ModelError("bad input", original_status=400)]
    backend = Scripted(failures + [WorkerDied("x")] * 3)
    h = run(backend)
    first = await h.submit("model-error")
    item = await h.finished("model-error")
    assert item.status is WorkStatus.FAILED and item.attempts == 1
    failure = h.home / "s3" / first.failure_location.removeprefix("s3://")
    assert 'Received server error (400) from the model with message "bad input"' in (
        failure.read_text()
    )
    await h.submit("dies")
    item = await h.finished("dies")
    assert item.status is WorkStatus.FAILED and item.attempts == 3
    assert "gave up after 3 attempts" in (item.failure_reason or "")
    assert backend.calls == 4
    for _ in range(200):  # the notification follows the commit of the outcome
        if len(h.sent) == 2:
            break
        await asyncio.sleep(0.01)
    statuses = [m["Message"] for m in h.sent]
    assert len(statuses) == 2 and all('"invocationStatus": "Failed"' in m for m in statuses)


async def test_a_request_past_its_ttl_expires_without_running(run: Any) -> None:
    backend = Scripted([])
    h = run(backend)
    await h.service.close()  # nothing claims while the request ages
    accepted = await h.submit("late")
    with h.queue.db.session() as session:
        row = session.get(WorkItemRow, accepted.item.id)
        assert row is not None
        row.expires_at = utcnow() - timedelta(seconds=1)
    h.service.start()
    item = await h.finished("late")
    assert item.status is WorkStatus.EXPIRED and backend.calls == 0
    failure = h.home / "s3" / accepted.failure_location.removeprefix("s3://")
    assert "RequestTTLSeconds" in failure.read_text()


async def test_transfer_failures_are_counted_by_kind_and_a_refused_upload_is_retried(
    run: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = run(Scripted([]))
    h.delivery = "failed"
    missing = await h.service.submit(
        AsyncRequest("ep", "s3://bucket/nothing.txt", inference_id="m")
    )
    assert (await h.finished("m")).status is WorkStatus.FAILED
    assert ("ep", "A", "download", None) in h.transfers
    for _ in range(200):  # the notification follows the commit of the outcome
        if ("ep", "A", "notification", None) in h.transfers:
            break
        await asyncio.sleep(0.01)
    assert ("ep", "A", "notification", None) in h.transfers  # the error notification failed
    assert missing.failure_location
    # With an S3 store, an answer S3 refuses is tried again, and counted.
    uploads: list[str] = []

    def upload(path: Path, key: str) -> None:
        uploads.append(key)
        if len(uploads) == 1:
            raise OSError("connection reset")

    monkeypatch.setattr(h.objects, "remote", lambda uri, field="": uri.removeprefix("s3://"))
    monkeypatch.setattr(h.objects, "fetch", lambda uri, field="": h.objects.named(uri, field))
    monkeypatch.setattr(h.objects, "upload", upload)
    h.delivery = "delivered"
    await h.submit("u")
    item = await h.finished("u")
    assert item.status is WorkStatus.SUCCEEDED and item.attempts == 2
    assert len(uploads) == 2
    kinds = [(kind, seconds is None) for _, _, kind, seconds in h.transfers]
    assert ("upload", True) in kinds and ("upload", False) in kinds and ("download", False) in kinds
