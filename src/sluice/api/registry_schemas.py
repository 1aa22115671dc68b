"""Request and response bodies of the registry's part of the native API."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from sluice import entities as e
from sluice.api.schemas import Strict
from sluice.control.policies import DeploymentConfig
from sluice.control.registry import Rollout


class GroupCreate(Strict):
    name: str
    description: str | None = None
    requires_approval: bool = Field(
        False, description="Only Approved packages of the group can be made into models."
    )


class GroupOut(BaseModel):
    name: str
    description: str | None
    requires_approval: bool
    latest_version: int
    created_at: datetime

    @classmethod
    def of(cls, g: e.PackageGroup) -> GroupOut:
        return cls(
            name=g.name,
            description=g.description,
            requires_approval=g.requires_approval,
            latest_version=g.latest_version,
            created_at=g.created_at,
        )


class ContainerIn(Strict):
    artifact: str = Field(description="A directory or model.tar.gz: path, file:// or s3:// URI.")
    image: str | None = None
    runtime: str | None = None
    environment: dict[str, str] = Field(default_factory=dict)

    def entity(self) -> e.PackageContainer:
        return e.PackageContainer(self.artifact, self.image, self.runtime, self.environment)


class DataVersionIn(Strict):
    uri: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size_bytes: int = Field(ge=0)


class LineageIn(Strict):
    code_commit: str | None = None
    code_dirty: bool | None = None
    code_repository: str | None = None
    data: list[DataVersionIn] = Field(default_factory=list)
    parameters: dict[str, Any] = Field(default_factory=dict)
    parent: str | None = Field(None, description="The package derived from: GROUP/VERSION.")
    build_id: str | None = None
    build_system: str | None = None
    build_url: str | None = None

    def entity(self) -> e.Lineage:
        fields = self.model_dump(exclude={"data"})
        return e.Lineage(data=tuple(e.DataVersion(**d.model_dump()) for d in self.data), **fields)


class PackageCreate(Strict):
    containers: list[ContainerIn] = Field(min_length=1, max_length=1)
    description: str | None = None
    approval: e.ApprovalStatus = e.ApprovalStatus.PENDING
    metrics: dict[str, float] = Field(default_factory=dict)
    metadata: dict[str, str] = Field(default_factory=dict)
    lineage: LineageIn | None = None
    content_types: list[str] = Field(default_factory=list)
    response_types: list[str] = Field(default_factory=list)
    created_by: str | None = None


class PackageEventOut(BaseModel):
    at: datetime
    kind: str
    message: str
    actor: str | None
    status: str | None
    details: dict[str, Any]


class PackageOut(BaseModel):
    group: str
    version: int
    ref: str
    containers: list[dict[str, Any]]
    approval: e.ApprovalStatus
    approval_by: str | None
    approval_reason: str | None
    description: str | None
    metrics: dict[str, float]
    reports: list[dict[str, Any]]
    metadata: dict[str, str]
    lineage: dict[str, Any]
    content_types: list[str]
    response_types: list[str]
    created_by: str | None
    created_at: datetime
    updated_at: datetime
    history: list[PackageEventOut]

    @classmethod
    def of(cls, p: e.ModelPackage) -> PackageOut:
        return cls(
            group=p.group,
            version=p.version,
            ref=p.ref,
            containers=[
                {k: v for k, v in asdict(c).items() if k != "kept_dir"} for c in p.containers
            ],
            approval=p.approval,
            approval_by=p.approval_by,
            approval_reason=p.approval_reason,
            description=p.description,
            metrics=p.metrics,
            reports=[asdict(r) for r in p.reports],
            metadata=p.metadata,
            lineage=p.lineage.to_dict(),
            content_types=list(p.content_types),
            response_types=list(p.response_types),
            created_by=p.created_by,
            created_at=p.created_at,
            updated_at=p.updated_at,
            history=[PackageEventOut(**asdict(ev)) for ev in p.history],
        )


class ApprovalIn(Strict):
    status: e.ApprovalStatus
    by: str | None = Field(None, description="Who decides (recorded in the history).")
    reason: str | None = None
    deploy_to: list[str] = Field(
        default_factory=list,
        description="Endpoints to update to this package once Approved: each variant "
        "serving a model of the same group gets this package's model.",
    )
    deployment_config: DeploymentConfig | None = None


class RolloutOut(BaseModel):
    endpoint: str
    deployment_id: int | None
    model: str | None
    endpoint_config: str | None
    error: str | None

    @classmethod
    def of(cls, r: Rollout) -> RolloutOut:
        return cls(**asdict(r))


class ApprovalOut(BaseModel):
    package: PackageOut
    rollouts: list[RolloutOut]


class PackageUpdate(Strict):
    description: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    remove_metadata: list[str] = Field(default_factory=list)
    by: str | None = None


class ReportIn(Strict):
    name: str = Field(min_length=1, max_length=128)
    uri: str | None = Field(None, description="Where the report lives (kept elsewhere).")
    content: str | None = Field(
        None, description="The report itself (text: JSON, Markdown, HTML...), kept here."
    )
    content_type: str = "application/json"
    metrics: dict[str, float] = Field(default_factory=dict)
    by: str | None = None
