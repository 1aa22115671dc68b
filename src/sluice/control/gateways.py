"""Which gateway runs what: this gateway's runner id, and whether the runner recorded on
a job or a pipeline execution is gone (so its work may be taken up here).

A gateway alone on its database knows at once: every runner but itself is gone, except
a live process of this host. Gateways sharing a database each renew a presence lease,
`gateway/<runner>`, every third of the lease term; a runner whose presence lease ran out
(or was let go at a graceful stop) is gone, wherever its host.
"""

from __future__ import annotations

import asyncio
import logging
import socket

from sluice.processes import runner_id, runner_is_gone
from sluice.store.lease_repo import LeaseRepository
from sluice.store.tables import utcnow

log = logging.getLogger(__name__)

PRESENCE = "gateway/"


class Gateways:
    def __init__(
        self, leases: LeaseRepository | None, term_s: float, me: str | None = None
    ) -> None:
        """`leases`: the shared database's (None: this gateway is alone on its own)."""
        self.leases = leases
        self.term_s = term_s
        self.me = me or runner_id()
        self.task: asyncio.Task[None] | None = None

    def is_gone(self, runner: str) -> bool:
        """True when `runner` no longer runs, so what it ran may be taken up here."""
        if runner == self.me:
            return False
        if runner_is_gone(runner, self.me, alone=self.leases is None):
            return True
        if self.leases is None or runner.partition(":")[0] == socket.gethostname():
            return False  # a live process of this host
        lease = self.leases.get(PRESENCE + runner)
        return lease is None or lease.expires_at <= utcnow()

    async def start(self) -> None:
        """Say this gateway is alive, now and every third of the term (shared databases)."""
        if self.leases is None:
            return
        await asyncio.to_thread(self._renew)
        self.task = asyncio.create_task(self._run(), name="presence lease")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.term_s / 3)
            try:
                await asyncio.to_thread(self._renew)
            except Exception:  # noqa: BLE001 - the database may be back at the next beat
                log.exception("the presence lease could not be renewed")

    def _renew(self) -> None:
        assert self.leases is not None
        self.leases.take(PRESENCE + self.me, self.me, self.term_s)

    async def close(self) -> None:
        """Stop renewing and let go: what ran here is taken up at once elsewhere."""
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        if self.leases is not None:
            await asyncio.to_thread(self.leases.release, PRESENCE + self.me, self.me)
