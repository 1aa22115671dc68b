"""Autoscaling: scalable targets, scaling policies, activities and scheduled actions;
alarm actions (the scaling policies an alarm invokes) and their switch; alarms on series
of the metric history (namespace and dimensions).

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def _time(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    with op.batch_alter_table("alarms") as batch:
        batch.add_column(sa.Column("actions", sa.JSON(), nullable=False, server_default="[]"))
        batch.add_column(
            sa.Column("actions_enabled", sa.Boolean(), nullable=False, server_default=sa.true())
        )
        batch.add_column(sa.Column("namespace", sa.String(255), nullable=True))
        batch.add_column(sa.Column("dimensions", sa.JSON(), nullable=False, server_default="[]"))
    op.create_table(
        "scalable_targets",
        sa.Column("endpoint", sa.String(63), primary_key=True),
        sa.Column("variant", sa.String(63), primary_key=True),
        sa.Column("min_capacity", sa.Integer(), nullable=False),
        sa.Column("max_capacity", sa.Integer(), nullable=False),
        sa.Column("role_arn", sa.Text(), nullable=False, server_default=""),
        sa.Column("suspended", sa.JSON(), nullable=False, server_default="[]"),
        _time("created_at"),
    )
    op.create_table(
        "scaling_policies",
        sa.Column("arn", sa.String(1600), primary_key=True),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("endpoint", sa.String(63), nullable=False),
        sa.Column("variant", sa.String(63), nullable=False),
        sa.Column("policy_type", sa.String(32), nullable=False),
        sa.Column("configuration", sa.JSON(), nullable=False),
        _time("created_at"),
        sa.UniqueConstraint("endpoint", "variant", "name", name="ux_scaling_policies_name"),
    )
    op.create_table(
        "scaling_activities",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("endpoint", sa.String(63), nullable=False),
        sa.Column("variant", sa.String(63), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("cause", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        _time("started_at"),
        _time("ended_at", nullable=True),
        sa.Column("message", sa.Text(), nullable=False, server_default=""),
        sa.Column("details", sa.Text(), nullable=False, server_default=""),
    )
    op.create_index(
        "ix_scaling_activities_variant", "scaling_activities", ["endpoint", "variant", "started_at"]
    )
    op.create_table(
        "scheduled_actions",
        sa.Column("arn", sa.String(1600), primary_key=True),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("endpoint", sa.String(63), nullable=False),
        sa.Column("variant", sa.String(63), nullable=False),
        sa.Column("schedule", sa.String(256), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False, server_default="UTC"),
        _time("start_time", nullable=True),
        _time("end_time", nullable=True),
        sa.Column("min_capacity", sa.Integer(), nullable=True),
        sa.Column("max_capacity", sa.Integer(), nullable=True),
        _time("created_at"),
        _time("last_run_at", nullable=True),
        sa.UniqueConstraint("endpoint", "variant", "name", name="ux_scheduled_actions_name"),
    )


def downgrade() -> None:
    op.drop_table("scheduled_actions")
    op.drop_index("ix_scaling_activities_variant", "scaling_activities")
    op.drop_table("scaling_activities")
    op.drop_table("scaling_policies")
    op.drop_table("scalable_targets")
    with op.batch_alter_table("alarms") as batch:
        batch.drop_column("dimensions")
        batch.drop_column("namespace")
        batch.drop_column("actions_enabled")
        batch.drop_column("actions")
