"""Queries per aggregate. Takes and returns entities; no ORM object or session escapes."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from sluice import entities as e
from sluice.errors import AlreadyExists, NotFound
from sluice.store.db import Database
from sluice.store.serving_history import close_periods, open_periods
from sluice.store.tables import (
    ConfigVariantRow,
    EndpointConfigRow,
    EndpointRow,
    EndpointVariantRow,
    ModelRow,
    utcnow,
)
from sluice.store.tag_repo import drop_tags

T = TypeVar("T")


class Repository:
    """The metadata store's operations; every method is one transaction."""

    def __init__(self, database: Database) -> None:
        self.db = database

    def _insert(
        self, row: object, what: str, name: str, then: Callable[[Session], None] | None = None
    ) -> None:
        """Add `row` (and do `then` in the same transaction); a taken name is AlreadyExists."""
        try:
            with self.db.session() as session:
                session.add(row)
                if then is not None:
                    session.flush()
                    then(session)
        except IntegrityError as exc:
            raise AlreadyExists(
                f"{what} {name!r} already exists", field="name", resource=(what, name)
            ) from exc

    def _get(self, session: Session, row_type: type[T], what: str, name: str) -> T:
        row = session.get(row_type, name)
        if row is None:
            raise NotFound(f"{what} {name!r} does not exist", field="name", resource=(what, name))
        return row

    # -- models

    def add_model(self, model: e.Model) -> e.Model:
        row = ModelRow(
            name=model.name,
            artifact_uri=model.artifact_uri,
            model_dir=model.model_dir,
            runtime=model.runtime,
            image=model.image,
            environment=dict(model.environment),
            created_at=utcnow(),
            details=dict(model.details),
            package=model.package,
        )
        self._insert(row, "model", model.name)
        return self.get_model(model.name)

    def get_model(self, name: str) -> e.Model:
        with self.db.session() as session:
            return self._get(session, ModelRow, "model", name).to_entity()

    def has_model(self, name: str) -> bool:
        with self.db.session() as session:
            return session.get(ModelRow, name) is not None

    def list_models(self) -> list[e.Model]:
        return self._list(ModelRow, lambda r: r.to_entity())

    def delete_model(self, name: str) -> None:
        with self.db.session() as session:
            session.delete(self._get(session, ModelRow, "model", name))
            drop_tags(session, e.ResourceKind.MODEL, name)

    # -- endpoint configs

    def add_config(self, config: e.EndpointConfig) -> e.EndpointConfig:
        row = EndpointConfigRow(
            name=config.name,
            sticky_header=config.sticky_header,
            created_at=utcnow(),
            data_capture=config.data_capture.to_dict() if config.data_capture else None,
            details=dict(config.details),
            variants=[
                ConfigVariantRow(
                    name=v.name,
                    position=i,
                    kind=v.kind.value,
                    model_name=v.model_name,
                    initial_weight=v.initial_weight,
                    instance_count=v.instance_count,
                    sampling_percentage=v.sampling_percentage,
                    source_variant=v.source_variant,
                    instance_type=v.instance_type,
                    details=dict(v.details),
                )
                for i, v in enumerate(config.variants)
            ],
        )
        self._insert(row, "endpoint config", config.name)
        return self.get_config(config.name)

    def get_config(self, name: str) -> e.EndpointConfig:
        with self.db.session() as session:
            return self._get(session, EndpointConfigRow, "endpoint config", name).to_entity()

    def list_configs(self) -> list[e.EndpointConfig]:
        return self._list(EndpointConfigRow, lambda r: r.to_entity())

    def delete_config(self, name: str) -> None:
        with self.db.session() as session:
            session.delete(self._get(session, EndpointConfigRow, "endpoint config", name))
            drop_tags(session, e.ResourceKind.ENDPOINT_CONFIG, name)

    # -- endpoints

    def add_endpoint(
        self, name: str, config_name: str, variants: Iterable[e.EndpointVariant]
    ) -> e.Endpoint:
        now = utcnow()
        row = EndpointRow(
            name=name,
            config_name=config_name,
            status=e.EndpointStatus.CREATING,
            created_at=now,
            updated_at=now,
            version=1,
            variants=[variant_row(i, v) for i, v in enumerate(variants)],
        )
        self._insert(
            row, "endpoint", name, lambda session: open_periods(session, name, config_name, now)
        )
        return self.get_endpoint(name)

    def get_endpoint(self, name: str) -> e.Endpoint:
        with self.db.session() as session:
            return self._get(session, EndpointRow, "endpoint", name).to_entity()

    def list_endpoints(self) -> list[e.Endpoint]:
        return self._list(EndpointRow, lambda r: r.to_entity())

    def set_endpoint_status(
        self, name: str, status: e.EndpointStatus, failure_reason: str | None = None
    ) -> e.Endpoint:
        with self.db.session() as session:
            row = self._get(session, EndpointRow, "endpoint", name)
            row.status = status.value
            row.failure_reason = failure_reason
            row.updated_at = utcnow()
            variant_status = "Failed" if status is e.EndpointStatus.FAILED else None
            for v in row.variants:
                if status is e.EndpointStatus.IN_SERVICE:
                    v.current_instance_count = v.desired_instance_count
                    v.current_weight = v.desired_weight
                    v.status = "InService"
                elif variant_status:
                    v.status = variant_status
            return row.to_entity()

    def set_weights(self, name: str, weights: Mapping[str, float]) -> e.Endpoint:
        """Set current and desired weight of the named variants; bumps the routing version."""
        with self.db.session() as session:
            row = self._get(session, EndpointRow, "endpoint", name)
            for v in row.variants:
                if v.name in weights:
                    v.current_weight = v.desired_weight = float(weights[v.name])
            row.version += 1
            row.updated_at = utcnow()
            return row.to_entity()

    def set_desired_instances(self, name: str, counts: Mapping[str, int]) -> e.Endpoint:
        """Record instance counts being reached; the endpoint is Updating until they are."""
        with self.db.session() as session:
            row = self._get(session, EndpointRow, "endpoint", name)
            for v in row.variants:
                if v.name in counts:
                    v.desired_instance_count = int(counts[v.name])
                    v.status = "Updating"
            row.status = e.EndpointStatus.UPDATING.value
            row.updated_at = utcnow()
            return row.to_entity()

    def set_current_instances(self, name: str, counts: Mapping[str, int]) -> e.Endpoint:
        """Instances now running, with no update (an async endpoint idle or woken)."""
        with self.db.session() as session:
            row = self._get(session, EndpointRow, "endpoint", name)
            for v in row.variants:
                if v.name in counts:
                    v.current_instance_count = int(counts[v.name])
            row.updated_at = utcnow()
            return row.to_entity()

    def reset_desired_instances(self, name: str, counts: Mapping[str, int]) -> e.Endpoint:
        """Desired counts with no change of status: a goal being reached with no update
        (autoscaling), or, after a failed scale, what runs."""
        with self.db.session() as session:
            row = self._get(session, EndpointRow, "endpoint", name)
            for v in row.variants:
                if v.name in counts:
                    v.desired_instance_count = int(counts[v.name])
            return row.to_entity()

    def set_variant_status(self, name: str, status: str) -> e.Endpoint:
        """The status every variant shows (Creating, ActivatingTraffic, Baking, ...)."""
        with self.db.session() as session:
            row = self._get(session, EndpointRow, "endpoint", name)
            for v in row.variants:
                v.status = status
            return row.to_entity()

    def switch_config(
        self, name: str, config_name: str, variants: Sequence[e.EndpointVariant]
    ) -> e.Endpoint:
        """Serve another config with the same production variants (shadows added or removed).

        Variants already on the endpoint keep their records; new ones are added as given.
        """
        with self.db.session() as session:
            row = self._get(session, EndpointRow, "endpoint", name)
            kept = {v.name: v for v in row.variants}
            rows = []
            for position, variant in enumerate(variants):
                existing = kept.get(variant.name)
                if existing is None:
                    existing = variant_row(position, variant)
                existing.position = position
                rows.append(existing)
            row.variants = rows
            row.config_name = config_name
            row.version += 1
            row.updated_at = utcnow()
            close_periods(session, name, row.updated_at)
            open_periods(session, name, config_name, row.updated_at)
            return row.to_entity()

    def set_sampling(self, name: str, variant: str, percentage: int) -> e.Endpoint:
        """A shadow's share of production requests copied to it."""
        with self.db.session() as session:
            row = self._get(session, EndpointRow, "endpoint", name)
            for v in row.variants:
                if v.name == variant:
                    v.sampling_percentage = int(percentage)
            row.version += 1
            row.updated_at = utcnow()
            return row.to_entity()

    def set_sticky_layout(
        self, name: str, layout: Sequence[tuple[float, float, str]]
    ) -> e.Endpoint:
        with self.db.session() as session:
            row = self._get(session, EndpointRow, "endpoint", name)
            row.sticky_layout = [list(segment) for segment in layout]
            row.version += 1
            return row.to_entity()

    def delete_endpoint(self, name: str) -> None:
        with self.db.session() as session:
            session.delete(self._get(session, EndpointRow, "endpoint", name))
            drop_tags(session, e.ResourceKind.ENDPOINT, name)
            close_periods(session, name, utcnow())

    def endpoints_using_config(self, config_name: str) -> list[str]:
        with self.db.session() as session:
            stmt = select(EndpointRow.name).where(EndpointRow.config_name == config_name)
            return list(session.scalars(stmt))

    def _list(self, row_type: type[T], convert: Callable[[T], object]) -> list:  # type: ignore[type-arg]
        with self.db.session() as session:
            rows = session.scalars(select(row_type).order_by(row_type.created_at))  # type: ignore[attr-defined]
            return [convert(r) for r in rows]


def variant_row(position: int, v: e.EndpointVariant) -> EndpointVariantRow:
    return EndpointVariantRow(
        name=v.name,
        position=position,
        kind=v.kind.value,
        model_name=v.model_name,
        current_weight=v.current_weight,
        desired_weight=v.desired_weight,
        current_instance_count=v.current_instance_count,
        desired_instance_count=v.desired_instance_count,
        sampling_percentage=v.sampling_percentage,
        status=v.status,
    )
