"""Batch transform jobs. Every method is one transaction; names match regardless of case."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from sluice import entities as e
from sluice.errors import AlreadyExists, NotFound
from sluice.store.db import Database
from sluice.store.tables import TransformJobRow, utcnow


class TransformRepository:
    def __init__(self, database: Database) -> None:
        self.db = database

    def add(self, job: e.TransformJob) -> e.TransformJob:
        now = utcnow()
        row = TransformJobRow(
            name=job.name,
            model_name=job.model_name,
            status=job.status.value,
            spec=asdict(job.spec),
            details=job.details,
            created_at=now,
            updated_at=now,
            started_at=now,
        )
        try:
            with self.db.session() as session:
                if _named(session, job.name) is not None:
                    raise IntegrityError("", None, Exception("exists"))
                session.add(row)
                session.flush()
                return row.to_entity()
        except IntegrityError as exc:
            raise AlreadyExists(
                f"transform job {job.name!r} already exists", field="TransformJobName"
            ) from exc

    def get(self, name: str) -> e.TransformJob:
        with self.db.session() as session:
            row = _named(session, name)
            if row is None:
                raise NotFound(f"transform job {name!r} does not exist", field="TransformJobName")
            return row.to_entity()

    def list_all(self, status: e.TransformStatus | None = None) -> list[e.TransformJob]:
        with self.db.session() as session:
            query = select(TransformJobRow).order_by(TransformJobRow.created_at)
            if status is not None:
                query = query.where(TransformJobRow.status == status.value)
            return [row.to_entity() for row in session.scalars(query)]

    def set_status(
        self,
        name: str,
        status: e.TransformStatus,
        reason: str | None = None,
        when: datetime | None = None,
    ) -> e.TransformJob:
        """Move a job on; a finished job keeps its end (a late stop changes nothing)."""
        with self.db.session() as session:
            row = _named(session, name)
            if row is None:
                raise NotFound(f"transform job {name!r} does not exist", field="TransformJobName")
            if not e.TransformStatus(row.status).finished:
                now = when or utcnow()
                row.status = status.value
                row.updated_at = now
                if reason is not None:
                    row.failure_reason = reason
                if status.finished:
                    row.ended_at = now
            session.flush()
            return row.to_entity()

    def unfinished(self) -> list[e.TransformJob]:
        """Jobs a server must carry on with when it starts."""
        with self.db.session() as session:
            query = select(TransformJobRow).where(
                TransformJobRow.status.in_(
                    (e.TransformStatus.IN_PROGRESS.value, e.TransformStatus.STOPPING.value)
                )
            )
            return [row.to_entity() for row in session.scalars(query)]


def _named(session: Session, name: str) -> TransformJobRow | None:
    return session.scalars(
        select(TransformJobRow).where(func.lower(TransformJobRow.name) == name.lower())
    ).first()
