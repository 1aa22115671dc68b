"""The registry's routes: package groups, packages, approvals, evaluations and lineage."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from sluice import entities as e
from sluice.api.registry_schemas import (
    ApprovalIn,
    ApprovalOut,
    GroupCreate,
    GroupOut,
    PackageCreate,
    PackageOut,
    PackageUpdate,
    ReportIn,
    RolloutOut,
)
from sluice.control.lineage import LineageService, check_query
from sluice.control.registry import RegistryService
from sluice.errors import ValidationError


def registry_router(
    registry: RegistryService,
    lineage: LineageService,
    responses: dict[int | str, dict[str, Any]],
) -> APIRouter:
    router = APIRouter(responses=responses, tags=["registry"])

    def ref(group: str, version: str) -> str:
        """`version` is a number or `latest-approved`."""
        return f"{group}@{version}" if not version.isdigit() else f"{group}/{version}"

    @router.post("/model-package-groups", status_code=201)
    def create_group(body: GroupCreate) -> GroupOut:
        return GroupOut.of(
            registry.create_group(body.name, body.description, body.requires_approval)
        )

    @router.get("/model-package-groups")
    def list_groups() -> list[GroupOut]:
        return [GroupOut.of(g) for g in registry.list_groups()]

    @router.get("/model-package-groups/{group}")
    def get_group(group: str) -> GroupOut:
        return GroupOut.of(registry.get_group(group))

    @router.delete("/model-package-groups/{group}", status_code=204)
    def delete_group(group: str) -> Response:
        registry.delete_group(group)
        return Response(status_code=204)

    @router.post("/model-package-groups/{group}/packages", status_code=201)
    def register(group: str, body: PackageCreate) -> PackageOut:
        return PackageOut.of(
            registry.register(
                group,
                [c.entity() for c in body.containers],
                description=body.description,
                approval=body.approval,
                metrics=body.metrics,
                metadata=body.metadata,
                lineage=body.lineage.entity() if body.lineage else None,
                content_types=body.content_types,
                response_types=body.response_types,
                created_by=body.created_by,
            )
        )

    @router.get("/model-package-groups/{group}/packages")
    def list_packages(group: str, approval: e.ApprovalStatus | None = None) -> list[PackageOut]:
        return [
            PackageOut.of(p)
            for p in registry.packages(group)
            if approval is None or p.approval is approval
        ]

    @router.get("/model-package-groups/{group}/packages/{version}")
    def get_package(group: str, version: str) -> PackageOut:
        """`version`: a number, or `latest-approved`."""
        return PackageOut.of(registry.get(ref(group, version)))

    @router.patch("/model-package-groups/{group}/packages/{version}")
    def update_package(group: str, version: str, body: PackageUpdate) -> PackageOut:
        return PackageOut.of(
            registry.update(
                ref(group, version),
                description=body.description,
                metadata=body.metadata,
                remove_metadata=body.remove_metadata,
                actor=body.by,
            )
        )

    @router.put("/model-package-groups/{group}/packages/{version}/approval")
    async def set_approval(group: str, version: str, body: ApprovalIn) -> ApprovalOut:
        package, rollouts = await registry.set_approval(
            ref(group, version),
            body.status,
            body.by,
            body.reason,
            body.deploy_to,
            body.deployment_config,
        )
        return ApprovalOut(
            package=PackageOut.of(package), rollouts=[RolloutOut.of(r) for r in rollouts]
        )

    @router.post("/model-package-groups/{group}/packages/{version}/reports")
    def attach_report(group: str, version: str, body: ReportIn) -> PackageOut:
        """Attach an evaluation: its `content`, kept here, or a `uri` to it."""
        if (body.uri is None) == (body.content is None):
            raise ValidationError("give the report's content or its uri", field="content")
        if body.content is not None:
            return PackageOut.of(
                registry.store_report(
                    ref(group, version),
                    body.name,
                    body.content.encode(),
                    body.content_type,
                    body.metrics,
                    body.by,
                )  # fmt: skip
            )
        assert body.uri is not None
        report = e.EvaluationReport(body.name, body.uri, body.content_type)
        return PackageOut.of(
            registry.attach_report(ref(group, version), report, body.metrics, body.by)
        )

    @router.get("/model-package-groups/{group}/packages/{version}/reports/{name}")
    def read_report(group: str, version: str, name: str) -> Response:
        content, content_type = registry.read_report(ref(group, version), name)
        return Response(content, media_type=content_type)

    @router.delete("/model-package-groups/{group}/packages/{version}", status_code=204)
    def delete_package(group: str, version: str) -> Response:
        registry.delete(ref(group, version))
        return Response(status_code=204)

    @router.get("/lineage")
    def get_lineage(
        endpoint: str | None = None,
        variant: str | None = None,
        inference_id: str | None = None,
        package: str | None = None,
    ) -> dict[str, Any]:
        """Back from an endpoint (and variant) or a captured inference id (and endpoint) to
        the packages, their data, code and approval; or forward from a package
        (GROUP/VERSION) to every endpoint that served it, and when."""
        check_query(endpoint, variant, inference_id, package)
        if package is not None:
            return lineage.of_package(package)
        if inference_id is not None:
            return lineage.of_inference(inference_id, endpoint)
        assert endpoint is not None
        return lineage.of_endpoint(endpoint, variant)

    return router
