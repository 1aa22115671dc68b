"""The model registry: package groups, numbered packages, approvals, deploy from the registry.

A package is immutable once registered except for its approval status, metadata,
description and attached evaluations. A group that requires approval lets only its
Approved packages become models, and only configs whose packages are still Approved go
live (checked when an endpoint is created or updated).
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sluice import entities as e
from sluice.control.validation import MAX_ID, check_environment, check_name
from sluice.errors import InvalidState, NotFound, SluiceError, ValidationError
from sluice.store.registry_repo import RegistryRepository

if TYPE_CHECKING:
    from sluice.control.deployments import DeploymentService
    from sluice.control.endpoints import EndpointService
    from sluice.control.policies import DeploymentConfig

log = logging.getLogger(__name__)

LATEST_APPROVED = "latest-approved"
_REF = re.compile(r"^(?P<group>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[a-z-]+))$")
MAX_METADATA = 50
MAX_REPORT_BYTES = 16 * 2**20
_REPORT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def parse_ref(ref: str, field: str = "package") -> tuple[str, int | None]:
    """`group/3` -> (group, 3); `group@latest-approved` -> (group, None)."""
    match = _REF.fullmatch(ref.strip()) if isinstance(ref, str) else None
    if match is None or (match["alias"] and match["alias"] != LATEST_APPROVED):
        raise ValidationError(
            f"{ref!r} names no model package: use GROUP/VERSION or GROUP@{LATEST_APPROVED}",
            field=field,
        )
    version = int(match["version"]) if match["version"] else None
    if version is not None and not 1 <= version <= MAX_ID:
        raise ValidationError(f"version of {ref!r} must be 1 to {MAX_ID}", field=field)
    return match["group"], version


@dataclass(frozen=True)
class Rollout:
    """What approving a package did to one endpoint it was asked to update."""

    endpoint: str
    deployment_id: int | None = None
    model: str | None = None
    endpoint_config: str | None = None
    error: str | None = None


class RegistryService:
    def __init__(
        self,
        repo: RegistryRepository,
        endpoints: EndpointService,
        deployments: DeploymentService,
        reports_dir: Path,
    ) -> None:
        self.repo = repo
        self.reports_dir = reports_dir
        """Where reports handed to `store_report` are kept: <group>/<version>/<name>."""
        self.endpoints = endpoints
        self.deployments = deployments
        endpoints.config_checks.append(self.check_config)

    # -- groups

    def create_group(
        self,
        name: str,
        description: str | None = None,
        requires_approval: bool = False,
        details: Mapping[str, Any] | None = None,
    ) -> e.PackageGroup:
        check_name(name, "ModelPackageGroupName")
        group = e.PackageGroup(name, description, requires_approval, _now(), dict(details or {}))
        return self.repo.add_group(group)

    def get_group(self, name: str) -> e.PackageGroup:
        return self.repo.get_group(name)

    def list_groups(self) -> list[e.PackageGroup]:
        return self.repo.list_groups()

    def delete_group(self, name: str) -> None:
        self.repo.delete_group(name)

    # -- packages

    def register(
        self,
        group: str,
        containers: Sequence[e.PackageContainer],
        *,
        description: str | None = None,
        approval: e.ApprovalStatus = e.ApprovalStatus.PENDING,
        metrics: Mapping[str, float] | None = None,
        metadata: Mapping[str, str] | None = None,
        lineage: e.Lineage | None = None,
        content_types: Sequence[str] = (),
        response_types: Sequence[str] = (),
        created_by: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> e.ModelPackage:
        """Register a new version in `group` (numbered 1, 2, ... in order of registration)."""
        group = self.repo.get_group(group).name
        if not containers:
            raise ValidationError("a model package needs a container", field="containers")
        kept = []
        for container in containers:
            check_environment(container.environment, "InferenceSpecification.Environment")
            kept.append(replace(container, kept_dir=str(self._keep(container.artifact_uri))))
        containers = kept
        lineage = lineage or e.Lineage()
        if lineage.parent is not None:
            try:
                parent = self.get(lineage.parent, field="lineage.parent")
            except NotFound:
                raise ValidationError(
                    f"parent package {lineage.parent} does not exist", field="lineage.parent"
                ) from None
            lineage = replace(lineage, parent=parent.ref)  # GROUP@latest-approved, pinned
        now = _now()
        package = e.ModelPackage(
            group,
            0,
            tuple(containers),
            approval,
            description,
            _metrics(metrics),
            (),
            _metadata(metadata),
            lineage,
            now,
            now,
            tuple(content_types),
            tuple(response_types),
            created_by,
            created_by if approval is not e.ApprovalStatus.PENDING else None,
            None,
            (),
            dict(details or {}),
        )
        event = e.PackageEvent(
            now, "registered", f"registered as {approval.value}", created_by, approval.value
        )
        return self.repo.add_package(package, event)

    def get(self, ref: str, field: str = "package") -> e.ModelPackage:
        """The package `ref` names: GROUP/VERSION or GROUP@latest-approved."""
        group, version = parse_ref(ref, field)
        if version is None:
            return self.repo.latest_approved(group)
        return self.repo.get_package(group, version)

    def packages(self, group: str | None = None) -> list[e.ModelPackage]:
        return self.repo.list_packages(group)

    def delete(self, ref: str) -> None:
        package = self.get(ref)
        self.repo.delete_package(package.group, package.version)

    async def set_approval(
        self,
        ref: str,
        status: e.ApprovalStatus,
        actor: str | None = None,
        reason: str | None = None,
        deploy_to: Sequence[str] = (),
        policy: DeploymentConfig | None = None,
    ) -> tuple[e.ModelPackage, list[Rollout]]:
        """Change the approval status; an approval may then update `deploy_to` endpoints.

        The approval is recorded first and stands whatever the updates do; each update's
        start (or why it could not start) is recorded in the package's history.
        """
        package = self.get(ref)
        if deploy_to and status is not e.ApprovalStatus.APPROVED:
            raise ValidationError("only an approval can update endpoints", field="deploy_to")
        message = f"{package.approval.value} -> {status.value}"
        if reason:
            message += f": {reason}"
        package = self.repo.change(
            package.group,
            package.version,
            e.PackageEvent(_now(), "approval", message, actor, status.value),
            approval=status.value,
            approval_by=actor,
            approval_reason=reason,
        )
        rollouts = [await self._roll_out(package, name, policy, actor) for name in deploy_to]
        # Rollouts add to the history: read it again only if there were any.
        return (self.get(package.ref) if rollouts else package), rollouts

    def update(
        self,
        ref: str,
        *,
        description: str | None = None,
        metadata: Mapping[str, str] | None = None,
        remove_metadata: Sequence[str] = (),
        actor: str | None = None,
    ) -> e.ModelPackage:
        """Change the description or metadata (all else in a package is immutable)."""
        package = self.get(ref)
        changes: dict[str, Any] = {}
        if description is not None:
            changes["description"] = description
        if metadata or remove_metadata:
            merged = {k: v for k, v in package.metadata.items() if k not in set(remove_metadata)}
            merged.update(metadata or {})
            changes["package_metadata"] = _metadata(merged)
        if not changes:
            return package
        event = e.PackageEvent(_now(), "metadata", f"changed {', '.join(sorted(changes))}", actor)
        return self.repo.change(package.group, package.version, event, **changes)

    def store_report(
        self,
        ref: str,
        name: str,
        content: bytes,
        content_type: str,
        metrics: Mapping[str, float] | None = None,
        actor: str | None = None,
    ) -> e.ModelPackage:
        """Keep an evaluation's file with the registry (a CI workspace does not last) and
        attach it."""
        package = self.get(ref)
        if not _REPORT_NAME.fullmatch(name):
            raise ValidationError(
                f"report name {name!r}: 1 to 128 letters, digits, '.', '_' or '-'", field="name"
            )
        if len(content) > MAX_REPORT_BYTES:
            raise ValidationError(
                f"a stored report is at most {MAX_REPORT_BYTES // 2**20} MiB", field="content"
            )
        path = self.reports_dir / package.group / str(package.version) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_name(f".{name}.{uuid.uuid4().hex[:8]}")
        staging.write_bytes(content)
        staging.replace(path)
        report = e.EvaluationReport(name, path.as_uri(), content_type)
        return self.attach_report(ref, report, metrics, actor)

    def read_report(self, ref: str, name: str) -> tuple[bytes, str]:
        """A report this server keeps: its bytes and content type."""
        package = self.get(ref)
        report = next((r for r in package.reports if r.name == name), None)
        if report is None:
            raise NotFound(f"model package {package.ref} has no report {name!r}", field="name")
        path = self.reports_dir / package.group / str(package.version) / name
        if report.uri != path.as_uri() or not path.is_file():
            raise NotFound(
                f"report {name!r} of {package.ref} is not kept here; it is at {report.uri}",
                field="name",
            )
        return path.read_bytes(), report.content_type

    def attach_report(
        self,
        ref: str,
        report: e.EvaluationReport,
        metrics: Mapping[str, float] | None = None,
        actor: str | None = None,
    ) -> e.ModelPackage:
        """Attach an evaluation by its URI (replacing one of the same name) and merge its
        metrics."""
        package = self.get(ref)
        reports = [r for r in package.reports if r.name != report.name] + [report]
        event = e.PackageEvent(_now(), "evaluation", f"attached {report.name}", actor)
        return self.repo.change(
            package.group,
            package.version,
            event,
            reports=[asdict(r) for r in reports],
            metrics={**package.metrics, **_metrics(metrics)},
        )

    # -- deploy from the registry

    async def create_model(
        self, name: str, ref: str, details: Mapping[str, Any] | None = None
    ) -> e.Model:
        """A model made from a package (its first container), if the package may deploy."""
        package = self.get(ref)
        self.check_deployable(package)
        container = package.containers[0]
        kept = Path(container.kept_dir) if container.kept_dir else None
        return await self.endpoints.create_model(
            name,
            container.artifact_uri,
            runtime=container.runtime,
            image=container.image,
            environment=container.environment,
            details=details,
            package=package.ref,
            model_dir=kept if kept is not None and kept.is_dir() else None,
        )

    def check_deployable(self, package: e.ModelPackage) -> None:
        group = self.repo.get_group(package.group)
        if group.requires_approval and package.approval is not e.ApprovalStatus.APPROVED:
            raise InvalidState(
                f"model package {package.ref} is {package.approval.value}; group "
                f"{group.name!r} deploys only Approved packages",
                field="ModelPackageName",
            )

    def check_config(self, config: e.EndpointConfig) -> None:
        """Refuse a config whose models come from packages that may not deploy (any more)."""
        for variant in config.variants:
            model = self.endpoints.get_model(variant.model_name)
            if model.package is None:
                continue
            try:
                package = self.get(model.package)
            except NotFound:
                continue  # a package deleted under its model: nothing left to check
            self.check_deployable(package)

    async def _roll_out(
        self,
        package: e.ModelPackage,
        endpoint_name: str,
        policy: DeploymentConfig | None,
        actor: str | None,
    ) -> Rollout:
        """Swap the package in for the group's models on one endpoint, under `policy`."""
        try:
            endpoint = self.endpoints.get_endpoint(endpoint_name)
            config = self.endpoints.get_endpoint_config(endpoint.config_name)
            model = await self._model_for(package)
            variants = []
            for variant in config.variants:
                source = self.endpoints.get_model(variant.model_name).package
                if source is not None and parse_ref(source)[0] == package.group:
                    variant = replace(variant, model_name=model.name)
                variants.append(variant)
            if all(v.model_name != model.name for v in variants):
                raise ValidationError(
                    f"endpoint {endpoint_name!r} serves no model of group {package.group!r}",
                    field="deploy_to",
                )
            if tuple(variants) == config.variants:
                raise InvalidState(
                    f"endpoint {endpoint_name!r} already serves {package.ref}", field="deploy_to"
                )
            new_config = self.endpoints.create_endpoint_config(
                replace(
                    config,
                    name=f"{package.group[:40]}-{package.version}-{uuid.uuid4().hex[:8]}",
                    variants=tuple(variants),
                )
            )
            deployment = await self.deployments.update_endpoint(
                endpoint_name, new_config.name, policy
            )
        except SluiceError as exc:
            log.warning("approval of %s could not update %s: %s", package.ref, endpoint_name, exc)
            self.repo.add_event(
                package.group,
                package.version,
                e.PackageEvent(
                    _now(),
                    "deployment",
                    f"could not update endpoint {endpoint_name}: {exc.message}",
                    actor,
                    details={"endpoint": endpoint_name, "error": exc.message},
                ),
            )
            return Rollout(endpoint_name, error=exc.message)
        self.repo.add_event(
            package.group,
            package.version,
            e.PackageEvent(
                _now(),
                "deployment",
                f"updating endpoint {endpoint_name} to {new_config.name} "
                f"(deployment {deployment.id})",
                actor,
                details={
                    "endpoint": endpoint_name,
                    "endpoint_config": new_config.name,
                    "model": model.name,
                    "deployment": deployment.id,
                },
            ),
        )
        return Rollout(endpoint_name, deployment.id, model.name, new_config.name)

    async def _model_for(self, package: e.ModelPackage) -> e.Model:
        """The model made from `package` for rollouts (made once, then reused)."""
        name = f"{package.group[:50]}-v{package.version}"
        try:
            model = self.endpoints.get_model(name)
        except NotFound:
            return await self.create_model(name, package.ref)
        if model.package != package.ref:
            raise InvalidState(
                f"model {name!r} exists and was not made from {package.ref}", field="deploy_to"
            )
        return model

    def _keep(self, uri: str) -> Path:
        """Unpack the artifact into the server's model store now (checked, copied)."""
        try:
            return self.endpoints.artifacts.unpack(uri)
        except ValidationError as exc:
            raise ValidationError(exc.message, field="artifact_uri") from None


def _now() -> datetime:
    return datetime.now(UTC)


def _metrics(metrics: Mapping[str, float] | None) -> dict[str, float]:
    out = {}
    for name, value in (metrics or {}).items():
        try:
            out[str(name)] = float(value)
        except (TypeError, ValueError):
            raise ValidationError(
                f"metric {name!r} must be a number, got {value!r}", field="metrics"
            ) from None
    return out


def _metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    out = {str(k): str(v) for k, v in (metadata or {}).items()}
    if len(out) > MAX_METADATA:
        raise ValidationError(
            f"at most {MAX_METADATA} metadata entries, got {len(out)}", field="metadata"
        )
    return out
