"""Deployments, their steps and events; the endpoint's switch to a new config at the end."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from sluice import entities as e
from sluice.errors import InvalidState, NotFound
from sluice.store.db import Database
from sluice.store.repos import variant_row
from sluice.store.serving_history import close_periods, open_periods
from sluice.store.tables import (
    DeploymentEventRow,
    DeploymentRow,
    DeploymentStepRow,
    EndpointRow,
    utcnow,
)

ACTIVE = [s.value for s in e.DeploymentState if not s.finished]


class DeploymentRepository:
    def __init__(self, database: Database) -> None:
        self.db = database

    def start(
        self,
        endpoint: str,
        to_config: str,
        policy: Mapping[str, Any],
        plan: list[dict[str, Any]],
    ) -> e.Deployment:
        """Record a new deployment and mark the endpoint Updating, unless one is running."""
        now = utcnow()
        with self.db.session() as session:
            row = session.get(EndpointRow, endpoint)
            if row is None:
                raise NotFound(f"endpoint {endpoint!r} does not exist", field="EndpointName")
            running = session.scalars(
                select(DeploymentRow.id).where(
                    DeploymentRow.endpoint_name == endpoint, DeploymentRow.state.in_(ACTIVE)
                )
            ).first()
            if running is not None:
                raise InvalidState(
                    f"endpoint {endpoint!r} is already being updated (deployment {running}); "
                    "wait for it to finish or cancel it",
                    field="EndpointName",
                )
            if row.status != e.EndpointStatus.IN_SERVICE.value:
                raise InvalidState(
                    f"endpoint {endpoint!r} is {row.status}, not InService", field="EndpointName"
                )
            deployment = DeploymentRow(
                endpoint_name=endpoint,
                from_config=row.config_name,
                to_config=to_config,
                policy=dict(policy),
                plan=plan,
                state=e.DeploymentState.PROVISIONING.value,
                step_index=-1,
                created_at=now,
                updated_at=now,
            )
            session.add(deployment)
            row.status = e.EndpointStatus.UPDATING.value
            row.failure_reason = None
            row.updated_at = now
            for v in row.variants:
                v.status = "Updating"
            session.flush()
            deployment.events.append(
                _event(now, "state", f"update from {row.config_name} to {to_config} started")
            )
            # The new config serves (some) traffic from now until the deployment ends.
            open_periods(session, endpoint, to_config, now, deployment.id)
            session.flush()
            return deployment.to_entity()

    def get(self, deployment_id: int) -> e.Deployment:
        with self.db.session() as session:
            return self._row(session, deployment_id).to_entity()

    def find(self, endpoint: str | None = None, details: bool = False) -> list[e.Deployment]:
        with self.db.session() as session:
            stmt = select(DeploymentRow).order_by(DeploymentRow.id.desc())
            if endpoint is not None:
                stmt = stmt.where(DeploymentRow.endpoint_name == endpoint)
            return [r.to_entity(details) for r in session.scalars(stmt)]

    def active(self, endpoint: str | None = None) -> list[e.Deployment]:
        with self.db.session() as session:
            stmt = select(DeploymentRow).where(DeploymentRow.state.in_(ACTIVE))
            if endpoint is not None:
                stmt = stmt.where(DeploymentRow.endpoint_name == endpoint)
            return [r.to_entity() for r in session.scalars(stmt.order_by(DeploymentRow.id))]

    def set_state(
        self,
        deployment_id: int,
        state: e.DeploymentState,
        message: str | None,
        reason: str | None = None,
        step_index: int | None = None,
        variant_status: str | None = None,
    ) -> e.Deployment:
        """Move to `state` (with an event unless `message` is None); optionally the step and
        the variants' status."""
        now = utcnow()
        with self.db.session() as session:
            row = self._row(session, deployment_id)
            row.state, row.updated_at = state.value, now
            if reason is not None:
                row.reason = reason
            if step_index is not None:
                row.step_index = step_index
            if message is not None:
                row.events.append(_event(now, "state", message, {"state": state.value}))
            if variant_status is not None:
                endpoint = session.get(EndpointRow, row.endpoint_name)
                for v in endpoint.variants if endpoint else ():
                    v.status = variant_status
            return row.to_entity()

    def event(
        self, deployment_id: int, kind: str, message: str, data: Mapping[str, Any] | None = None
    ) -> None:
        with self.db.session() as session:
            row = self._row(session, deployment_id)
            row.events.append(_event(utcnow(), kind, message, data))

    def begin_step(
        self, deployment_id: int, index: int, label: str, shares: Mapping[str, float], bake_s: float
    ) -> datetime:
        now = utcnow()
        with self.db.session() as session:
            row = self._row(session, deployment_id)
            row.steps = [s for s in row.steps if s.index != index]
            row.steps.append(
                DeploymentStepRow(
                    index=index,
                    label=label,
                    green_shares=dict(shares),
                    bake_s=bake_s,
                    started_at=now,
                    fleets={},
                    alarms={},
                    checks=[],
                )
            )
            row.step_index, row.updated_at = index, now
            row.events.append(
                _event(now, "shift", f"step {index + 1}: {label}", {"green_shares": dict(shares)})
            )
        return now

    def end_step(
        self,
        deployment_id: int,
        index: int,
        decision: str,
        reason: str,
        fleets: Mapping[str, Any],
        alarms: Mapping[str, str],
        checks: Iterable[Mapping[str, Any]],
    ) -> None:
        now = utcnow()
        with self.db.session() as session:
            step = session.get(DeploymentStepRow, (deployment_id, index))
            if step is None:
                return
            step.ended_at, step.decision, step.reason = now, decision, reason
            step.fleets, step.alarms = dict(fleets), dict(alarms)
            step.checks = [dict(c) for c in checks]

    def finish(
        self,
        deployment_id: int,
        state: e.DeploymentState,
        reason: str | None,
        endpoint_status: e.EndpointStatus,
        new_variants: Iterable[e.EndpointVariant] | None = None,
    ) -> e.Endpoint:
        """End the deployment and settle its endpoint in one transaction.

        With `new_variants` the endpoint now runs the new config (completed); without, it
        is back on the old one, with `reason` as its failure reason.
        """
        now = utcnow()
        with self.db.session() as session:
            row = self._row(session, deployment_id)
            row.state, row.reason, row.updated_at, row.finished_at = state.value, reason, now, now
            row.events.append(_event(now, "state", reason or state.value, {"state": state.value}))
            endpoint = session.get(EndpointRow, row.endpoint_name)
            if endpoint is None:
                raise NotFound(f"endpoint {row.endpoint_name!r} does not exist")
            endpoint.status, endpoint.updated_at = endpoint_status.value, now
            if new_variants is not None:
                close_periods(session, endpoint.name, now, except_config=row.to_config)
            else:
                close_periods(session, endpoint.name, now, deployment=row.id)
            if new_variants is not None:
                endpoint.config_name = row.to_config
                endpoint.failure_reason = None
                endpoint.variants = [variant_row(i, v) for i, v in enumerate(new_variants)]
                endpoint.sticky_layout = None
                endpoint.version += 1
            else:
                endpoint.failure_reason = reason
            session.flush()
            for v in endpoint.variants:
                if endpoint_status is e.EndpointStatus.IN_SERVICE:
                    v.current_weight = v.desired_weight
                    v.current_instance_count = v.desired_instance_count
                    v.status = "InService"
            return endpoint.to_entity()

    def reopen(self, deployment_id: int, message: str) -> e.Deployment:
        """A failed rollback runs again: the deployment is RollingBack, its endpoint Updating."""
        now = utcnow()
        with self.db.session() as session:
            row = self._row(session, deployment_id)
            row.state, row.updated_at, row.finished_at = (
                e.DeploymentState.ROLLING_BACK.value,
                now,
                None,
            )
            row.events.append(_event(now, "state", message, {"state": row.state}))
            endpoint = session.get(EndpointRow, row.endpoint_name)
            if endpoint is not None:
                endpoint.status, endpoint.updated_at = e.EndpointStatus.UPDATING.value, now
            return row.to_entity()

    @staticmethod
    def _row(session: Session, deployment_id: int) -> DeploymentRow:
        row = session.get(DeploymentRow, deployment_id)
        if row is None:
            raise NotFound(f"deployment {deployment_id} does not exist", field="DeploymentId")
        return row


def _event(
    at: datetime, kind: str, message: str, data: Mapping[str, Any] | None = None
) -> DeploymentEventRow:
    return DeploymentEventRow(at=at, kind=kind, message=message, data=dict(data or {}))
