"""SageMaker members stored as given (models, endpoint configs, their variants); tags.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _details() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column("details", sa.JSON(), nullable=False, server_default="{}")


def upgrade() -> None:
    with op.batch_alter_table("models") as batch:
        batch.add_column(_details())
    with op.batch_alter_table("endpoint_configs") as batch:
        batch.add_column(_details())
    with op.batch_alter_table("endpoint_config_variants") as batch:
        batch.add_column(sa.Column("instance_type", sa.String(64), nullable=True))
        batch.add_column(_details())
    op.create_table(
        "tags",
        sa.Column("kind", sa.String(32), primary_key=True),
        sa.Column("resource", sa.String(120), primary_key=True),
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("value", sa.String(256), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("tags")
    with op.batch_alter_table("endpoint_config_variants") as batch:
        batch.drop_column("details")
        batch.drop_column("instance_type")
    with op.batch_alter_table("endpoint_configs") as batch:
        batch.drop_column("details")
    with op.batch_alter_table("models") as batch:
        batch.drop_column("details")
