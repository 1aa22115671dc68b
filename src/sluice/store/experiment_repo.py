"""Inference experiments. Takes and returns entities; every method is one transaction."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import asdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from sluice import entities as e
from sluice.errors import AlreadyExists, NotFound
from sluice.store.db import Database
from sluice.store.tables import ExperimentRow, utcnow
from sluice.store.tag_repo import drop_tags


class ExperimentRepository:
    def __init__(self, database: Database) -> None:
        self.db = database

    def add(self, experiment: e.Experiment, event: str) -> e.Experiment:
        now = utcnow()
        row = ExperimentRow(
            name=experiment.name,
            endpoint_name=experiment.endpoint,
            source_variant=experiment.source_variant,
            variants=[asdict(v) for v in experiment.variants],
            shadows=[asdict(s) for s in experiment.shadows],
            start=experiment.start,
            end=experiment.end,
            status=experiment.status.value,
            status_reason=experiment.status_reason,
            description=experiment.description,
            destination=experiment.destination,
            data_storage=dict(experiment.data_storage),
            role_arn=experiment.role_arn,
            kms_key=experiment.kms_key,
            stop={},
            events=[_event(event)],
            created_at=now,
            updated_at=now,
        )
        try:
            with self.db.session() as session:
                session.add(row)
        except IntegrityError as exc:
            raise AlreadyExists(
                f"inference experiment {experiment.name!r} already exists", field="Name"
            ) from exc
        return self.get(experiment.name)

    def get(self, name: str) -> e.Experiment:
        with self.db.session() as session:
            return self._row(session, name).to_entity()

    def exists(self, name: str) -> bool:
        with self.db.session() as session:
            return session.get(ExperimentRow, name) is not None

    def find(
        self,
        endpoint: str | None = None,
        statuses: Collection[e.ExperimentStatus] | None = None,
    ) -> list[e.Experiment]:
        stmt = select(ExperimentRow).order_by(ExperimentRow.created_at)
        if endpoint is not None:
            stmt = stmt.where(ExperimentRow.endpoint_name == endpoint)
        if statuses is not None:
            stmt = stmt.where(ExperimentRow.status.in_([s.value for s in statuses]))
        with self.db.session() as session:
            return [row.to_entity() for row in session.scalars(stmt)]

    def update(self, name: str, event: str | None = None, **changes: Any) -> e.Experiment:
        """Set the given fields (entity names and values) and append `event` to the timeline."""
        with self.db.session() as session:
            row = self._row(session, name)
            for key, value in changes.items():
                if key == "status":
                    value = value.value
                elif key == "variants":
                    value = [asdict(v) for v in value]
                elif key == "shadows":
                    value = [asdict(s) for s in value]
                elif key == "endpoint":
                    key = "endpoint_name"
                setattr(row, key, value)
            if event:
                row.events = [*(row.events or []), _event(event)]
            row.updated_at = utcnow()
            return row.to_entity()

    def delete(self, name: str) -> None:
        with self.db.session() as session:
            session.delete(self._row(session, name))
            drop_tags(session, e.ResourceKind.INFERENCE_EXPERIMENT, name)

    def _row(self, session: Session, name: str) -> ExperimentRow:
        row = session.get(ExperimentRow, name)
        if row is None:
            raise NotFound(f"inference experiment {name!r} does not exist", field="Name")
        return row


def _event(message: str) -> dict[str, str]:
    return {"at": utcnow().isoformat(), "message": message}
