"""Webhook notifications: queued, sent by background tasks, retried with backoff.

`notify` never blocks and never raises, so a slow or broken receiver cannot hold up the
caller (an alarm transition, a rollback); deliveries are counted in the metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import httpx

log = logging.getLogger(__name__)


class Notifier:
    def __init__(
        self,
        attempts: int = 4,
        backoff_s: float = 0.5,
        timeout_s: float = 5.0,
        queue_size: int = 1000,
        senders: int = 4,
        on_outcome: Callable[[str], None] = lambda outcome: None,
    ) -> None:
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self.queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue(queue_size)
        self.senders = senders
        self.on_outcome = on_outcome
        self.tasks: list[asyncio.Task[None]] = []
        self.http: httpx.AsyncClient | None = None

    def start(self) -> None:
        self.http = httpx.AsyncClient(timeout=self.timeout_s)
        self.tasks = [
            asyncio.create_task(self._send_loop(), name="webhooks") for _ in range(self.senders)
        ]

    def notify(self, url: str, payload: dict[str, Any]) -> None:
        try:
            self.queue.put_nowait((url, payload))
        except asyncio.QueueFull:
            log.warning("webhook queue full: notification to %s dropped", url)
            self.on_outcome("dropped")

    async def _send_loop(self) -> None:
        while True:
            url, payload = await self.queue.get()
            try:
                await self._deliver(url, payload)
            finally:
                self.queue.task_done()

    async def _deliver(self, url: str, payload: dict[str, Any]) -> None:
        assert self.http is not None
        delay = self.backoff_s
        for attempt in range(1, self.attempts + 1):
            try:
                response = await self.http.post(url, json=payload)
                if response.status_code < 300:
                    self.on_outcome("delivered")
                    return
                problem = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            if attempt < self.attempts:
                log.info("webhook %s: attempt %d failed (%s); retrying", url, attempt, problem)
                await asyncio.sleep(delay)
                delay *= 2
        log.warning("webhook %s failed after %d attempts: %s", url, self.attempts, problem)
        self.on_outcome("failed")

    async def close(self, grace_s: float = 2.0) -> None:
        """Give queued notifications `grace_s` to go out, then stop."""
        if self.tasks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.queue.join(), grace_s)
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks = []
        if self.http is not None:
            await self.http.aclose()
