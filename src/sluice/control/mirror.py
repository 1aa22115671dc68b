"""Several gateways, one database: each serves every endpoint with instances of its own,
and follows what the others change.

`Mirror` reads the endpoints' records every `interval_s` (a quarter of a second by
default: a change reaches every gateway well within a second) and hands each endpoint
whose routing changed (status, config, weights, instance counts, sampling) to
`EndpointService.mirror`, which starts, swaps, scales, republishes or stops its fleet on
this gateway without writing to the database. Reading the small endpoints table is the
whole cost: no notification channel to keep open, the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Hashable

from sluice.control.endpoints import EndpointService
from sluice.entities import Endpoint

log = logging.getLogger(__name__)


def routing_of(endpoint: Endpoint) -> Hashable:
    """What a gateway serves an endpoint by: a change to any of it is mirrored."""
    return (
        endpoint.status,
        endpoint.config_name,
        tuple(
            (v.name, v.current_weight, v.desired_instance_count, v.sampling_percentage)
            for v in endpoint.variants
        ),
    )


class Mirror:
    def __init__(self, service: EndpointService, interval_s: float = 0.25) -> None:
        self.service = service
        self.interval_s = interval_s
        self.seen: dict[str, Hashable] = {}
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name="mirror endpoints")

    async def _run(self) -> None:
        while True:
            try:
                await self.once()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the next round tries again
                log.exception("reading the endpoints of the other gateways failed")
            await asyncio.sleep(self.interval_s)

    async def once(self) -> None:
        """Mirror every endpoint whose routing changed since the last round."""
        endpoints = {e.name: e for e in await asyncio.to_thread(self.service.repo.list_endpoints)}
        for name in set(self.seen) - set(endpoints):
            del self.seen[name]
            await self.service.mirror(name, None)
        for name, endpoint in endpoints.items():
            routing = routing_of(endpoint)
            if self.seen.get(name) == routing:
                continue
            await self.service.mirror(name, endpoint)
            if name not in self.service.tasks:  # else: looked at again once it is done
                self.seen[name] = routing

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
