"""Initial schema: models, endpoint configs and their variants, endpoints and their variants.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("artifact_uri", sa.Text(), nullable=False),
        sa.Column("model_dir", sa.Text(), nullable=False),
        sa.Column("runtime", sa.String(64), nullable=False),
        sa.Column("image", sa.Text(), nullable=True),
        sa.Column("environment", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "endpoint_configs",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("data_capture", sa.JSON(), nullable=True),
        sa.Column("sticky_header", sa.String(256), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "endpoint_config_variants",
        sa.Column(
            "config_name",
            sa.String(63),
            sa.ForeignKey("endpoint_configs.name", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("model_name", sa.String(63), nullable=False, index=True),
        sa.Column("initial_weight", sa.Float(), nullable=False),
        sa.Column("instance_count", sa.Integer(), nullable=False),
        sa.Column("sampling_percentage", sa.Integer(), nullable=False),
    )
    op.create_table(
        "endpoints",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("config_name", sa.String(63), nullable=False, index=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sticky_layout", sa.JSON(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
    )
    op.create_table(
        "endpoint_variants",
        sa.Column(
            "endpoint_name",
            sa.String(63),
            sa.ForeignKey("endpoints.name", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("model_name", sa.String(63), nullable=False),
        sa.Column("current_weight", sa.Float(), nullable=False),
        sa.Column("desired_weight", sa.Float(), nullable=False),
        sa.Column("current_instance_count", sa.Integer(), nullable=False),
        sa.Column("desired_instance_count", sa.Integer(), nullable=False),
        sa.Column("sampling_percentage", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
    )


def downgrade() -> None:
    for table in (
        "endpoint_variants",
        "endpoints",
        "endpoint_config_variants",
        "endpoint_configs",
        "models",
    ):
        op.drop_table(table)
