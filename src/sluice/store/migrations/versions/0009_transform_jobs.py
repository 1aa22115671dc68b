"""Batch transform jobs (their chunks are items of the work queue).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def _time(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "transform_jobs",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("model_name", sa.String(63), nullable=False, index=True),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False, server_default="{}"),
        _time("created_at"),
        _time("updated_at"),
        _time("started_at", nullable=True),
        _time("ended_at", nullable=True),
    )
    op.create_index(
        "ux_transform_jobs_name_nocase", "transform_jobs", [sa.text("lower(name)")], unique=True
    )


def downgrade() -> None:
    op.drop_table("transform_jobs")
