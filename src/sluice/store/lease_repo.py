"""Leases in the shared database: a named right to drive something (the singletons, one
deployment), held by one gateway until it lets go or stops renewing it.

A lease is taken or renewed in one transaction that locks its row (SELECT ... FOR UPDATE
on PostgreSQL; SQLite serialises writers), so two gateways never both hold it. Times are
the gateways' clocks: keep them in step (NTP), within a small part of a lease's term.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from sluice.store.db import Database
from sluice.store.tables import LeaseRow, aware, utcnow


@dataclass(frozen=True)
class Lease:
    name: str
    holder: str
    expires_at: datetime
    taken_at: datetime


class LeaseRepository:
    def __init__(self, database: Database) -> None:
        self.db = database

    def take(self, name: str, holder: str, term_s: float) -> bool:
        """Take the lease, or renew it if `holder` has it, for `term_s` from now; False
        (nothing changed) while another holder's term runs."""
        now = utcnow()
        until = now + timedelta(seconds=term_s)
        try:
            with self.db.session() as session:
                row = session.get(LeaseRow, name, with_for_update=True)
                if row is None:
                    session.add(LeaseRow(name=name, holder=holder, expires_at=until, taken_at=now))
                    return True
                if row.holder != holder and aware(row.expires_at) > now:
                    return False
                if row.holder != holder:
                    row.holder, row.taken_at = holder, now
                row.expires_at = until
                return True
        except IntegrityError:
            return False  # another gateway inserted it first

    def release(self, name: str, holder: str) -> None:
        """Let go of the lease if `holder` has it (another may take it at once)."""
        with self.db.session() as session:
            session.execute(
                delete(LeaseRow).where(LeaseRow.name == name, LeaseRow.holder == holder)
            )

    def get(self, name: str) -> Lease | None:
        with self.db.session() as session:
            row = session.get(LeaseRow, name)
            return None if row is None else _lease(row)

    def expired(self, prefix: str) -> list[Lease]:
        """The leases named `prefix...` whose term has run out (their holder is gone)."""
        now = utcnow()
        with self.db.session() as session:
            rows = session.scalars(select(LeaseRow).where(LeaseRow.name.startswith(prefix)))
            return [_lease(r) for r in rows if aware(r.expires_at) <= now]


def _lease(row: LeaseRow) -> Lease:
    return Lease(row.name, row.holder, aware(row.expires_at), aware(row.taken_at))
