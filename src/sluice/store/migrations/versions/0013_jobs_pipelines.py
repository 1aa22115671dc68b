"""Processing and training jobs; pipelines, their executions and the executions' steps.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def _time(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("secondary_status", sa.String(32), nullable=True),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False, server_default="{}"),
        _time("created_at"),
        _time("updated_at"),
        _time("started_at", nullable=True),
        _time("ended_at", nullable=True),
    )
    op.create_index(
        "ux_jobs_kind_name_nocase", "jobs", ["kind", sa.text("lower(name)")], unique=True
    )
    op.create_table(
        "pipelines",
        sa.Column("name", sa.String(256), primary_key=True),
        sa.Column("definition", sa.Text(), nullable=False),
        sa.Column("role_arn", sa.String(2048), nullable=False),
        sa.Column("display_name", sa.String(256), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("parallelism", sa.Integer(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False, server_default="1"),
        _time("created_at"),
        _time("updated_at"),
        _time("last_run_at", nullable=True),
    )
    op.create_index("ux_pipelines_name_nocase", "pipelines", [sa.text("lower(name)")], unique=True)
    op.create_table(
        "pipeline_executions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("pipeline", sa.String(256), nullable=False, index=True),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("definition", sa.Text(), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("display_name", sa.String(256), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("parallelism", sa.Integer(), nullable=True),
        sa.Column("runner", sa.String(128), nullable=True),
        _time("created_at"),
        _time("updated_at"),
        _time("ended_at", nullable=True),
    )
    op.create_table(
        "pipeline_execution_steps",
        sa.Column(
            "execution_id",
            sa.String(32),
            sa.ForeignKey("pipeline_executions.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="1"),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("step_metadata", sa.JSON(), nullable=False, server_default="{}"),
        sa.Column("properties", sa.JSON(), nullable=False, server_default="{}"),
        sa.Column("cache_key", sa.String(64), nullable=True, index=True),
        sa.Column("cached_from", sa.String(32), nullable=True),
        sa.Column("display_name", sa.String(256), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        _time("started_at"),
        _time("updated_at"),
        _time("ended_at", nullable=True),
    )


def downgrade() -> None:
    op.drop_table("pipeline_execution_steps")
    op.drop_table("pipeline_executions")
    op.drop_table("pipelines")
    op.drop_table("jobs")
