"""The controller lease: of several gateways sharing one database, the one holding it runs
what must run once (the autoscaler, alarms, schedules, experiments, batch transform
recovery, guarded updates and adopting those a gateway that died left behind).

Every gateway tries to take the lease every third of its term; the holder renews it in
the same beat. When the holder dies, its term runs out and another gateway takes it and
starts the singletons; a gateway that finds its lease taken by another (its renewals
failed for a whole term) stops its singletons and goes on serving.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from sluice.store.lease_repo import LeaseRepository

log = logging.getLogger(__name__)

CONTROLLER = "controller"


class Leadership:
    def __init__(
        self,
        repo: LeaseRepository,
        holder: str,
        term_s: float,
        on_gained: Callable[[], Awaitable[None]],
        on_lost: Callable[[], Awaitable[None]],
        name: str = CONTROLLER,
    ) -> None:
        self.repo = repo
        self.holder = holder
        self.term_s = term_s
        self.on_gained = on_gained
        self.on_lost = on_lost
        self.name = name
        self.held = False
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Try once now (a lone gateway leads from its first moment), then keep trying."""
        await self._beat()
        self.task = asyncio.create_task(self._run(), name=f"lease {self.name}")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.term_s / 3)
            try:
                await self._beat()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the database may be back at the next beat
                log.exception("the %s lease could not be renewed", self.name)

    async def _beat(self) -> None:
        held = await asyncio.to_thread(self.repo.take, self.name, self.holder, self.term_s)
        if held and not self.held:
            self.held = True
            log.info("this gateway holds the %s lease", self.name)
            await self.on_gained()
        elif not held and self.held:
            self.held = False
            log.warning("the %s lease passed to another gateway", self.name)
            await self.on_lost()

    async def close(self) -> None:
        """Stop renewing and let go, so another gateway takes over at once."""
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        if self.held:
            self.held = False
            await asyncio.to_thread(self.repo.release, self.name, self.holder)
