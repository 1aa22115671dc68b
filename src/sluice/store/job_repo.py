"""Processing and training jobs. Every method is one transaction; names match regardless
of case."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from sluice import entities as e
from sluice.errors import AlreadyExists, NotFound
from sluice.store.db import Database
from sluice.store.tables import JobRow, utcnow

_UNSET: Any = object()


def label(kind: e.JobKind) -> str:
    return f"{kind.value} job"


def name_field(kind: e.JobKind) -> str:
    return "ProcessingJobName" if kind is e.JobKind.PROCESSING else "TrainingJobName"


class JobRepository:
    def __init__(self, database: Database) -> None:
        self.db = database

    def add(self, job: e.Job) -> e.Job:
        now = utcnow()
        row = JobRow(
            kind=job.kind.value,
            name=job.name,
            status=job.status.value,
            secondary_status=job.secondary_status,
            request=job.request,
            details=job.details,
            created_at=now,
            updated_at=now,
        )
        try:
            with self.db.session() as session:
                if _named(session, job.kind, job.name) is not None:
                    raise IntegrityError("", None, Exception("exists"))
                session.add(row)
                session.flush()
                return row.to_entity()
        except IntegrityError as exc:
            raise AlreadyExists(
                f"{label(job.kind)} {job.name!r} already exists", field=name_field(job.kind)
            ) from exc

    def get(self, kind: e.JobKind, name: str) -> e.Job:
        with self.db.session() as session:
            return _existing(session, kind, name).to_entity()

    def list_all(
        self, kind: e.JobKind, status: e.JobStatus | None = None, name_contains: str = ""
    ) -> list[e.Job]:
        with self.db.session() as session:
            query = select(JobRow).where(JobRow.kind == kind.value).order_by(JobRow.created_at)
            if status is not None:
                query = query.where(JobRow.status == status.value)
            if name_contains:
                query = query.where(func.lower(JobRow.name).contains(name_contains.lower()))
            return [row.to_entity() for row in session.scalars(query)]

    def update(
        self,
        kind: e.JobKind,
        name: str,
        *,
        status: e.JobStatus | None = None,
        secondary: str | None = None,
        reason: str | None = _UNSET,
        details: dict[str, Any] | None = None,
        started: bool = False,
        when: datetime | None = None,
    ) -> e.Job:
        """Move a job on and merge `details` into what it holds. A finished job keeps its
        status and end (a late stop changes nothing), but may still learn details."""
        with self.db.session() as session:
            row = _existing(session, kind, name)
            now = when or utcnow()
            finished = e.JobStatus(row.status).finished
            if status is not None and not finished:
                row.status = status.value
                if status.finished:
                    row.ended_at = now
                elif status is e.JobStatus.IN_PROGRESS:
                    row.ended_at = None
            if secondary is not None and not finished:
                row.secondary_status = secondary
            if reason is not _UNSET and not finished:
                row.failure_reason = reason
            if started:
                row.started_at = now
            if details:
                row.details = {**(row.details or {}), **details}
            row.updated_at = now
            session.flush()
            return row.to_entity()

    def unfinished(self) -> list[e.Job]:
        """Jobs a server must carry on with when it starts."""
        with self.db.session() as session:
            query = select(JobRow).where(
                JobRow.status.in_((e.JobStatus.IN_PROGRESS.value, e.JobStatus.STOPPING.value))
            )
            return [row.to_entity() for row in session.scalars(query)]


def _named(session: Session, kind: e.JobKind, name: str) -> JobRow | None:
    return session.scalars(
        select(JobRow).where(JobRow.kind == kind.value, func.lower(JobRow.name) == name.lower())
    ).first()


def _existing(session: Session, kind: e.JobKind, name: str) -> JobRow:
    row = _named(session, kind, name)
    if row is None:
        raise NotFound(
            f"{label(kind)} {name!r} does not exist",
            field=name_field(kind),
            resource=(kind.value, name),
        )
    return row
