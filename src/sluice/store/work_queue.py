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

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from sluice import entities as e
from sluice.store.db import Database
from sluice.store.tables import WorkItemRow, utcnow

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


class WorkQueue:
    def __init__(self, database: Database) -> None:
        self.db = database

    def enqueue(
        self,
        queue: str,
        key: str,
        payload: dict[str, Any],
        priority: int = 0,
        expires_at: datetime | None = None,
    ) -> tuple[e.WorkItem, bool]:
        """Add an item, or find the one already queued under `key`; True if new."""
        now = utcnow()
        row = WorkItemRow(
            queue=queue,
            key=key,
            status=Q,
            priority=priority,
            payload=payload,
            attempts=0,
            created_at=now,
            not_before=now,
            expires_at=expires_at,
            result={},
        )
        try:
            with self.db.session() as session:
                session.add(row)
                session.flush()
                return row.to_entity(), True
        except IntegrityError:
            existing = self.get(queue, key)
            if existing is None:  # deleted in between: try once more
                return self.enqueue(queue, key, payload, priority, expires_at)
            return existing, False

    def enqueue_many(self, entries: Sequence[NewItem]) -> list[tuple[e.WorkItem, bool]]:
        """`enqueue` for many items in one transaction (a group commit): for each, the item
        and whether it is new (a key already queued keeps its first item)."""
        if not entries:
            return []
        now = utcnow()
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
        insert = postgresql_insert if self.db.engine.dialect.name == "postgresql" else sqlite_insert
        with self.db.session() as session:
            created = {
                (row.queue, row.key)
                for row in session.execute(
                    insert(WorkItemRow)
                    .values(rows)
                    .on_conflict_do_nothing(index_elements=["queue", "key"])
                    .returning(WorkItemRow.queue, WorkItemRow.key)
                )
            }
            keys = {entry.key for entry in entries}
            queues = {entry.queue for entry in entries}
            found = {
                (row.queue, row.key): row.to_entity()
                for row in session.scalars(
                    select(WorkItemRow).where(
                        WorkItemRow.key.in_(keys), WorkItemRow.queue.in_(queues)
                    )
                )
            }
        out: list[tuple[e.WorkItem, bool]] = []
        seen: set[tuple[str, str]] = set()
        for entry in entries:
            name = (entry.queue, entry.key)
            out.append((found[name], name in created and name not in seen))
            seen.add(name)
        return out

    def get(self, queue: str, key: str) -> e.WorkItem | None:
        with self.db.session() as session:
            row = session.scalars(
                select(WorkItemRow).where(WorkItemRow.queue == queue, WorkItemRow.key == key)
            ).one_or_none()
            return row.to_entity() if row else None

    def claim(self, queue: str, owner: str, lease_s: float, limit: int = 1) -> list[e.WorkItem]:
        """Lease up to `limit` items that are due: queued ones (highest priority first,
        then oldest) and running ones whose lease lapsed (their runner died). Each claim
        counts as an attempt."""
        if limit <= 0:
            return []
        now = utcnow()
        due = (
            select(WorkItemRow.id)
            .where(
                WorkItemRow.queue == queue,
                or_(
                    and_(WorkItemRow.status == Q, WorkItemRow.not_before <= now),
                    and_(WorkItemRow.status == R, WorkItemRow.lease_expires_at < now),
                ),
            )
            .order_by(WorkItemRow.priority.desc(), WorkItemRow.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        with self.db.session() as session:
            ids = list(session.scalars(due))
            if not ids:
                return []
            rows = session.scalars(
                update(WorkItemRow)
                .where(
                    WorkItemRow.id.in_(ids),
                    # Still due: another runner may have taken it between the two statements.
                    or_(
                        WorkItemRow.status == Q,
                        and_(WorkItemRow.status == R, WorkItemRow.lease_expires_at < now),
                    ),
                )
                .values(
                    status=R,
                    lease_owner=owner,
                    lease_expires_at=now + timedelta(seconds=lease_s),
                    attempts=WorkItemRow.attempts + 1,
                    started_at=func.coalesce(WorkItemRow.started_at, now),
                )
                .returning(WorkItemRow),
                execution_options={"synchronize_session": False},
            ).all()
            items = [row.to_entity() for row in rows]
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
        assert status.finished
        with self.db.session() as session:
            done = session.execute(
                update(WorkItemRow)
                .where(
                    WorkItemRow.id == item_id,
                    WorkItemRow.status == R,
                    WorkItemRow.lease_owner == owner,
                )
                .values(
                    status=status.value,
                    result=result or {},
                    failure_reason=reason,
                    finished_at=utcnow(),
                    lease_owner=None,
                    lease_expires_at=None,
                ),
                execution_options={"synchronize_session": False},
            )
            return bool(done.rowcount)  # type: ignore[attr-defined]

    def finish_many(self, outcomes: Sequence[Outcome]) -> list[bool]:
        """`finish` for many items in one transaction (a group commit)."""
        done: list[bool] = []
        now = utcnow()
        with self.db.session() as session:
            for outcome in outcomes:
                assert outcome.status.finished
                result = session.execute(
                    update(WorkItemRow)
                    .where(
                        WorkItemRow.id == outcome.item_id,
                        WorkItemRow.status == R,
                        WorkItemRow.lease_owner == outcome.owner,
                    )
                    .values(
                        status=outcome.status.value,
                        result=outcome.result,
                        failure_reason=outcome.reason,
                        finished_at=now,
                        lease_owner=None,
                        lease_expires_at=None,
                    ),
                    execution_options={"synchronize_session": False},
                )
                done.append(bool(result.rowcount))  # type: ignore[attr-defined]
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
