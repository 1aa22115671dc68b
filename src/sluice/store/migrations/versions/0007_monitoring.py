"""Model monitoring: job definitions, schedules and their executions (one per schedule
and scheduled time, so no run is ever doubled).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def _json(name: str, default: str = "{}") -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.JSON(), nullable=False, server_default=default)


def _time(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "monitoring_job_definitions",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        _json("job"),
        _json("request"),
        _time("created_at"),
    )
    op.create_table(
        "monitoring_schedules",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("expression", sa.String(256), nullable=False),
        _json("job"),
        sa.Column("endpoint_name", sa.String(63), nullable=False, index=True),
        sa.Column("status", sa.String(32), nullable=False, index=True),
        sa.Column("missed_runs", sa.String(16), nullable=False),
        sa.Column("job_definition", sa.String(63), nullable=True, index=True),
        sa.Column("webhook_url", sa.Text(), nullable=True),
        sa.Column("alert_state", sa.String(32), nullable=False, server_default="OK"),
        _time("last_scheduled_at", nullable=True),
        _json("details"),
        _time("created_at"),
        _time("updated_at"),
    )
    op.create_table(
        "monitoring_executions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("schedule_name", sa.String(63), nullable=False, index=True),
        _time("scheduled_at"),
        sa.Column("status", sa.String(32), nullable=False, index=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("endpoint_name", sa.String(63), nullable=False, index=True),
        _time("window_start", nullable=True),
        _time("window_end", nullable=True),
        _json("counts"),
        _json("summary"),
        sa.Column("report_dir", sa.Text(), nullable=True),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        _time("created_at"),
        _time("updated_at"),
        sa.UniqueConstraint("schedule_name", "scheduled_at", name="ux_monitoring_executions_run"),
    )
    for table in ("monitoring_job_definitions", "monitoring_schedules"):
        op.create_index(f"ux_{table}_name_nocase", table, [sa.text("lower(name)")], unique=True)


def downgrade() -> None:
    op.drop_table("monitoring_executions")
    op.drop_table("monitoring_schedules")
    op.drop_table("monitoring_job_definitions")
