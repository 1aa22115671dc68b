"""Leases on SQLite and on a real PostgreSQL: one holder at a time, renewal, expiry,
release, and many gateways racing for one lease."""

from __future__ import annotations

import threading
import time

from sluice.store.db import Database
from sluice.store.lease_repo import LeaseRepository


def test_one_holder_at_a_time_until_its_term_runs_out(database: Database) -> None:
    leases = LeaseRepository(database)
    assert leases.take("controller", "a", 0.5)
    assert not leases.take("controller", "b", 0.5)
    assert leases.take("controller", "a", 0.5)  # renewed by its holder
    taken = leases.get("controller")
    assert taken is not None and taken.holder == "a"
    time.sleep(0.6)
    assert [lease.name for lease in leases.expired("contr")] == ["controller"]
    assert leases.take("controller", "b", 30)
    now = leases.get("controller")
    assert now is not None and now.holder == "b" and now.taken_at > taken.taken_at
    leases.release("controller", "a")  # not a's to release: nothing changes
    assert not leases.take("controller", "a", 30)
    leases.release("controller", "b")
    assert leases.take("controller", "a", 30)


def test_of_many_gateways_racing_for_a_free_lease_exactly_one_wins(database: Database) -> None:
    leases = LeaseRepository(database)
    start = threading.Barrier(8)
    won: list[str] = []

    def race(holder: str) -> None:
        start.wait()
        if leases.take("deployment:digits", holder, 30):
            won.append(holder)

    threads = [threading.Thread(target=race, args=(f"g{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1
    lease = leases.get("deployment:digits")
    assert lease is not None and lease.holder == won[0]
