"""Which model served which variant of which endpoint, from when to when.

Written in the same transaction as each change of what an endpoint serves (creation, a
deployment starting and ending, shadows added or removed, deletion), so the record
outlives deleted endpoints, configs and models. Lineage reads it both ways.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from sluice import entities as e
from sluice.store.db import Database
from sluice.store.tables import ConfigVariantRow, EndpointConfigRow, ModelRow, ServingPeriodRow


def open_periods(
    session: Session,
    endpoint: str,
    config: str,
    since: datetime,
    deployment: int | None = None,
    variants: Sequence[str] | None = None,
) -> None:
    """`endpoint` starts serving `config` (only `variants` of it, when given)."""
    rows = session.scalars(
        select(ConfigVariantRow).where(ConfigVariantRow.config_name == config)
    ).all()
    recipe = session.get(EndpointConfigRow, config)
    capture = (recipe.data_capture or {}) if recipe is not None else {}
    for variant in rows:
        if variants is not None and variant.name not in variants:
            continue
        model = session.get(ModelRow, variant.model_name)
        session.add(
            ServingPeriodRow(
                endpoint=endpoint,
                config=config,
                variant=variant.name,
                kind=variant.kind,
                model=variant.model_name,
                package=model.package if model is not None else None,
                since=since,
                until=None,
                deployment=deployment,
                capture=capture.get("destination"),
            )
        )


def close_periods(
    session: Session,
    endpoint: str,
    until: datetime,
    *,
    except_config: str | None = None,
    deployment: int | None = None,
) -> None:
    """End the open periods of `endpoint`: all, all but `except_config`'s, or only those a
    `deployment` opened."""
    query = select(ServingPeriodRow).where(
        ServingPeriodRow.endpoint == endpoint, ServingPeriodRow.until.is_(None)
    )
    if except_config is not None:
        query = query.where(ServingPeriodRow.config != except_config)
    if deployment is not None:
        query = query.where(ServingPeriodRow.deployment == deployment)
    for row in session.scalars(query):
        row.until = until


class ServingHistory:
    def __init__(self, database: Database) -> None:
        self.db = database

    def periods(
        self, endpoint: str | None = None, packages: Sequence[str] | None = None
    ) -> list[e.ServingPeriod]:
        """Periods of one endpoint, or of models made from `packages`, oldest first."""
        with self.db.session() as session:
            query = select(ServingPeriodRow).order_by(ServingPeriodRow.since, ServingPeriodRow.id)
            if endpoint is not None:
                query = query.where(ServingPeriodRow.endpoint == endpoint)
            if packages is not None:
                query = query.where(ServingPeriodRow.package.in_(packages))
            return [row.to_entity() for row in session.scalars(query)]
