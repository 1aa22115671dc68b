"""Copies of production requests to a shadow: a bounded queue; overflow is shed and counted."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from sluice.errors import ModelError, SluiceError
from sluice.gateway.capture import CaptureEvent, CaptureTarget, CaptureWriter
from sluice.gateway.fleet_stats import CLIENT_ERROR, MODEL_ERROR, OK, SERVER_ERROR, FleetStats
from sluice.gateway.instances import target_of
from sluice.gateway.metrics import VariantMetrics
from sluice.gateway.routing import VariantBackend
from sluice.types import InvokeRequest

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ShadowCopy:
    request: InvokeRequest
    inference_id: str
    capture: CaptureTarget | None


class ShadowSender:
    """Owns one shadow variant's queue and the tasks that drain it."""

    def __init__(
        self,
        endpoint: str,
        variant: str,
        backend: VariantBackend,
        metrics: VariantMetrics,
        capture: CaptureWriter,
        queue_size: int = 1000,
        concurrency: int = 16,
        stats: FleetStats | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.variant = variant
        self.backend = backend
        self.metrics = metrics
        self.capture = capture
        self.queue: asyncio.Queue[ShadowCopy] = asyncio.Queue(maxsize=queue_size)
        self.concurrency = concurrency
        self.tasks: list[asyncio.Task[None]] = []
        self.stats = stats or FleetStats()
        """What the shadow answered (its running totals, as a production fleet's)."""
        self.offered = 0
        self.shed = 0
        """Copies offered and copies shed (queue full) since this sender started."""

    def start(self) -> None:
        self.resize(self.concurrency)

    def resize(self, concurrency: int) -> None:
        """Send at most `concurrency` copies at once (the variant's instances changed).

        Surplus drain tasks leave once their current copy is sent; none is cancelled.
        """
        self.concurrency = concurrency
        self.tasks = [t for t in self.tasks if not t.done()]
        for _ in range(concurrency - len(self.tasks)):
            self.tasks.append(
                asyncio.create_task(self._drain(), name=f"shadow {self.endpoint}/{self.variant}")
            )

    def offer(
        self, request: InvokeRequest, inference_id: str, capture: CaptureTarget | None
    ) -> None:
        """Queue a copy, or shed it when the queue is full. Never blocks, never raises."""
        self.offered += 1
        if self.queue.full():  # checked first: raising QueueFull per shed copy costs more
            self.shed += 1
            self.metrics.shadow_shed.inc()
            return
        self.queue.put_nowait(ShadowCopy(request, inference_id, capture))

    async def _drain(self) -> None:
        while True:
            if len(self.tasks) > self.concurrency:
                this = asyncio.current_task()
                if this in self.tasks:
                    self.tasks.remove(this)
                    return
            copy = await self.queue.get()
            try:
                await self._send(copy)
            except Exception:  # noqa: BLE001 - a shadow must never stop draining
                log.exception("shadow copy to %s/%s failed", self.endpoint, self.variant)
            finally:
                self.queue.task_done()

    async def _send(self, copy: ShadowCopy) -> None:
        request = copy.request
        started = time.perf_counter()
        status, out_type, out_body, outcome = 200, "", b"", OK
        self.metrics.invocations.inc()
        try:
            target = target_of(request, self.endpoint, self.backend)
            answer = await self.backend.invoke(
                request.body, request.content_type, request.accept, target
            )
            out_type, out_body = answer.content_type, answer.body
            self.metrics.shadow_sent.inc()
        except SluiceError as exc:
            status, out_type, out_body = exc.status, "application/json", exc.message.encode()
            (self.metrics.errors_5xx if exc.server_side else self.metrics.errors_4xx).inc()
            self.metrics.shadow_failed.inc()
            outcome = SERVER_ERROR if exc.server_side else CLIENT_ERROR
            if isinstance(exc, ModelError):
                outcome = MODEL_ERROR
        elapsed = time.perf_counter() - started
        self.metrics.model_latency.observe(elapsed)
        self.stats.record(elapsed, None, outcome)
        if copy.capture is not None:
            self.capture.add(
                CaptureEvent(
                    copy.capture,
                    self.endpoint,
                    self.variant,
                    copy.inference_id,
                    time.time(),
                    request.content_type,
                    request.body,
                    out_type,
                    out_body,
                    elapsed * 1000,
                    status,
                    self.metrics,
                    request.target_model,
                )
            )

    async def stop(self, drain_timeout: float = 0.0) -> None:
        """Stop sending; first let queued copies go out for at most `drain_timeout` seconds."""
        if drain_timeout > 0 and self.tasks:
            try:
                await asyncio.wait_for(self.queue.join(), drain_timeout)
            except TimeoutError:
                log.warning(
                    "shadow %s/%s: %d queued copies dropped at stop",
                    self.endpoint,
                    self.variant,
                    self.queue.qsize(),
                )
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.tasks = []
