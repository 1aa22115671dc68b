"""The model registry: package groups, versioned packages and their history; the history
of what each endpoint served (for lineage), begun with what endpoints serve now.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _json(name: str, default: str = "{}") -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.JSON(), nullable=False, server_default=default)


def _time(name: str) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "model_package_groups",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("requires_approval", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("latest_version", sa.Integer(), nullable=False, server_default="0"),
        _time("created_at"),
        _json("details"),
    )
    op.create_index(
        "ux_model_package_groups_name_nocase",
        "model_package_groups",
        [sa.text("lower(name)")],
        unique=True,
    )
    op.create_table(
        "model_packages",
        sa.Column(
            "group_name",
            sa.String(63),
            sa.ForeignKey("model_package_groups.name"),
            primary_key=True,
        ),
        sa.Column("version", sa.Integer(), primary_key=True),
        sa.Column("description", sa.Text(), nullable=True),
        _json("containers", "[]"),
        _json("content_types", "[]"),
        _json("response_types", "[]"),
        sa.Column("approval", sa.String(32), nullable=False, index=True),
        sa.Column("approval_by", sa.String(256), nullable=True),
        sa.Column("approval_reason", sa.Text(), nullable=True),
        _json("metrics"),
        _json("reports", "[]"),
        _json("metadata"),
        _json("lineage"),
        sa.Column("created_by", sa.String(256), nullable=True),
        _time("created_at"),
        _time("updated_at"),
        _json("details"),
    )
    op.create_table(
        "model_package_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("group_name", sa.String(63), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        _time("at"),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(256), nullable=True),
        sa.Column("status", sa.String(32), nullable=True),
        _json("details"),
        sa.ForeignKeyConstraint(
            ["group_name", "version"], ["model_packages.group_name", "model_packages.version"]
        ),
    )
    op.create_index(
        "ix_model_package_events_package", "model_package_events", ["group_name", "version"]
    )
    # A plain ADD COLUMN (SQLite has it): a batch copy of the table would lose the
    # expression index on lower(name).
    op.add_column("models", sa.Column("package", sa.String(80), nullable=True))
    op.create_index("ix_models_package", "models", ["package"])
    op.create_table(
        "serving_periods",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("endpoint", sa.String(63), nullable=False, index=True),
        sa.Column("config", sa.String(63), nullable=False),
        sa.Column("variant", sa.String(63), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("model", sa.String(63), nullable=False),
        sa.Column("package", sa.String(80), nullable=True, index=True),
        _time("since"),
        sa.Column("until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deployment", sa.Integer(), nullable=True),
        sa.Column("capture", sa.Text(), nullable=True),
    )
    op.execute(
        "INSERT INTO serving_periods (endpoint, config, variant, kind, model, since) "
        "SELECT e.name, e.config_name, v.name, v.kind, v.model_name, e.created_at "
        "FROM endpoints e JOIN endpoint_config_variants v ON v.config_name = e.config_name"
    )


def downgrade() -> None:
    op.drop_table("serving_periods")
    op.drop_index("ix_models_package", "models")
    with op.batch_alter_table("models") as batch:
        batch.drop_column("package")
    op.drop_table("model_package_events")
    op.drop_table("model_packages")
    op.drop_table("model_package_groups")
