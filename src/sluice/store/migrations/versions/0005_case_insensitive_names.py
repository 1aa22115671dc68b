"""Names unique regardless of case, as on SageMaker (whose ARNs lower-case them).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TABLES = ("models", "endpoint_configs", "endpoints", "inference_experiments")


def upgrade() -> None:
    for table in TABLES:
        op.create_index(f"ux_{table}_name_nocase", table, [sa.text("lower(name)")], unique=True)


def downgrade() -> None:
    for table in TABLES:
        op.drop_index(f"ux_{table}_name_nocase", table)
