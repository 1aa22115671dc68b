"""Idempotency tokens: the answer to each SageMaker request that carried a client token
(ClientRequestToken, ClientToken), so the same request sent again is answered, not
done twice; and selective pipeline executions.

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
    # Selective executions: the steps that run, and whose results the others take.
    op.add_column("pipeline_executions", sa.Column("selected_steps", sa.JSON(), nullable=True))
    op.add_column(
        "pipeline_executions", sa.Column("source_execution", sa.String(32), nullable=True)
    )
    op.add_column(
        "pipeline_execution_steps", sa.Column("reused_from", sa.String(32), nullable=True)
    )
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
    op.drop_column("pipeline_execution_steps", "reused_from")
    op.drop_column("pipeline_executions", "source_execution")
    op.drop_column("pipeline_executions", "selected_steps")
