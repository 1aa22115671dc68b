"""Alarms and their transition history. Takes and returns entities."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from sluice import entities as e
from sluice.errors import NotFound
from sluice.store.db import Database
from sluice.store.tables import AlarmHistoryRow, AlarmRow, utcnow

DEFINITION = (
    "metric",
    "statistic",
    "comparison",
    "threshold",
    "period_s",
    "evaluation_periods",
    "datapoints_to_alarm",
    "endpoint",
    "variant",
    "treat_missing_data",
    "webhook_url",
    "description",
    "actions",
    "actions_enabled",
    "namespace",
    "dimensions",
)


class AlarmRepository:
    def __init__(self, database: Database) -> None:
        self.db = database

    def put(self, alarm: e.Alarm) -> tuple[e.Alarm, bool]:
        """Create the alarm, or replace its definition (its state starts over); True if new."""
        now = utcnow()
        with self.db.session() as session:
            row = session.get(AlarmRow, alarm.name)
            created = row is None
            if row is None:
                row = AlarmRow(name=alarm.name, created_at=now)
                session.add(row)
            for name in DEFINITION:
                value = getattr(alarm, name)
                if isinstance(value, tuple):  # JSON columns: lists
                    value = [list(v) if isinstance(v, tuple) else v for v in value]
                setattr(row, name, value)
            row.state = e.AlarmState.INSUFFICIENT_DATA.value
            row.state_reason = "not evaluated yet"
            row.state_updated_at = now
            session.flush()
            return row.to_entity(), created

    def get(self, name: str) -> e.Alarm:
        with self.db.session() as session:
            return self._row(session, name).to_entity()

    def find(self, endpoint: str | None = None) -> list[e.Alarm]:
        with self.db.session() as session:
            stmt = select(AlarmRow).order_by(AlarmRow.name)
            if endpoint is not None:
                stmt = stmt.where(AlarmRow.endpoint == endpoint)
            return [r.to_entity() for r in session.scalars(stmt)]

    def delete(self, name: str) -> None:
        with self.db.session() as session:
            session.delete(self._row(session, name))

    def transition(
        self,
        alarm: e.Alarm,
        state: e.AlarmState,
        reason: str,
        scope: str,
        deployment_id: int | None,
        at: datetime,
    ) -> tuple[e.Alarm, e.AlarmTransition]:
        """Record a change of state and its history entry in one transaction."""
        with self.db.session() as session:
            row = self._row(session, alarm.name)
            old = e.AlarmState(row.state)
            row.state, row.state_reason, row.state_updated_at = state.value, reason, at
            history = AlarmHistoryRow(
                alarm_name=alarm.name,
                at=at,
                old_state=old.value,
                new_state=state.value,
                reason=reason,
                scope=scope,
                deployment_id=deployment_id,
            )
            session.add(history)
            session.flush()
            return row.to_entity(), history.to_entity()

    def set_state(self, name: str, state: e.AlarmState, reason: str) -> e.Alarm:
        """Set the state without a history entry (an evaluation scope starting over)."""
        with self.db.session() as session:
            row = self._row(session, name)
            row.state, row.state_reason, row.state_updated_at = state.value, reason, utcnow()
            return row.to_entity()

    def set_actions_enabled(self, name: str, enabled: bool) -> e.Alarm:
        with self.db.session() as session:
            row = self._row(session, name)
            row.actions_enabled = enabled
            return row.to_entity()

    def history(
        self,
        name: str | None = None,
        deployment_id: int | None = None,
        limit: int = 100,
    ) -> list[e.AlarmTransition]:
        with self.db.session() as session:
            stmt = select(AlarmHistoryRow).order_by(AlarmHistoryRow.id.desc()).limit(limit)
            if name is not None:
                self._row(session, name)
                stmt = stmt.where(AlarmHistoryRow.alarm_name == name)
            if deployment_id is not None:
                stmt = stmt.where(AlarmHistoryRow.deployment_id == deployment_id)
            return [r.to_entity() for r in session.scalars(stmt)]

    @staticmethod
    def _row(session: Session, name: str) -> AlarmRow:
        row = session.get(AlarmRow, name)
        if row is None:
            raise NotFound(f"alarm {name!r} does not exist", field="AlarmName")
        return row
