"""Monitoring job definitions, schedules and executions. Every method is one transaction.

`claim` is what keeps runs single: it records a schedule's due runs and advances its
`last_scheduled_at` together, and the (schedule, scheduled time) pair is unique, so a run
is claimed once however many schedulers ask (a second claim of the same time fails whole).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import asdict
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from sluice import entities as e
from sluice.errors import AlreadyExists, InvalidState, NotFound
from sluice.store.db import Database
from sluice.store.tables import (
    MonitoringExecutionRow,
    MonitoringJobDefinitionRow,
    MonitoringScheduleRow,
    aware,
    utcnow,
)
from sluice.store.tag_repo import drop_tags

Row = TypeVar("Row", MonitoringJobDefinitionRow, MonitoringScheduleRow)


def job_dict(job: e.MonitoringJob) -> dict[str, Any]:
    return {**asdict(job), "kind": job.kind.value}


class MonitoringRepository:
    def __init__(self, database: Database) -> None:
        self.db = database

    # -- job definitions

    def add_definition(self, definition: e.MonitoringJobDefinition) -> e.MonitoringJobDefinition:
        row = MonitoringJobDefinitionRow(
            name=definition.name,
            kind=definition.kind.value,
            job=job_dict(definition.job),
            request=definition.request,
            created_at=utcnow(),
        )
        try:
            with self.db.session() as session:
                if _named(session, MonitoringJobDefinitionRow, definition.name) is not None:
                    raise IntegrityError("", None, Exception("exists"))
                session.add(row)
        except IntegrityError as exc:
            raise AlreadyExists(
                f"job definition {definition.name!r} already exists", field="JobDefinitionName"
            ) from exc
        return self.get_definition(definition.name)

    def get_definition(self, name: str) -> e.MonitoringJobDefinition:
        with self.db.session() as session:
            row = _named(session, MonitoringJobDefinitionRow, name)
            if row is None:
                raise NotFound(f"job definition {name!r} does not exist", field="JobDefinitionName")
            return row.to_entity()

    def find_definitions(self, kind: e.MonitoringType) -> list[e.MonitoringJobDefinition]:
        stmt = (
            select(MonitoringJobDefinitionRow)
            .where(MonitoringJobDefinitionRow.kind == kind.value)
            .order_by(MonitoringJobDefinitionRow.created_at)
        )
        with self.db.session() as session:
            return [row.to_entity() for row in session.scalars(stmt)]

    def delete_definition(self, name: str) -> None:
        with self.db.session() as session:
            row = _named(session, MonitoringJobDefinitionRow, name)
            if row is None:
                raise NotFound(f"job definition {name!r} does not exist", field="JobDefinitionName")
            users = session.scalars(
                select(MonitoringScheduleRow.name).where(
                    func.lower(MonitoringScheduleRow.job_definition) == name.lower()
                )
            ).all()
            if users:
                raise InvalidState(
                    f"job definition {name!r} is used by schedule {users[0]!r}",
                    field="JobDefinitionName",
                )
            kind = (
                e.ResourceKind.DATA_QUALITY_JOB_DEFINITION
                if row.kind == e.MonitoringType.DATA_QUALITY.value
                else e.ResourceKind.MODEL_QUALITY_JOB_DEFINITION
            )
            drop_tags(session, kind, row.name)
            session.delete(row)

    # -- schedules

    def add(self, schedule: e.MonitoringSchedule) -> e.MonitoringSchedule:
        now = utcnow()
        row = MonitoringScheduleRow(
            name=schedule.name,
            expression=schedule.expression,
            job=job_dict(schedule.job),
            endpoint_name=schedule.job.endpoint,
            status=schedule.status.value,
            missed_runs=schedule.missed_runs,
            job_definition=schedule.job_definition,
            webhook_url=schedule.webhook_url,
            alert_state=schedule.alert_state,
            last_scheduled_at=schedule.last_scheduled_at,
            details=schedule.details,
            created_at=now,
            updated_at=now,
        )
        try:
            with self.db.session() as session:
                if _named(session, MonitoringScheduleRow, schedule.name) is not None:
                    raise IntegrityError("", None, Exception("exists"))
                session.add(row)
        except IntegrityError as exc:
            raise AlreadyExists(
                f"monitoring schedule {schedule.name!r} already exists",
                field="MonitoringScheduleName",
            ) from exc
        return self.get(schedule.name)

    def get(self, name: str) -> e.MonitoringSchedule:
        with self.db.session() as session:
            return self._row(session, name).to_entity()

    def find(
        self,
        endpoint: str | None = None,
        status: e.ScheduleStatus | None = None,
    ) -> list[e.MonitoringSchedule]:
        stmt = select(MonitoringScheduleRow).order_by(MonitoringScheduleRow.created_at)
        if endpoint is not None:
            stmt = stmt.where(MonitoringScheduleRow.endpoint_name == endpoint)
        if status is not None:
            stmt = stmt.where(MonitoringScheduleRow.status == status.value)
        with self.db.session() as session:
            return [row.to_entity() for row in session.scalars(stmt)]

    def update(self, name: str, **changes: Any) -> e.MonitoringSchedule:
        with self.db.session() as session:
            row = self._row(session, name)
            for key, value in changes.items():
                setattr(row, key, value.value if isinstance(value, StrEnum) else value)
            row.updated_at = utcnow()
            return row.to_entity()

    def delete(self, name: str) -> None:
        with self.db.session() as session:
            row = self._row(session, name)
            drop_tags(session, e.ResourceKind.MONITORING_SCHEDULE, row.name)
            session.delete(row)

    def _row(self, session: Session, name: str) -> MonitoringScheduleRow:
        row = _named(session, MonitoringScheduleRow, name)
        if row is None:
            raise NotFound(
                f"monitoring schedule {name!r} does not exist", field="MonitoringScheduleName"
            )
        return row

    # -- executions

    def claim(
        self, schedule: e.MonitoringSchedule, times: Sequence[datetime], advance: bool = True
    ) -> list[e.MonitoringExecution]:
        """Record runs at `times` (Pending) and, with `advance`, move the schedule's last
        scheduled time to the latest of them, in one transaction. Returns [] when another
        claim got there first (any of the times is taken, or the schedule moved on)."""
        if not times:
            return []
        now = utcnow()
        try:
            with self.db.session() as session:
                row = self._row(session, schedule.name)
                stored = aware(row.last_scheduled_at) if row.last_scheduled_at else None
                if advance and stored != schedule.last_scheduled_at:
                    return []  # another scheduler claimed since `schedule` was read
                rows = [
                    MonitoringExecutionRow(
                        schedule_name=row.name,
                        scheduled_at=at,
                        status=e.ExecutionStatus.PENDING.value,
                        kind=schedule.job.kind.value,
                        endpoint_name=schedule.job.endpoint,
                        counts={},
                        summary={},
                        created_at=now,
                        updated_at=now,
                    )
                    for at in times
                ]
                session.add_all(rows)
                latest = max(times)
                if advance and (stored is None or latest > stored):
                    row.last_scheduled_at = latest
                row.updated_at = now
                session.flush()
                return [r.to_entity() for r in rows]
        except IntegrityError:
            return []

    def execution(self, execution_id: int) -> e.MonitoringExecution:
        with self.db.session() as session:
            row = session.get(MonitoringExecutionRow, execution_id)
            if row is None:
                raise NotFound(f"monitoring execution {execution_id} does not exist", field="id")
            return row.to_entity()

    def executions(
        self,
        schedule: str | None = None,
        statuses: Collection[e.ExecutionStatus] | None = None,
        endpoint: str | None = None,
        limit: int | None = None,
        newest_first: bool = True,
    ) -> list[e.MonitoringExecution]:
        order = MonitoringExecutionRow.scheduled_at
        stmt = select(MonitoringExecutionRow).order_by(
            order.desc() if newest_first else order, MonitoringExecutionRow.id
        )
        if schedule is not None:
            stmt = stmt.where(func.lower(MonitoringExecutionRow.schedule_name) == schedule.lower())
        if endpoint is not None:
            stmt = stmt.where(MonitoringExecutionRow.endpoint_name == endpoint)
        if statuses is not None:
            stmt = stmt.where(MonitoringExecutionRow.status.in_([s.value for s in statuses]))
        if limit is not None:
            stmt = stmt.limit(limit)
        with self.db.session() as session:
            return [row.to_entity() for row in session.scalars(stmt)]

    def update_execution(self, execution_id: int, **changes: Any) -> e.MonitoringExecution:
        with self.db.session() as session:
            row = session.get(MonitoringExecutionRow, execution_id)
            if row is None:
                raise NotFound(f"monitoring execution {execution_id} does not exist", field="id")
            for key, value in changes.items():
                setattr(row, key, value.value if isinstance(value, StrEnum) else value)
            row.updated_at = utcnow()
            return row.to_entity()


def _named(session: Session, table: type[Row], name: str) -> Row | None:
    """The row whose name matches regardless of case (names are unique that way)."""
    column = table.name
    return session.scalars(select(table).where(func.lower(column) == name.lower())).first()
