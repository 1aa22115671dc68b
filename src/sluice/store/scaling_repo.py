"""Autoscaling's records: scalable targets, scaling policies, scaling activities and
scheduled actions. Takes and returns entities."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TypeVar

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from sluice import entities as e
from sluice.errors import NotFound
from sluice.store.db import Database
from sluice.store.tables import (
    ScalableTargetRow,
    ScalingActivityRow,
    ScalingPolicyRow,
    ScheduledActionRow,
    utcnow,
)

ACTIVITIES_KEPT = 1000
"""Activities kept per variant (older ones are dropped as new ones are recorded)."""


class ScalingRepository:
    def __init__(self, database: Database) -> None:
        self.db = database

    # -- targets

    def put_target(self, target: e.ScalableTarget) -> e.ScalableTarget:
        with self.db.session() as session:
            row = session.get(ScalableTargetRow, (target.endpoint, target.variant))
            if row is None:
                row = ScalableTargetRow(
                    endpoint=target.endpoint, variant=target.variant, created_at=utcnow()
                )
                session.add(row)
            row.min_capacity, row.max_capacity = target.min_capacity, target.max_capacity
            row.role_arn, row.suspended = target.role_arn, sorted(target.suspended)
            session.flush()
            return row.to_entity()

    def target(self, endpoint: str, variant: str) -> e.ScalableTarget | None:
        with self.db.session() as session:
            row = session.get(ScalableTargetRow, (endpoint, variant))
            return row.to_entity() if row is not None else None

    def targets(self, endpoint: str | None = None) -> list[e.ScalableTarget]:
        with self.db.session() as session:
            stmt = select(ScalableTargetRow).order_by(
                ScalableTargetRow.endpoint, ScalableTargetRow.variant
            )
            if endpoint is not None:
                stmt = stmt.where(ScalableTargetRow.endpoint == endpoint)
            return [r.to_entity() for r in session.scalars(stmt)]

    def delete_target(self, endpoint: str, variant: str) -> None:
        """The target and its policies and scheduled actions (its activities stay)."""
        with self.db.session() as session:
            row = session.get(ScalableTargetRow, (endpoint, variant))
            if row is None:
                raise NotFound(f"no scalable target for endpoint/{endpoint}/variant/{variant}")
            for table in (ScalingPolicyRow, ScheduledActionRow):
                session.execute(
                    delete(table).where(table.endpoint == endpoint, table.variant == variant)
                )
            session.delete(row)

    # -- policies

    def put_policy(self, policy: e.ScalingPolicy) -> e.ScalingPolicy:
        """Create the policy, or replace the configuration of the one of that name (which
        keeps its ARN)."""
        with self.db.session() as session:
            row = _named_row(session, ScalingPolicyRow, policy)
            row.policy_type, row.configuration = policy.policy_type, policy.configuration
            session.flush()
            return row.to_entity()

    def policies(
        self, endpoint: str | None = None, variant: str | None = None
    ) -> list[e.ScalingPolicy]:
        with self.db.session() as session:
            return [r.to_entity() for r in _listed(session, ScalingPolicyRow, endpoint, variant)]

    def policy(self, arn: str) -> e.ScalingPolicy | None:
        with self.db.session() as session:
            row = session.get(ScalingPolicyRow, arn)
            return row.to_entity() if row is not None else None

    def delete_policy(self, endpoint: str, variant: str, name: str) -> None:
        with self.db.session() as session:
            done = session.execute(
                delete(ScalingPolicyRow).where(
                    ScalingPolicyRow.endpoint == endpoint,
                    ScalingPolicyRow.variant == variant,
                    ScalingPolicyRow.name == name,
                )
            )
            if not done.rowcount:  # type: ignore[attr-defined]
                raise NotFound(
                    f"no scaling policy {name!r} on endpoint/{endpoint}/variant/{variant}"
                )

    # -- activities

    def add_activity(self, activity: e.ScalingActivity) -> e.ScalingActivity:
        with self.db.session() as session:
            session.add(
                ScalingActivityRow(
                    id=activity.id,
                    endpoint=activity.endpoint,
                    variant=activity.variant,
                    description=activity.description,
                    cause=activity.cause,
                    status=activity.status,
                    started_at=activity.started_at,
                    ended_at=activity.ended_at,
                    message=activity.message,
                    details=activity.details,
                )
            )
            old = session.scalars(
                select(ScalingActivityRow.id)
                .where(
                    ScalingActivityRow.endpoint == activity.endpoint,
                    ScalingActivityRow.variant == activity.variant,
                )
                .order_by(ScalingActivityRow.started_at.desc())
                .offset(ACTIVITIES_KEPT)
            ).all()
            if old:
                session.execute(delete(ScalingActivityRow).where(ScalingActivityRow.id.in_(old)))
        return activity

    def end_activity(self, activity_id: str, status: str, message: str = "") -> None:
        with self.db.session() as session:
            row = session.get(ScalingActivityRow, activity_id)
            if row is not None:
                row.status, row.message, row.ended_at = status, message, utcnow()

    def activities(
        self, endpoint: str | None = None, variant: str | None = None, limit: int = 1000
    ) -> list[e.ScalingActivity]:
        """Newest first."""
        with self.db.session() as session:
            stmt = (
                select(ScalingActivityRow)
                .order_by(ScalingActivityRow.started_at.desc())
                .limit(limit)
            )
            if endpoint is not None:
                stmt = stmt.where(ScalingActivityRow.endpoint == endpoint)
            if variant is not None:
                stmt = stmt.where(ScalingActivityRow.variant == variant)
            return [r.to_entity() for r in session.scalars(stmt)]

    def fail_unfinished(self, message: str) -> int:
        """Activities a stopped server left Pending or InProgress end as Failed."""
        with self.db.session() as session:
            rows = session.scalars(
                select(ScalingActivityRow).where(
                    ScalingActivityRow.status.in_(("Pending", "InProgress"))
                )
            ).all()
            for row in rows:
                row.status, row.message, row.ended_at = "Failed", message, utcnow()
            return len(rows)

    # -- scheduled actions

    def put_scheduled(self, action: e.ScheduledAction) -> e.ScheduledAction:
        with self.db.session() as session:
            row = _named_row(session, ScheduledActionRow, action)
            row.schedule, row.timezone = action.schedule, action.timezone
            row.start_time, row.end_time = action.start_time, action.end_time
            row.min_capacity, row.max_capacity = action.min_capacity, action.max_capacity
            row.last_run_at = None
            session.flush()
            return row.to_entity()

    def scheduled(
        self, endpoint: str | None = None, variant: str | None = None
    ) -> list[e.ScheduledAction]:
        with self.db.session() as session:
            return [r.to_entity() for r in _listed(session, ScheduledActionRow, endpoint, variant)]

    def ran_scheduled(self, arn: str, at: datetime) -> None:
        with self.db.session() as session:
            row = session.get(ScheduledActionRow, arn)
            if row is not None:
                row.last_run_at = at

    def delete_scheduled(self, endpoint: str, variant: str, names: Sequence[str]) -> None:
        with self.db.session() as session:
            done = session.execute(
                delete(ScheduledActionRow).where(
                    ScheduledActionRow.endpoint == endpoint,
                    ScheduledActionRow.variant == variant,
                    ScheduledActionRow.name.in_(list(names)),
                )
            )
            if not done.rowcount:  # type: ignore[attr-defined]
                raise NotFound(
                    f"no scheduled action {', '.join(names)} on "
                    f"endpoint/{endpoint}/variant/{variant}"
                )


Named = TypeVar("Named", ScalingPolicyRow, ScheduledActionRow)
"""Rows named per variant, with an ARN: policies and scheduled actions."""


def _named_row(
    session: Session, table: type[Named], item: e.ScalingPolicy | e.ScheduledAction
) -> Named:
    """The stored row of `item`'s name on its variant, or a new one with `item`'s ARN."""
    row = session.scalars(
        select(table).where(
            table.endpoint == item.endpoint, table.variant == item.variant, table.name == item.name
        )
    ).first()
    if row is None:
        row = table(
            arn=item.arn,
            name=item.name,
            endpoint=item.endpoint,
            variant=item.variant,
            created_at=utcnow(),
        )
        session.add(row)
    return row


def _listed(
    session: Session, table: type[Named], endpoint: str | None, variant: str | None
) -> Sequence[Named]:
    """The rows of an endpoint (and variant) or of all, oldest first."""
    stmt = select(table).order_by(table.created_at)
    if endpoint is not None:
        stmt = stmt.where(table.endpoint == endpoint)
    if variant is not None:
        stmt = stmt.where(table.variant == variant)
    return session.scalars(stmt).all()
