"""Whether the gateway that ran a job or an execution is gone: alone on a database, any
runner but a live process of this host; sharing one, a runner whose presence lease ran
out or was let go, on whatever host."""

from __future__ import annotations

import asyncio
import socket
import time

from sluice.control.gateways import Gateways
from sluice.store.db import Database
from sluice.store.lease_repo import LeaseRepository


def test_alone_every_runner_but_a_live_local_process_is_gone() -> None:
    here = Gateways(None, 1.0)
    assert here.is_gone("old-container:7:abcd1234")  # this server before, under another name
    assert not here.is_gone(f"{socket.gethostname()}:1:abcd1234")  # a live process here
    assert not here.is_gone(here.me)


def test_sharing_a_runner_elsewhere_is_gone_once_its_presence_lease_is(
    database: Database,
) -> None:
    leases = LeaseRepository(database)
    here = Gateways(leases, 0.3)
    there = Gateways(leases, 0.3, me="another-host:7:abcd1234")
    assert here.is_gone(there.me)  # never said it was alive

    async def main() -> None:
        await there.start()
        assert not here.is_gone(there.me)
        await asyncio.sleep(0.5)  # renewed meanwhile
        assert not here.is_gone(there.me)
        await there.close()  # a graceful stop lets go at once
        assert here.is_gone(there.me)

    asyncio.run(main())
    leases.take("gateway/another-host:8:abcd1234", "another-host:8:abcd1234", 0.2)
    assert not here.is_gone("another-host:8:abcd1234")
    time.sleep(0.3)  # it stopped renewing (killed): its term runs out
    assert here.is_gone("another-host:8:abcd1234")
    # A live process of this host is not gone, whatever its presence lease says.
    assert not here.is_gone(f"{socket.gethostname()}:1:abcd1234")
