"""ORM rows only. Each row maps to an entity with `to_entity()`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
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
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    package: Mapped[str | None] = mapped_column(String(80), nullable=True, index=True)

    def to_entity(self) -> e.Model:
        return e.Model(
            self.name,
            self.artifact_uri,
            self.model_dir,
            self.runtime,
            self.image,
            dict(self.environment),
            aware(self.created_at),
            dict(self.details or {}),
            self.package,
        )


class EndpointConfigRow(Base):
    __tablename__ = "endpoint_configs"
    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    data_capture: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    sticky_header: Mapped[str | None] = mapped_column(String(256), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
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
            dict(self.details or {}),
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
    source_variant: Mapped[str | None] = mapped_column(String(63), nullable=True)
    instance_type: Mapped[str | None] = mapped_column(String(64), nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    def to_entity(self) -> e.VariantSpec:
        return e.VariantSpec(
            self.name,
            self.model_name,
            e.VariantKind(self.kind),
            self.initial_weight,
            self.instance_count,
            self.sampling_percentage,
            self.source_variant,
            self.instance_type,
            dict(self.details or {}),
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


class AlarmRow(Base):
    __tablename__ = "alarms"
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    metric: Mapped[str] = mapped_column(String(255))
    statistic: Mapped[str] = mapped_column(String(32))
    comparison: Mapped[str] = mapped_column(String(64))
    threshold: Mapped[float] = mapped_column(Float)
    period_s: Mapped[int] = mapped_column(Integer)
    evaluation_periods: Mapped[int] = mapped_column(Integer)
    datapoints_to_alarm: Mapped[int] = mapped_column(Integer)
    endpoint: Mapped[str | None] = mapped_column(String(63), nullable=True, index=True)
    variant: Mapped[str | None] = mapped_column(String(63), nullable=True)
    treat_missing_data: Mapped[str] = mapped_column(String(32))
    webhook_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    description: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(String(32))
    state_reason: Mapped[str] = mapped_column(Text)
    state_updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    actions: Mapped[list[str]] = mapped_column(JSON, default=list)
    actions_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    namespace: Mapped[str | None] = mapped_column(String(255), nullable=True)
    dimensions: Mapped[list[list[str]]] = mapped_column(JSON, default=list)

    def to_entity(self) -> e.Alarm:
        return e.Alarm(
            self.name,
            self.metric,
            self.statistic,
            self.comparison,
            self.threshold,
            self.period_s,
            self.evaluation_periods,
            self.datapoints_to_alarm,
            self.endpoint,
            self.variant,
            self.treat_missing_data,
            self.webhook_url,
            self.description,
            e.AlarmState(self.state),
            self.state_reason,
            aware(self.state_updated_at),
            aware(self.created_at),
            tuple(self.actions or ()),
            bool(self.actions_enabled),
            self.namespace,
            tuple((name, value) for name, value in self.dimensions or ()),
        )


class AlarmHistoryRow(Base):
    __tablename__ = "alarm_history"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alarm_name: Mapped[str] = mapped_column(
        ForeignKey("alarms.name", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    old_state: Mapped[str] = mapped_column(String(32))
    new_state: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(Text)
    deployment_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)

    def to_entity(self) -> e.AlarmTransition:
        return e.AlarmTransition(
            self.alarm_name,
            aware(self.at),
            e.AlarmState(self.old_state),
            e.AlarmState(self.new_state),
            self.reason,
            self.scope,
            self.deployment_id,
        )


class DeploymentRow(Base):
    __tablename__ = "deployments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    endpoint_name: Mapped[str] = mapped_column(
        ForeignKey("endpoints.name", ondelete="CASCADE"), index=True
    )
    from_config: Mapped[str] = mapped_column(String(63))
    to_config: Mapped[str] = mapped_column(String(63))
    policy: Mapped[dict[str, Any]] = mapped_column(JSON)
    plan: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(32), index=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    step_index: Mapped[int] = mapped_column(Integer, default=-1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    steps: Mapped[list[DeploymentStepRow]] = relationship(
        cascade="all, delete-orphan", order_by="DeploymentStepRow.index", lazy="selectin"
    )
    events: Mapped[list[DeploymentEventRow]] = relationship(
        cascade="all, delete-orphan", order_by="DeploymentEventRow.id", lazy="selectin"
    )

    def to_entity(self, details: bool = True) -> e.Deployment:
        return e.Deployment(
            self.id,
            self.endpoint_name,
            self.from_config,
            self.to_config,
            dict(self.policy),
            list(self.plan),
            e.DeploymentState(self.state),
            self.reason,
            self.step_index,
            aware(self.created_at),
            aware(self.updated_at),
            aware(self.finished_at) if self.finished_at else None,
            tuple(s.to_entity() for s in self.steps) if details else (),
            tuple(ev.to_entity() for ev in self.events) if details else (),
        )


class DeploymentStepRow(Base):
    __tablename__ = "deployment_steps"
    deployment_id: Mapped[int] = mapped_column(
        ForeignKey("deployments.id", ondelete="CASCADE"), primary_key=True
    )
    index: Mapped[int] = mapped_column(Integer, primary_key=True)
    label: Mapped[str] = mapped_column(Text)
    green_shares: Mapped[dict[str, float]] = mapped_column(JSON)
    bake_s: Mapped[float] = mapped_column(Float)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    decision: Mapped[str | None] = mapped_column(String(32), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    fleets: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    alarms: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    checks: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)

    def to_entity(self) -> e.DeploymentStep:
        return e.DeploymentStep(
            self.index,
            self.label,
            dict(self.green_shares),
            self.bake_s,
            aware(self.started_at),
            aware(self.ended_at) if self.ended_at else None,
            self.decision,
            self.reason,
            dict(self.fleets or {}),
            dict(self.alarms or {}),
            list(self.checks or []),
        )


class DeploymentEventRow(Base):
    __tablename__ = "deployment_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    deployment_id: Mapped[int] = mapped_column(
        ForeignKey("deployments.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    kind: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    def to_entity(self) -> e.DeploymentEvent:
        return e.DeploymentEvent(aware(self.at), self.kind, self.message, dict(self.data or {}))


class ExperimentRow(Base):
    __tablename__ = "inference_experiments"
    name: Mapped[str] = mapped_column(String(120), primary_key=True)
    # No foreign key: an experiment's record outlives its endpoint.
    endpoint_name: Mapped[str] = mapped_column(String(63), index=True)
    source_variant: Mapped[str] = mapped_column(String(63))
    variants: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    shadows: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    start: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    end: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(32), index=True)
    status_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    description: Mapped[str] = mapped_column(Text, default="")
    destination: Mapped[str | None] = mapped_column(Text, nullable=True)
    data_storage: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    role_arn: Mapped[str | None] = mapped_column(Text, nullable=True)
    kms_key: Mapped[str | None] = mapped_column(Text, nullable=True)
    base_config: Mapped[str | None] = mapped_column(String(63), nullable=True)
    experiment_config: Mapped[str | None] = mapped_column(String(63), nullable=True)
    stop: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    events: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    completion_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    def to_entity(self) -> e.Experiment:
        return e.Experiment(
            self.name,
            self.endpoint_name,
            self.source_variant,
            tuple(e.ExperimentVariant(**v) for v in self.variants),
            tuple(e.ShadowSampling(**s) for s in self.shadows),
            aware(self.start),
            aware(self.end),
            e.ExperimentStatus(self.status),
            self.status_reason,
            self.description,
            self.destination,
            dict(self.data_storage or {}),
            self.role_arn,
            self.kms_key,
            self.base_config,
            self.experiment_config,
            dict(self.stop or {}),
            aware(self.created_at),
            aware(self.updated_at),
            aware(self.started_at) if self.started_at else None,
            aware(self.completion_time) if self.completion_time else None,
            tuple(
                e.ExperimentEvent(datetime.fromisoformat(ev["at"]), ev["message"])
                for ev in self.events or ()
            ),
        )


class TagRow(Base):
    """A tag on a resource, by the resource's kind (model, endpoint, ...) and name."""

    __tablename__ = "tags"
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    resource: Mapped[str] = mapped_column(String(120), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))
    position: Mapped[int] = mapped_column(Integer)
    """Order of first addition, so tags list back as they were given."""


class PackageGroupRow(Base):
    __tablename__ = "model_package_groups"
    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    requires_approval: Mapped[bool] = mapped_column(Boolean, default=False)
    latest_version: Mapped[int] = mapped_column(Integer, default=0)
    """The counter versions are drawn from (under the row's lock)."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    def to_entity(self) -> e.PackageGroup:
        return e.PackageGroup(
            self.name,
            self.description,
            self.requires_approval,
            aware(self.created_at),
            dict(self.details or {}),
            self.latest_version,
        )


class ModelPackageRow(Base):
    __tablename__ = "model_packages"
    group_name: Mapped[str] = mapped_column(
        String(63), ForeignKey("model_package_groups.name"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    containers: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    content_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    response_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    approval: Mapped[str] = mapped_column(String(32), index=True)
    approval_by: Mapped[str | None] = mapped_column(String(256), nullable=True)
    approval_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    metrics: Mapped[dict[str, float]] = mapped_column(JSON, default=dict)
    reports: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    package_metadata: Mapped[dict[str, str]] = mapped_column("metadata", JSON, default=dict)
    lineage: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_by: Mapped[str | None] = mapped_column(String(256), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    history: Mapped[list[PackageEventRow]] = relationship(
        cascade="all, delete-orphan", order_by="PackageEventRow.id", lazy="selectin"
    )

    def to_entity(self) -> e.ModelPackage:
        return e.ModelPackage(
            self.group_name,
            self.version,
            tuple(e.PackageContainer(**c) for c in self.containers),
            e.ApprovalStatus(self.approval),
            self.description,
            dict(self.metrics or {}),
            tuple(e.EvaluationReport(**r) for r in self.reports or ()),
            dict(self.package_metadata or {}),
            e.Lineage.from_dict(self.lineage or {}),
            aware(self.created_at),
            aware(self.updated_at),
            tuple(self.content_types or ()),
            tuple(self.response_types or ()),
            self.created_by,
            self.approval_by,
            self.approval_reason,
            tuple(ev.to_entity() for ev in self.history),
            dict(self.details or {}),
        )


class PackageEventRow(Base):
    __tablename__ = "model_package_events"
    __table_args__ = (
        ForeignKeyConstraint(
            ["group_name", "version"], ["model_packages.group_name", "model_packages.version"]
        ),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    group_name: Mapped[str] = mapped_column(String(63))
    version: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    kind: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text)
    actor: Mapped[str | None] = mapped_column(String(256), nullable=True)
    status: Mapped[str | None] = mapped_column(String(32), nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    def to_entity(self) -> e.PackageEvent:
        return e.PackageEvent(
            aware(self.at), self.kind, self.message, self.actor, self.status, dict(self.details)
        )


class ServingPeriodRow(Base):
    __tablename__ = "serving_periods"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    endpoint: Mapped[str] = mapped_column(String(63), index=True)
    config: Mapped[str] = mapped_column(String(63))
    variant: Mapped[str] = mapped_column(String(63))
    kind: Mapped[str] = mapped_column(String(16))
    model: Mapped[str] = mapped_column(String(63))
    package: Mapped[str | None] = mapped_column(String(80), nullable=True, index=True)
    since: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    deployment: Mapped[int | None] = mapped_column(Integer, nullable=True)
    capture: Mapped[str | None] = mapped_column(Text, nullable=True)
    """The config's capture destination, if it names one."""

    def to_entity(self) -> e.ServingPeriod:
        return e.ServingPeriod(
            self.endpoint,
            self.config,
            self.variant,
            e.VariantKind(self.kind),
            self.model,
            self.package,
            aware(self.since),
            aware(self.until) if self.until else None,
            self.deployment,
            self.capture,
        )


class MonitoringJobDefinitionRow(Base):
    __tablename__ = "monitoring_job_definitions"
    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    job: Mapped[dict[str, Any]] = mapped_column(JSON)
    request: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    def to_entity(self) -> e.MonitoringJobDefinition:
        return e.MonitoringJobDefinition(
            self.name,
            e.MonitoringType(self.kind),
            monitoring_job(self.job),
            dict(self.request or {}),
            aware(self.created_at),
        )


def monitoring_job(data: dict[str, Any]) -> e.MonitoringJob:
    return e.MonitoringJob(**{**data, "kind": e.MonitoringType(data["kind"])})


class MonitoringScheduleRow(Base):
    __tablename__ = "monitoring_schedules"
    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    expression: Mapped[str] = mapped_column(String(256))
    job: Mapped[dict[str, Any]] = mapped_column(JSON)
    endpoint_name: Mapped[str] = mapped_column(String(63), index=True)
    status: Mapped[str] = mapped_column(String(32), index=True)
    missed_runs: Mapped[str] = mapped_column(String(16))
    job_definition: Mapped[str | None] = mapped_column(String(63), nullable=True, index=True)
    webhook_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    alert_state: Mapped[str] = mapped_column(String(32), default="OK")
    last_scheduled_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    def to_entity(self) -> e.MonitoringSchedule:
        return e.MonitoringSchedule(
            self.name,
            self.expression,
            monitoring_job(self.job),
            e.ScheduleStatus(self.status),
            self.missed_runs,
            aware(self.created_at),
            aware(self.updated_at),
            aware(self.last_scheduled_at) if self.last_scheduled_at else None,
            self.job_definition,
            self.webhook_url,
            self.alert_state,
            dict(self.details or {}),
        )


class MonitoringExecutionRow(Base):
    __tablename__ = "monitoring_executions"
    __table_args__ = (
        UniqueConstraint("schedule_name", "scheduled_at", name="ux_monitoring_executions_run"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # No foreign key: executions are kept (for their reports) after a schedule is deleted.
    schedule_name: Mapped[str] = mapped_column(String(63), index=True)
    scheduled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(32), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    endpoint_name: Mapped[str] = mapped_column(String(63), index=True)
    window_start: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    window_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    report_dir: Mapped[str | None] = mapped_column(Text, nullable=True)
    failure_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    def to_entity(self) -> e.MonitoringExecution:
        return e.MonitoringExecution(
            self.id,
            self.schedule_name,
            aware(self.scheduled_at),
            e.ExecutionStatus(self.status),
            aware(self.created_at),
            aware(self.updated_at),
            aware(self.window_start) if self.window_start else None,
            aware(self.window_end) if self.window_end else None,
            dict(self.counts or {}),
            dict(self.summary or {}),
            self.report_dir,
            self.failure_reason,
            e.MonitoringType(self.kind),
            self.endpoint_name,
        )


class WorkItemRow(Base):
    __tablename__ = "work_items"
    __table_args__ = (
        UniqueConstraint("queue", "key", name="ux_work_items_key"),
        Index("ix_work_items_claim", "queue", "status", text("priority DESC"), "id"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    queue: Mapped[str] = mapped_column(String(160), index=True)
    key: Mapped[str] = mapped_column(String(160))
    status: Mapped[str] = mapped_column(String(16), index=True)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    not_before: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(80), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True
    )
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    failure_reason: Mapped[str | None] = mapped_column(Text, nullable=True)

    def to_entity(self) -> e.WorkItem:
        return work_item(self)


def work_item(row: Any) -> e.WorkItem:
    """A work item from a `work_items` row: an ORM row or a Core one (same names)."""
    return e.WorkItem(
        row.id,
        row.queue,
        row.key,
        e.WorkStatus(row.status),
        row.priority,
        dict(row.payload or {}),
        row.attempts,
        aware(row.created_at),
        aware(row.not_before),
        aware(row.expires_at) if row.expires_at else None,
        aware(row.started_at) if row.started_at else None,
        aware(row.finished_at) if row.finished_at else None,
        row.lease_owner,
        aware(row.lease_expires_at) if row.lease_expires_at else None,
        dict(row.result or {}),
        row.failure_reason,
    )


class TransformJobRow(Base):
    __tablename__ = "transform_jobs"
    __table_args__ = (Index("ux_transform_jobs_name_nocase", text("lower(name)"), unique=True),)
    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    model_name: Mapped[str] = mapped_column(String(63), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    failure_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    def to_entity(self) -> e.TransformJob:
        return e.TransformJob(
            self.name,
            self.model_name,
            e.TransformStatus(self.status),
            e.TransformSpec(**self.spec),
            aware(self.created_at),
            aware(self.updated_at),
            aware(self.started_at) if self.started_at else None,
            aware(self.ended_at) if self.ended_at else None,
            self.failure_reason,
            dict(self.details or {}),
        )


class MetricPointRow(Base):
    """One period of one metric series (CloudWatch's model): the statistics of every value
    in the period, and, where the values are positive, their log-spaced bins (percentiles)."""

    __tablename__ = "metric_points"
    __table_args__ = (
        UniqueConstraint(
            "namespace", "name", "dimensions", "resolution", "at", name="ux_metric_points"
        ),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    namespace: Mapped[str] = mapped_column(String(255))
    name: Mapped[str] = mapped_column(String(255))
    dimensions: Mapped[str] = mapped_column(String(2048))
    """The series' dimensions as canonical JSON: [[name, value], ...] sorted by name."""
    resolution: Mapped[int] = mapped_column(Integer)
    """The period's length in seconds (10, or 60 once rolled up)."""
    at: Mapped[int] = mapped_column(BigInteger)
    """The period's start, in seconds since the epoch (read fast, compared as numbers)."""
    samples: Mapped[float] = mapped_column(Float)
    total: Mapped[float] = mapped_column(Float)
    minimum: Mapped[float] = mapped_column(Float)
    maximum: Mapped[float] = mapped_column(Float)
    unit: Mapped[str | None] = mapped_column(String(32), nullable=True)
    bins: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    """(bin, count) pairs as little-endian int32s (see `metric_repo.pack`)."""


class ScalableTargetRow(Base):
    __tablename__ = "scalable_targets"
    endpoint: Mapped[str] = mapped_column(String(63), primary_key=True)
    variant: Mapped[str] = mapped_column(String(63), primary_key=True)
    min_capacity: Mapped[int] = mapped_column(Integer)
    max_capacity: Mapped[int] = mapped_column(Integer)
    role_arn: Mapped[str] = mapped_column(Text, default="")
    suspended: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    def to_entity(self) -> e.ScalableTarget:
        return e.ScalableTarget(
            self.endpoint,
            self.variant,
            self.min_capacity,
            self.max_capacity,
            self.role_arn,
            frozenset(self.suspended or ()),
            aware(self.created_at),
        )


class ScalingPolicyRow(Base):
    __tablename__ = "scaling_policies"
    __table_args__ = (
        UniqueConstraint("endpoint", "variant", "name", name="ux_scaling_policies_name"),
    )
    arn: Mapped[str] = mapped_column(String(1600), primary_key=True)
    name: Mapped[str] = mapped_column(String(256))
    endpoint: Mapped[str] = mapped_column(String(63))
    variant: Mapped[str] = mapped_column(String(63))
    policy_type: Mapped[str] = mapped_column(String(32))
    configuration: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    def to_entity(self) -> e.ScalingPolicy:
        return e.ScalingPolicy(
            self.arn,
            self.name,
            self.endpoint,
            self.variant,
            self.policy_type,
            dict(self.configuration),
            aware(self.created_at),
        )


class ScalingActivityRow(Base):
    __tablename__ = "scaling_activities"
    __table_args__ = (Index("ix_scaling_activities_variant", "endpoint", "variant", "started_at"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(63))
    variant: Mapped[str] = mapped_column(String(63))
    description: Mapped[str] = mapped_column(Text)
    cause: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    message: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[str] = mapped_column(Text, default="")

    def to_entity(self) -> e.ScalingActivity:
        return e.ScalingActivity(
            self.id,
            self.endpoint,
            self.variant,
            self.description,
            self.cause,
            self.status,
            aware(self.started_at),
            aware(self.ended_at) if self.ended_at else None,
            self.message,
            self.details,
        )


class ScheduledActionRow(Base):
    __tablename__ = "scheduled_actions"
    __table_args__ = (
        UniqueConstraint("endpoint", "variant", "name", name="ux_scheduled_actions_name"),
    )
    arn: Mapped[str] = mapped_column(String(1600), primary_key=True)
    name: Mapped[str] = mapped_column(String(256))
    endpoint: Mapped[str] = mapped_column(String(63))
    variant: Mapped[str] = mapped_column(String(63))
    schedule: Mapped[str] = mapped_column(String(256))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    start_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    end_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    min_capacity: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_capacity: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    def to_entity(self) -> e.ScheduledAction:
        return e.ScheduledAction(
            self.arn,
            self.name,
            self.endpoint,
            self.variant,
            self.schedule,
            self.timezone,
            aware(self.start_time) if self.start_time else None,
            aware(self.end_time) if self.end_time else None,
            self.min_capacity,
            self.max_capacity,
            aware(self.created_at),
            aware(self.last_run_at) if self.last_run_at else None,
        )


class LeaseRow(Base):
    __tablename__ = "leases"
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    taken_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    """When the present holder took it (renewals keep it)."""


class IdempotencyTokenRow(Base):
    __tablename__ = "idempotency_tokens"
    operation: Mapped[str] = mapped_column(String(64), primary_key=True)
    token: Mapped[str] = mapped_column(String(128), primary_key=True)
    request_sha256: Mapped[str] = mapped_column(String(64))
    response: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class JobRow(Base):
    __tablename__ = "jobs"
    __table_args__ = (Index("ux_jobs_kind_name_nocase", "kind", text("lower(name)"), unique=True),)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    secondary_status: Mapped[str | None] = mapped_column(String(32), nullable=True)
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    failure_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    def to_entity(self) -> e.Job:
        return e.Job(
            e.JobKind(self.kind),
            self.name,
            e.JobStatus(self.status),
            dict(self.request),
            aware(self.created_at),
            aware(self.updated_at),
            aware(self.started_at) if self.started_at else None,
            aware(self.ended_at) if self.ended_at else None,
            self.failure_reason,
            self.secondary_status,
            dict(self.details or {}),
        )


class PipelineRow(Base):
    __tablename__ = "pipelines"
    __table_args__ = (Index("ux_pipelines_name_nocase", text("lower(name)"), unique=True),)
    name: Mapped[str] = mapped_column(String(256), primary_key=True)
    definition: Mapped[str] = mapped_column(Text)
    role_arn: Mapped[str] = mapped_column(String(2048))
    display_name: Mapped[str | None] = mapped_column(String(256), nullable=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    parallelism: Mapped[int | None] = mapped_column(Integer, nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_run_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    def to_entity(self) -> e.Pipeline:
        return e.Pipeline(
            self.name,
            self.definition,
            self.role_arn,
            aware(self.created_at),
            aware(self.updated_at),
            self.display_name,
            self.description,
            self.parallelism,
            aware(self.last_run_at) if self.last_run_at else None,
            self.version,
        )


class PipelineExecutionRow(Base):
    __tablename__ = "pipeline_executions"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    pipeline: Mapped[str] = mapped_column(String(256), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    definition: Mapped[str] = mapped_column(Text)
    parameters: Mapped[dict[str, Any]] = mapped_column(JSON)
    display_name: Mapped[str | None] = mapped_column(String(256), nullable=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    failure_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    parallelism: Mapped[int | None] = mapped_column(Integer, nullable=True)
    runner: Mapped[str | None] = mapped_column(String(128), nullable=True)
    selected_steps: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    source_execution: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    def to_entity(self) -> e.PipelineExecution:
        return e.PipelineExecution(
            self.id,
            self.pipeline,
            e.PipelineExecutionStatus(self.status),
            self.definition,
            dict(self.parameters),
            aware(self.created_at),
            aware(self.updated_at),
            self.display_name,
            self.description,
            self.failure_reason,
            self.parallelism,
            aware(self.ended_at) if self.ended_at else None,
            self.runner,
            tuple(self.selected_steps) if self.selected_steps is not None else None,
            self.source_execution,
        )


class ExecutionStepRow(Base):
    __tablename__ = "pipeline_execution_steps"
    execution_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("pipeline_executions.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    type: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    failure_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    step_metadata: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    properties: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    cache_key: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    cached_from: Mapped[str | None] = mapped_column(String(32), nullable=True)
    reused_from: Mapped[str | None] = mapped_column(String(32), nullable=True)
    display_name: Mapped[str | None] = mapped_column(String(256), nullable=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    def to_entity(self) -> e.ExecutionStep:
        return e.ExecutionStep(
            self.execution_id,
            self.name,
            self.type,
            e.StepStatus(self.status),
            aware(self.started_at),
            aware(self.updated_at),
            aware(self.ended_at) if self.ended_at else None,
            self.failure_reason,
            self.attempts,
            dict(self.step_metadata or {}),
            dict(self.properties or {}),
            self.cache_key,
            self.cached_from,
            self.reused_from,
            self.display_name,
            self.description,
        )
