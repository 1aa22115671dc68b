"""The shadow sender's queue and concurrency, against a backend that counts sends in flight."""

from __future__ import annotations

import asyncio

from sluice.gateway.capture import CaptureWriter
from sluice.gateway.metrics import Metrics
from sluice.gateway.shadow import ShadowSender
from sluice.types import InvokeRequest
from sluice.workers.client import Answer


class CountingBackend:
    """Answers after a short pause and records the most sends it held at once."""

    takes = None

    def __init__(self) -> None:
        self.in_flight = 0
        self.peak = 0
        self.answered = 0

    async def invoke(
        self, body: bytes, content_type: str, accept: str, target: str | None = None
    ) -> Answer:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        await asyncio.sleep(0.01)
        self.in_flight -= 1
        self.answered += 1
        return Answer(b"[1]", "application/json")


async def _send(sender: ShadowSender, backend: CountingBackend, copies: int) -> int:
    backend.peak = 0
    for i in range(copies):
        sender.offer(InvokeRequest("ep", b"[[0]]"), f"id-{i}", None)
    await sender.queue.join()
    return backend.peak


async def test_resize_follows_the_instance_count_and_loses_no_copy() -> None:
    backend = CountingBackend()
    metrics = Metrics().for_variant("ep", "shadow")
    sender = ShadowSender("ep", "shadow", backend, metrics, CaptureWriter(), 1000, 2)  # type: ignore[arg-type]
    sender.start()
    try:
        assert await _send(sender, backend, 40) == 2
        sender.resize(6)
        assert await _send(sender, backend, 60) == 6
        sender.resize(1)
        await _send(sender, backend, 10)  # surplus senders leave after their copy
        assert await _send(sender, backend, 20) == 1
        assert len(sender.tasks) == 1
        assert backend.answered == 40 + 60 + 10 + 20
    finally:
        await sender.stop()
