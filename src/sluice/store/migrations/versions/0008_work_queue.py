"""The durable work queue: async invocations and batch chunks, leased to one runner at a
time, idempotent by (queue, key).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _time(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "work_items",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("queue", sa.String(160), nullable=False, index=True),
        sa.Column("key", sa.String(160), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("priority", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("payload", sa.JSON(), nullable=False, server_default="{}"),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        _time("created_at"),
        _time("not_before"),
        _time("expires_at", nullable=True),
        _time("started_at", nullable=True),
        _time("finished_at", nullable=True),
        sa.Column("lease_owner", sa.String(80), nullable=True),
        _time("lease_expires_at", nullable=True),
        sa.Column("result", sa.JSON(), nullable=False, server_default="{}"),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.UniqueConstraint("queue", "key", name="ux_work_items_key"),
    )
    # The claim's scan: a queue's waiting items in the order they are taken (priority
    # first, highest first, then oldest), read straight off the index with no sort.
    op.create_index(
        "ix_work_items_claim",
        "work_items",
        ["queue", "status", sa.text("priority DESC"), "id"],
    )


def downgrade() -> None:
    op.drop_table("work_items")
