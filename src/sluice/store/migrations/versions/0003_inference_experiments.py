"""Inference experiments (shadow tests); a shadow variant's source production variant.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _when(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    with op.batch_alter_table("endpoint_config_variants") as batch:
        batch.add_column(sa.Column("source_variant", sa.String(63), nullable=True))
    op.create_table(
        "inference_experiments",
        sa.Column("name", sa.String(120), primary_key=True),
        sa.Column("endpoint_name", sa.String(63), nullable=False, index=True),
        sa.Column("source_variant", sa.String(63), nullable=False),
        sa.Column("variants", sa.JSON(), nullable=False),
        sa.Column("shadows", sa.JSON(), nullable=False),
        _when("start"),
        _when("end"),
        sa.Column("status", sa.String(32), nullable=False, index=True),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("destination", sa.Text(), nullable=True),
        sa.Column("data_storage", sa.JSON(), nullable=False),
        sa.Column("role_arn", sa.Text(), nullable=True),
        sa.Column("kms_key", sa.Text(), nullable=True),
        sa.Column("base_config", sa.String(63), nullable=True),
        sa.Column("experiment_config", sa.String(63), nullable=True),
        sa.Column("stop", sa.JSON(), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        _when("created_at"),
        _when("updated_at"),
        _when("started_at", nullable=True),
        _when("completion_time", nullable=True),
    )


def downgrade() -> None:
    op.drop_table("inference_experiments")
    with op.batch_alter_table("endpoint_config_variants") as batch:
        batch.drop_column("source_variant")
