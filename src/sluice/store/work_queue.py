"""The durable work queue in the metadata store: async invocations and batch chunks.

Items are idempotent by (queue, key): enqueueing a key twice returns the first item.
A runner claims items with a lease (`claim`), renews it while it works (`renew`) and
finishes them (`finish`) or hands them back for a later try (`retry`). A runner that dies
stops renewing; once its lease lapses the item is claimed again (at-least-once), and its
late `finish` is refused (the lease owner no longer matches), so a result is written once.
On PostgreSQL the claim skips rows another runner holds locked (`FOR UPDATE SKIP LOCKED`);
SQLite runs one writer at a time, which gives the same guarantee.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, and_, bindparam, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from sluice import entities as e
from sluice.processes import runner_is_gone
from sluice.store.db import Database
from sluice.store.tables import WorkItemRow, utcnow, work_item

Q = e.WorkStatus.QUEUED.value
R = e.WorkStatus.RUNNING.value


@dataclass(frozen=True)
class NewItem:
    queue: str
    key: str
    payload: dict[str, Any]
    priority: int = 0
    expires_at: datetime | None = None


@dataclass(frozen=True)
class Outcome:
    item_id: int
    owner: str
    status: e.WorkStatus
    result: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None


ITEMS: Table = WorkItemRow.__table__  # type: ignore[assignment]
Key = tuple[str, str]
"""An item's (queue, key)."""


# The hot path's statements, built once (building an expression costs more than running it).
_DUE_ORDER = (ITEMS.c.priority.desc(), ITEMS.c.id)
_LAPSED = (
    select(ITEMS.c.id)
    .where(
        ITEMS.c.queue == bindparam("queue"),
        ITEMS.c.status == R,
        ITEMS.c.lease_expires_at < bindparam("now"),
    )
    .order_by(*_DUE_ORDER)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True)
)
_WAITING = (
    select(ITEMS.c.id)
    .where(
        ITEMS.c.queue == bindparam("queue"),
        ITEMS.c.status == Q,
        ITEMS.c.not_before <= bindparam("now"),
    )
    .order_by(*_DUE_ORDER)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True)
)
_TAKE = (
    update(ITEMS)
    .where(
        ITEMS.c.id.in_(bindparam("ids", expanding=True)),
        # Still due: another runner may have taken it between the two statements.
        or_(
            ITEMS.c.status == Q,
            and_(ITEMS.c.status == R, ITEMS.c.lease_expires_at < bindparam("now")),
        ),
    )
    .values(
        status=R,
        lease_owner=bindparam("owner"),
        lease_expires_at=bindparam("until"),
        attempts=ITEMS.c.attempts + 1,
        started_at=func.coalesce(ITEMS.c.started_at, bindparam("now")),
    )
    .returning(*ITEMS.c)
)
_FINISH = (
    update(ITEMS)
    .where(
        ITEMS.c.id == bindparam("item"),
        ITEMS.c.status == R,
        ITEMS.c.lease_owner == bindparam("owner"),
    )
    .values(
        status=bindparam("new_status"),
        result=bindparam("new_result", type_=ITEMS.c.result.type),
        failure_reason=bindparam("reason"),
        finished_at=bindparam("now"),
        lease_owner=None,
        lease_expires_at=None,
    )
)


@functools.cache
def _insert(dialect: str) -> Any:
    """INSERT of new items, skipping keys already queued, returning the rows it made."""
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    return (
        insert(ITEMS)
        .on_conflict_do_nothing(index_elements=["queue", "key"])
        .returning(ITEMS.c.id, ITEMS.c.queue, ITEMS.c.key)
    )


class WorkQueue:
    def __init__(self, database: Database) -> None:
        self.db = database
        dialect = database.engine.dialect
        self._sqlite = dialect.name == "sqlite"
        self._stored_time = ITEMS.c.created_at.type.dialect_impl(dialect).bind_processor(dialect)
        self._stored_json = ITEMS.c.payload.type.dialect_impl(dialect).bind_processor(dialect)
        """How the columns' types store a value (as SQLAlchemy itself would)."""

    def _insert_core(self, entries: Sequence[NewItem], now: datetime) -> dict[Key, int]:
        rows = [
            {
                "queue": entry.queue,
                "key": entry.key,
                "status": Q,
                "priority": entry.priority,
                "payload": entry.payload,
                "attempts": 0,
                "created_at": now,
                "not_before": now,
                "expires_at": entry.expires_at,
                "result": {},
            }
            for entry in entries
        ]
        with self.db.engine.begin() as connection:
            made = connection.execute(_insert(self.db.engine.dialect.name), rows)
            return {(row.queue, row.key): row.id for row in made}

    def _insert_sqlite(self, entries: Sequence[NewItem], now: datetime) -> dict[Key, int]:
        """The same INSERT as `_insert_core`, each value stored as its column's type stores
        it, sent straight to SQLite: on SQLite the Python around a statement costs more than
        the statement."""
        assert self._stored_time is not None and self._stored_json is not None
        stored_now = self._stored_time(now)
        empty = self._stored_json({})
        values: list[Any] = []
        for entry in entries:
            values += (
                entry.queue,
                entry.key,
                Q,
                entry.priority,
                self._stored_json(entry.payload),
                stored_now,
                stored_now,
                self._stored_time(entry.expires_at),
                empty,
            )
        rows = ", ".join(["(?, ?, ?, ?, ?, 0, ?, ?, ?, ?)"] * len(entries))
        statement = (
            "INSERT INTO work_items (queue, key, status, priority, payload, attempts, "
            f"created_at, not_before, expires_at, result) VALUES {rows} "
            "ON CONFLICT (queue, key) DO NOTHING RETURNING id, queue, key"
        )
        connection = self.db.engine.raw_connection()  # from the pool, set up as all are
        try:
            cursor = connection.cursor()
            try:
                made = {
                    (queue, key): item_id
                    for item_id, queue, key in cursor.execute(statement, values).fetchall()
                }
            finally:
                cursor.close()
            connection.commit()
        except BaseException:
            connection.rollback()
            raise
        finally:
            connection.close()  # back to the pool
        return made

    def enqueue(
        self,
        queue: str,
        key: str,
        payload: dict[str, Any],
        priority: int = 0,
        expires_at: datetime | None = None,
    ) -> tuple[e.WorkItem, bool]:
        """Add an item, or find the one already queued under `key`; True if new."""
        return self.enqueue_many([NewItem(queue, key, payload, priority, expires_at)])[0]

    def enqueue_many(self, entries: Sequence[NewItem]) -> list[tuple[e.WorkItem, bool]]:
        """`enqueue` for many items in one transaction (a group commit): for each, the item
        and whether it is new (a key already queued keeps its first item)."""
        if not entries:
            return []
        now = utcnow()
        # One statement for every row; the rows it made come back with their ids.
        if self._sqlite:
            made = self._insert_sqlite(entries, now)
        else:
            made = self._insert_core(entries, now)
        # Keys queued before: their first items (read only when there are some).
        found: dict[Key, e.WorkItem] = {}
        anew: dict[Key, tuple[e.WorkItem, bool]] = {}
        before = [entry for entry in entries if (entry.queue, entry.key) not in made]
        if before:
            with self.db.engine.connect() as connection:
                rows = connection.execute(
                    select(ITEMS).where(
                        ITEMS.c.key.in_({entry.key for entry in before}),
                        ITEMS.c.queue.in_({entry.queue for entry in before}),
                    )
                )
                found = {(row.queue, row.key): work_item(row) for row in rows}
            gone = [entry for entry in before if (entry.queue, entry.key) not in found]
            if gone:  # pruned (by another server) since the insert met it: queued anew
                for entry, done in zip(gone, self.enqueue_many(gone), strict=True):
                    anew.setdefault((entry.queue, entry.key), done)
        out: list[tuple[e.WorkItem, bool]] = []
        for entry in entries:
            name = (entry.queue, entry.key)
            if name in anew:
                out.append(anew.pop(name))
                found[name] = out[-1][0]
                continue
            if name in found:
                out.append((found[name], False))
                continue
            item = e.WorkItem(
                made[name],
                entry.queue,
                entry.key,
                e.WorkStatus.QUEUED,
                entry.priority,
                entry.payload,
                attempts=0,
                created_at=now,
                not_before=now,
                expires_at=entry.expires_at,
            )
            found[name] = item  # the same key again in this batch: this item, not new
            out.append((item, True))
        return out

    def get(self, queue: str, key: str) -> e.WorkItem | None:
        with self.db.session() as session:
            row = session.scalars(
                select(WorkItemRow).where(WorkItemRow.queue == queue, WorkItemRow.key == key)
            ).one_or_none()
            return row.to_entity() if row else None

    def claim(self, queue: str, owner: str, lease_s: float, limit: int = 1) -> list[e.WorkItem]:
        """Lease up to `limit` items that are due: running ones whose lease lapsed (their
        runner died) first, then queued ones (highest priority first, then oldest). Each
        claim counts as an attempt."""
        if limit <= 0:
            return []
        now = utcnow()
        with self.db.engine.begin() as connection:
            due = {"queue": queue, "now": now, "limit": limit}
            ids = list(connection.scalars(_LAPSED, due))
            if len(ids) < limit:
                ids += connection.scalars(_WAITING, {**due, "limit": limit - len(ids)})
            if not ids:
                return []
            rows = connection.execute(
                _TAKE,
                {
                    "ids": ids,
                    "now": now,
                    "owner": owner,
                    "until": now + timedelta(seconds=lease_s),
                },
            ).all()
            items = [work_item(row) for row in rows]
        return sorted(items, key=lambda item: (-item.priority, item.id))

    def renew(self, ids: Iterable[int], owner: str, lease_s: float) -> set[int]:
        """Extend the leases `owner` still holds; the ids it holds."""
        ids = list(ids)
        if not ids:
            return set()
        now = utcnow()
        with self.db.session() as session:
            held = session.scalars(
                update(WorkItemRow)
                .where(
                    WorkItemRow.id.in_(ids),
                    WorkItemRow.status == R,
                    WorkItemRow.lease_owner == owner,
                )
                .values(lease_expires_at=now + timedelta(seconds=lease_s))
                .returning(WorkItemRow.id),
                execution_options={"synchronize_session": False},
            ).all()
        return set(held)

    def finish(
        self,
        item_id: int,
        owner: str,
        status: e.WorkStatus,
        result: dict[str, Any] | None = None,
        reason: str | None = None,
    ) -> bool:
        """Record the outcome if `owner` still holds the lease (else another runner owns
        the item now and this outcome is dropped); True if recorded."""
        return self.finish_many([Outcome(item_id, owner, status, result or {}, reason)])[0]

    def finish_many(self, outcomes: Sequence[Outcome]) -> list[bool]:
        """`finish` for many items in one transaction (a group commit)."""
        if not outcomes:
            return []
        now = utcnow()
        rows = [
            {
                "item": outcome.item_id,
                "owner": outcome.owner,
                "new_status": outcome.status.value,
                "new_result": outcome.result,
                "reason": outcome.reason,
                "now": now,
            }
            for outcome in outcomes
        ]
        assert all(outcome.status.finished for outcome in outcomes)
        with self.db.engine.begin() as connection:
            if connection.execute(_FINISH, rows).rowcount == len(rows):
                return [True] * len(rows)  # the usual case: every lease was still held
            # Some lease had passed on: the items this call finished carry its timestamp.
            ids = [outcome.item_id for outcome in outcomes]
            mine = set(
                connection.scalars(
                    select(ITEMS.c.id).where(ITEMS.c.id.in_(ids), ITEMS.c.finished_at == now)
                )
            )
        done = [outcome.item_id in mine for outcome in outcomes]
        return done

    def retry(self, item_id: int, owner: str, delay_s: float, reason: str) -> bool:
        """Hand a leased item back, due again in `delay_s` (a retry with backoff)."""
        with self.db.session() as session:
            done = session.execute(
                update(WorkItemRow)
                .where(
                    WorkItemRow.id == item_id,
                    WorkItemRow.status == R,
                    WorkItemRow.lease_owner == owner,
                )
                .values(
                    status=Q,
                    not_before=utcnow() + timedelta(seconds=delay_s),
                    failure_reason=reason,
                    lease_owner=None,
                    lease_expires_at=None,
                ),
                execution_options={"synchronize_session": False},
            )
            return bool(done.rowcount)  # type: ignore[attr-defined]

    def cancel(self, queue: str, key: str) -> e.WorkItem | None:
        """Cancel an item that has not started; the item as it is now (None: unknown key).
        A running or finished item is left as it is."""
        with self.db.session() as session:
            session.execute(
                update(WorkItemRow)
                .where(WorkItemRow.queue == queue, WorkItemRow.key == key, WorkItemRow.status == Q)
                .values(status=e.WorkStatus.CANCELLED.value, finished_at=utcnow()),
                execution_options={"synchronize_session": False},
            )
        return self.get(queue, key)

    def position(self, item: e.WorkItem) -> int | None:
        """How many queued items of its queue will be claimed before `item` (None unless
        it is queued)."""
        if item.status is not e.WorkStatus.QUEUED:
            return None
        with self.db.session() as session:
            ahead = session.scalar(
                select(func.count()).where(
                    WorkItemRow.queue == item.queue,
                    WorkItemRow.status == Q,
                    or_(
                        WorkItemRow.priority > item.priority,
                        and_(WorkItemRow.priority == item.priority, WorkItemRow.id < item.id),
                    ),
                )
            )
        return int(ahead or 0)

    def backlog(self, queue: str) -> tuple[int, int, datetime | None]:
        """(queued, running, when the oldest queued item was accepted)."""
        with self.db.session() as session:
            counts = dict(
                session.execute(
                    select(WorkItemRow.status, func.count())
                    .where(WorkItemRow.queue == queue, WorkItemRow.status.in_((Q, R)))
                    .group_by(WorkItemRow.status)
                ).all()
            )
            oldest = session.scalar(
                select(func.min(WorkItemRow.created_at)).where(
                    WorkItemRow.queue == queue, WorkItemRow.status == Q
                )
            )
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=utcnow().tzinfo)
        return int(counts.get(Q, 0)), int(counts.get(R, 0)), oldest

    def items(self, queue: str) -> list[e.WorkItem]:
        """Every item of a queue, in the order they were enqueued."""
        with self.db.engine.connect() as connection:
            rows = connection.execute(
                select(ITEMS).where(ITEMS.c.queue == queue).order_by(ITEMS.c.id)
            ).all()
        return [work_item(row) for row in rows]

    def cancel_all(self, queue: str) -> int:
        """Cancel a queue's unfinished items, running ones included (their late outcomes
        are then refused); how many."""
        with self.db.engine.begin() as connection:
            done = connection.execute(
                update(ITEMS)
                .where(ITEMS.c.queue == queue, ITEMS.c.status.in_((Q, R)))
                .values(
                    status=e.WorkStatus.CANCELLED.value,
                    finished_at=utcnow(),
                    lease_owner=None,
                    lease_expires_at=None,
                )
            )
        return int(done.rowcount)

    def runners(self, queue_prefix: str) -> set[str]:
        """Who holds leases on running items of the queues under `queue_prefix`."""
        with self.db.engine.connect() as connection:
            return set(
                connection.scalars(
                    select(ITEMS.c.lease_owner)
                    .where(ITEMS.c.queue.startswith(queue_prefix), ITEMS.c.status == R)
                    .distinct()
                )
            )

    def lapse(self, queue_prefix: str, runners: Iterable[str]) -> int:
        """End the leases of runners known to be dead now: their items are claimed next,
        with no wait for the leases to run out. How many items."""
        runners = list(runners)
        if not runners:
            return 0
        with self.db.engine.begin() as connection:
            done = connection.execute(
                update(ITEMS)
                .where(
                    ITEMS.c.queue.startswith(queue_prefix),
                    ITEMS.c.status == R,
                    ITEMS.c.lease_owner.in_(runners),
                )
                .values(lease_expires_at=utcnow() - timedelta(seconds=1))
            )
        return int(done.rowcount)

    def take_back_from_the_gone(self, queue_prefix: str, me: str) -> int:
        """Lapse the leases of runners on this host whose process is gone (a killed
        server's): their items are due at once. How many items."""
        gone = [r for r in self.runners(queue_prefix) if runner_is_gone(r, me)]
        return self.lapse(queue_prefix, gone)

    def queues(self, prefix: str) -> list[str]:
        """Queues under `prefix` that hold unfinished items."""
        with self.db.session() as session:
            return list(
                session.scalars(
                    select(WorkItemRow.queue)
                    .where(WorkItemRow.queue.startswith(prefix), WorkItemRow.status.in_((Q, R)))
                    .distinct()
                )
            )

    def prune(self, queue_prefix: str, finished_before: datetime) -> int:
        """Delete finished items older than `finished_before`; how many."""
        with self.db.session() as session:
            done = session.execute(
                delete(WorkItemRow).where(
                    WorkItemRow.queue.startswith(queue_prefix),
                    WorkItemRow.status.not_in((Q, R)),
                    WorkItemRow.finished_at < finished_before,
                )
            )
            return int(done.rowcount)  # type: ignore[attr-defined]
