"""ORM rows only. Each row maps to an entity with `to_entity()`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from sluice import entities as e


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware(value: datetime) -> datetime:
    # SQLite hands datetimes back naive; they were stored as UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    pass


class ModelRow(Base):
    __tablename__ = "models"
    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    artifact_uri: Mapped[str] = mapped_column(Text)
    model_dir: Mapped[str] = mapped_column(Text)
    runtime: Mapped[str] = mapped_column(String(64))
    image: Mapped[str | None] = mapped_column(Text, nullable=True)
    environment: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    def to_entity(self) -> e.Model:
        return e.Model(
            self.name,
            self.artifact_uri,
            self.model_dir,
            self.runtime,
            self.image,
            dict(self.environment),
            aware(self.created_at),
        )


class EndpointConfigRow(Base):
    __tablename__ = "endpoint_configs"
    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    data_capture: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    sticky_header: Mapped[str | None] = mapped_column(String(256), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    variants: Mapped[list[ConfigVariantRow]] = relationship(
        cascade="all, delete-orphan", order_by="ConfigVariantRow.position", lazy="selectin"
    )

    def to_entity(self) -> e.EndpointConfig:
        capture = e.DataCapture(**self.data_capture) if self.data_capture else None
        return e.EndpointConfig(
            self.name,
            tuple(v.to_entity() for v in self.variants),
            capture,
            self.sticky_header,
            aware(self.created_at),
        )


class ConfigVariantRow(Base):
    __tablename__ = "endpoint_config_variants"
    config_name: Mapped[str] = mapped_column(
        ForeignKey("endpoint_configs.name", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    model_name: Mapped[str] = mapped_column(String(63), index=True)
    initial_weight: Mapped[float] = mapped_column(Float)
    instance_count: Mapped[int] = mapped_column(Integer)
    sampling_percentage: Mapped[int] = mapped_column(Integer)

    def to_entity(self) -> e.VariantSpec:
        return e.VariantSpec(
            self.name,
            self.model_name,
            e.VariantKind(self.kind),
            self.initial_weight,
            self.instance_count,
            self.sampling_percentage,
        )


class EndpointRow(Base):
    __tablename__ = "endpoints"
    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    config_name: Mapped[str] = mapped_column(String(63), index=True)
    status: Mapped[str] = mapped_column(String(32))
    failure_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    sticky_layout: Mapped[list[list[Any]] | None] = mapped_column(JSON, nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    """Bumped on every change that alters routing, so gateways can tell they are stale."""
    variants: Mapped[list[EndpointVariantRow]] = relationship(
        cascade="all, delete-orphan", order_by="EndpointVariantRow.position", lazy="selectin"
    )

    def to_entity(self) -> e.Endpoint:
        return e.Endpoint(
            self.name,
            self.config_name,
            e.EndpointStatus(self.status),
            self.failure_reason,
            aware(self.created_at),
            aware(self.updated_at),
            tuple(v.to_entity() for v in self.variants),
            tuple((float(a), float(b), str(v)) for a, b, v in self.sticky_layout or ()),
        )


class EndpointVariantRow(Base):
    __tablename__ = "endpoint_variants"
    endpoint_name: Mapped[str] = mapped_column(
        ForeignKey("endpoints.name", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    model_name: Mapped[str] = mapped_column(String(63))
    current_weight: Mapped[float] = mapped_column(Float)
    desired_weight: Mapped[float] = mapped_column(Float)
    current_instance_count: Mapped[int] = mapped_column(Integer)
    desired_instance_count: Mapped[int] = mapped_column(Integer)
    sampling_percentage: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(32))

    def to_entity(self) -> e.EndpointVariant:
        return e.EndpointVariant(
            self.name,
            self.model_name,
            e.VariantKind(self.kind),
            self.current_weight,
            self.desired_weight,
            self.current_instance_count,
            self.desired_instance_count,
            self.sampling_percentage,
            self.status,
        )
