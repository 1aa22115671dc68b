"""Alarms with their transition history; deployments with their steps and events.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _when(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "alarms",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("metric", sa.String(255), nullable=False),
        sa.Column("statistic", sa.String(32), nullable=False),
        sa.Column("comparison", sa.String(64), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("period_s", sa.Integer(), nullable=False),
        sa.Column("evaluation_periods", sa.Integer(), nullable=False),
        sa.Column("datapoints_to_alarm", sa.Integer(), nullable=False),
        sa.Column("endpoint", sa.String(63), nullable=True, index=True),
        sa.Column("variant", sa.String(63), nullable=True),
        sa.Column("treat_missing_data", sa.String(32), nullable=False),
        sa.Column("webhook_url", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("state_reason", sa.Text(), nullable=False),
        _when("state_updated_at"),
        _when("created_at"),
    )
    op.create_table(
        "alarm_history",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "alarm_name",
            sa.String(255),
            sa.ForeignKey("alarms.name", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        _when("at"),
        sa.Column("old_state", sa.String(32), nullable=False),
        sa.Column("new_state", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("deployment_id", sa.Integer(), nullable=True, index=True),
    )
    op.create_table(
        "deployments",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "endpoint_name",
            sa.String(63),
            sa.ForeignKey("endpoints.name", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("from_config", sa.String(63), nullable=False),
        sa.Column("to_config", sa.String(63), nullable=False),
        sa.Column("policy", sa.JSON(), nullable=False),
        sa.Column("plan", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(32), nullable=False, index=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("step_index", sa.Integer(), nullable=False),
        _when("created_at"),
        _when("updated_at"),
        _when("finished_at", nullable=True),
    )
    op.create_table(
        "deployment_steps",
        sa.Column(
            "deployment_id",
            sa.Integer(),
            sa.ForeignKey("deployments.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("index", sa.Integer(), primary_key=True),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("green_shares", sa.JSON(), nullable=False),
        sa.Column("bake_s", sa.Float(), nullable=False),
        _when("started_at"),
        _when("ended_at", nullable=True),
        sa.Column("decision", sa.String(32), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("fleets", sa.JSON(), nullable=False),
        sa.Column("alarms", sa.JSON(), nullable=False),
        sa.Column("checks", sa.JSON(), nullable=False),
    )
    op.create_table(
        "deployment_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "deployment_id",
            sa.Integer(),
            sa.ForeignKey("deployments.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        _when("at"),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
    )


def downgrade() -> None:
    for table in (
        "deployment_events",
        "deployment_steps",
        "deployments",
        "alarm_history",
        "alarms",
    ):
        op.drop_table(table)
