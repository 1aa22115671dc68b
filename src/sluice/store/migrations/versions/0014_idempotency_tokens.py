"""Idempotency tokens: the answer to each SageMaker request that carried a client token
(ClientRequestToken, ClientToken), so the same request sent again is answered, not
done twice.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "idempotency_tokens",
        sa.Column("operation", sa.String(64), primary_key=True),
        sa.Column("token", sa.String(128), primary_key=True),
        sa.Column("request_sha256", sa.String(64), nullable=False),
        sa.Column("response", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
    )


def downgrade() -> None:
    op.drop_table("idempotency_tokens")
