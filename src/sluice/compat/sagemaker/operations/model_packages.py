"""Model package groups and (versioned) model packages: SageMaker's Model Registry."""

from __future__ import annotations

from typing import Any

from sluice.compat.sagemaker import listing
from sluice.compat.sagemaker.operations import (
    Members,
    Services,
    caller,
    model_data_url,
    operation,
    tags_of,
)
from sluice.compat.sagemaker.shapes import ValidationException
from sluice.control.registry import parse_ref
from sluice.entities import (
    ApprovalStatus,
    EvaluationReport,
    Lineage,
    ModelPackage,
    PackageContainer,
    PackageGroup,
    ResourceKind,
)
from sluice.errors import NotFound

GROUP_FIELDS: listing.Fields[PackageGroup] = listing.Fields(
    name=lambda g: g.name, created=lambda g: g.created_at
)
PACKAGE_FIELDS: listing.Fields[ModelPackage] = listing.Fields(
    name=lambda p: f"{p.group}/{p.version:09d}", created=lambda p: p.created_at
)
"""Packages sort by group, then version (a key unique to each, as pages need)."""
STORED = ("InferenceSpecification", "MetadataProperties", "ModelMetrics", "DriftCheckBaselines",
          "ValidationSpecification", "SourceAlgorithmSpecification", "Domain", "Task",
          "SamplePayloadUrl", "SourceUri", "SkipModelValidation",
          "AdditionalInferenceSpecifications", "SecurityConfig", "ModelCard", "ModelLifeCycle",
          "CertifyForMarketplace", "ModelPackageRegistrationType")  # fmt: skip
"""CreateModelPackage members kept as given and described back."""
METRIC_KINDS = ("ModelQuality", "ModelDataQuality", "Bias", "Explainability")


# -- groups


@operation("CreateModelPackageGroup")
async def create_group(s: Services, m: Members) -> Members:
    tags = tags_of(m)
    details = {k: m[k] for k in ("ManagedConfiguration",) if k in m}
    group = s.registry.create_group(
        m["ModelPackageGroupName"], m.get("ModelPackageGroupDescription"), details=details
    )
    if tags:
        s.tags.add(ResourceKind.MODEL_PACKAGE_GROUP, group.name, tags)
    return {"ModelPackageGroupArn": s.arns.of(ResourceKind.MODEL_PACKAGE_GROUP, group.name)}


@operation("DescribeModelPackageGroup")
async def describe_group(s: Services, m: Members) -> Members:
    group = _group(s, m["ModelPackageGroupName"])
    return {
        **_group_summary(s, group),
        "CreatedBy": {},
        **{k: group.details[k] for k in ("ManagedConfiguration",) if k in group.details},
    }


@operation("ListModelPackageGroups")
async def list_groups(s: Services, m: Members) -> Members:
    shown, token = listing.page(s.registry.list_groups(), m, GROUP_FIELDS)
    return {
        "ModelPackageGroupSummaryList": [_group_summary(s, g) for g in shown],
        "NextToken": token,
    }


@operation("DeleteModelPackageGroup")
async def delete_group(s: Services, m: Members) -> Members:
    s.registry.delete_group(_group(s, m["ModelPackageGroupName"]).name)
    return {}


# -- packages


@operation("CreateModelPackage")
async def create_package(s: Services, m: Members) -> Members:
    if "ModelPackageGroupName" not in m:
        raise ValidationException(
            "ModelPackageGroupName is required: sluice keeps versioned model packages only "
            "(ModelPackageName alone makes an unversioned one)",
            field="ModelPackageGroupName",
        )
    group = _group(s, m["ModelPackageGroupName"])
    spec = m.get("InferenceSpecification")
    if not spec:
        raise ValidationException(
            "InferenceSpecification is required: it says where the model is",
            field="InferenceSpecification",
        )
    if len(spec["Containers"]) > 1:
        raise ValidationException(
            "InferenceSpecification.Containers: sluice serves one container per model, not "
            f"{len(spec['Containers'])} (inference pipelines are not served yet)",
            field="InferenceSpecification.Containers",
        )
    tags = tags_of(m)
    package = s.registry.register(
        group.name,
        [_container(c, i) for i, c in enumerate(spec["Containers"], 1)],
        description=m.get("ModelPackageDescription"),
        approval=ApprovalStatus(m.get("ModelApprovalStatus", ApprovalStatus.PENDING.value)),
        metadata=m.get("CustomerMetadataProperties"),
        lineage=_lineage(m.get("MetadataProperties", {})),
        content_types=spec.get("SupportedContentTypes", ()),
        response_types=spec.get("SupportedResponseMIMETypes", ()),
        created_by=caller.get(),
        details={k: m[k] for k in STORED if k in m},
    )
    reports = _reports(m.get("ModelMetrics", {}))
    for report in reports:
        package = s.registry.attach_report(package.ref, report, actor=caller.get())
    if tags:
        s.tags.add(ResourceKind.MODEL_PACKAGE, package.ref, tags)
    return {"ModelPackageArn": _arn(s, package)}


@operation("DescribeModelPackage")
async def describe_package(s: Services, m: Members) -> Members:
    package = _package(s, m["ModelPackageName"])
    stored = package.details
    out: Members = {
        **_package_summary(s, package),
        "ModelPackageStatusDetails": {"ValidationStatuses": [], "ImageScanStatuses": []},
        "CertifyForMarketplace": stored.get("CertifyForMarketplace", False),
        "LastModifiedTime": package.updated_at,
        **{k: stored[k] for k in STORED if k in stored},
    }
    if "InferenceSpecification" not in stored:  # registered through the native API
        out["InferenceSpecification"] = {
            "Containers": [
                {"Image": c.image, "ModelDataUrl": c.artifact_uri, "Environment": c.environment}
                for c in package.containers
            ],
            "SupportedContentTypes": list(package.content_types),
            "SupportedResponseMIMETypes": list(package.response_types),
        }
    if package.approval_reason:
        out["ApprovalDescription"] = package.approval_reason
    if package.metadata:
        out["CustomerMetadataProperties"] = package.metadata
    if package.created_by:
        out["CreatedBy"] = _user(package.created_by)
    if package.approval_by:
        out["LastModifiedBy"] = _user(package.approval_by)
    return out


@operation("ListModelPackages")
async def list_packages(s: Services, m: Members) -> Members:
    if m.get("ModelPackageType") == "Unversioned":
        return {"ModelPackageSummaryList": []}  # there are none here
    group = _group(s, m["ModelPackageGroupName"]).name if "ModelPackageGroupName" in m else None
    packages = s.registry.packages(group)
    wanted = m.get("ModelApprovalStatus")
    if wanted:
        packages = [p for p in packages if p.approval.value == wanted]
    contains = m.pop("NameContains", "").lower()  # on the group's name, not the sort key
    packages = [p for p in packages if contains in p.group.lower()]
    shown, token = listing.page(packages, m, PACKAGE_FIELDS)
    return {"ModelPackageSummaryList": [_package_summary(s, p) for p in shown], "NextToken": token}


@operation("UpdateModelPackage")
async def update_package(s: Services, m: Members) -> Members:
    package = _package(s, m["ModelPackageArn"], "ModelPackageArn")
    for member in ("InferenceSpecification", "AdditionalInferenceSpecificationsToAdd",
                   "SourceUri", "ModelCard", "ModelLifeCycle"):  # fmt: skip
        if member in m:
            raise ValidationException(
                f"{member} cannot change: a model package is immutable but for its approval "
                "status, description and metadata; register a new version instead",
                field=member,
            )
    if "ModelApprovalStatus" in m:
        package, _ = await s.registry.set_approval(
            package.ref,
            ApprovalStatus(m["ModelApprovalStatus"]),
            caller.get(),
            m.get("ApprovalDescription"),
        )
    if "CustomerMetadataProperties" in m or "CustomerMetadataPropertiesToRemove" in m:
        package = s.registry.update(
            package.ref,
            metadata=m.get("CustomerMetadataProperties"),
            remove_metadata=m.get("CustomerMetadataPropertiesToRemove", ()),
            actor=caller.get(),
        )
    return {"ModelPackageArn": _arn(s, package)}


@operation("DeleteModelPackage")
async def delete_package(s: Services, m: Members) -> Members:
    s.registry.delete(_package(s, m["ModelPackageName"]).ref)
    return {}


# -- shared by CreateModel


def package_ref(s: Services, name_or_arn: str, field: str) -> str:
    """The package (GROUP/VERSION) a ModelPackageName in another operation names."""
    return _package(s, name_or_arn, field).ref


# -- helpers


def _arn(s: Services, package: ModelPackage) -> str:
    return s.arns.of(ResourceKind.MODEL_PACKAGE, package.ref)


def _group(s: Services, name_or_arn: str, field: str = "ModelPackageGroupName") -> PackageGroup:
    """A group by name or ARN; names match regardless of case, as ARNs lower-case them."""
    name = name_or_arn
    if name_or_arn.startswith("arn:"):
        kind, name = s.arns.parse(name_or_arn, field)
        if kind is not ResourceKind.MODEL_PACKAGE_GROUP:
            raise ValidationException(
                f"{name_or_arn!r} is not a model package group ARN", field=field
            )
    for group in s.registry.list_groups():
        if group.name.lower() == name.lower():
            return group
    raise NotFound(
        f"ModelPackageGroup {name_or_arn} does not exist.",
        field=field,
        resource=("model package group", name_or_arn),
    )


def _package(s: Services, name_or_arn: str, field: str = "ModelPackageName") -> ModelPackage:
    """A package by ARN (`.../model-package/group/3`) or `group/3`."""
    ref = name_or_arn
    if name_or_arn.startswith("arn:"):
        kind, ref = s.arns.parse(name_or_arn, field)
        if kind is not ResourceKind.MODEL_PACKAGE:
            raise ValidationException(f"{name_or_arn!r} is not a model package ARN", field=field)
    if "/" not in ref:
        raise ValidationException(
            f"{name_or_arn!r} names no versioned model package: give its ARN or GROUP/VERSION",
            field=field,
        )
    group_name, version = parse_ref(ref, field)
    group = _group(s, group_name, field)
    try:
        return s.registry.get(f"{group.name}/{version}", field)
    except NotFound:
        raise NotFound(
            f"ModelPackage {name_or_arn} does not exist.",
            field=field,
            resource=("model package", name_or_arn),
        ) from None


def _group_summary(s: Services, group: PackageGroup) -> Members:
    summary: Members = {
        "ModelPackageGroupName": group.name,
        "ModelPackageGroupArn": s.arns.of(ResourceKind.MODEL_PACKAGE_GROUP, group.name),
        "CreationTime": group.created_at,
        "ModelPackageGroupStatus": "Completed",
    }
    if group.description:
        summary["ModelPackageGroupDescription"] = group.description
    return summary


def _package_summary(s: Services, package: ModelPackage) -> Members:
    summary: Members = {
        "ModelPackageName": package.group,
        "ModelPackageGroupName": package.group,
        "ModelPackageVersion": package.version,
        "ModelPackageArn": _arn(s, package),
        "CreationTime": package.created_at,
        "ModelPackageStatus": "Completed",
        "ModelApprovalStatus": package.approval.value,
    }
    if package.description:
        summary["ModelPackageDescription"] = package.description
    return summary


def _container(c: dict[str, Any], index: int) -> PackageContainer:
    uri = model_data_url(c, f"InferenceSpecification.Containers.{index}")
    return PackageContainer(uri, c.get("Image"), None, dict(c.get("Environment", {})))


def _lineage(properties: dict[str, Any]) -> Lineage:
    """MetadataProperties as lineage: the commit and repository, and what generated it."""
    return Lineage(
        code_commit=properties.get("CommitId"),
        code_repository=properties.get("Repository"),
        build_id=properties.get("GeneratedBy"),
        build_system="SageMaker MetadataProperties" if properties.get("GeneratedBy") else None,
    )


def _reports(metrics: dict[str, Any]) -> list[EvaluationReport]:
    """Each {ContentType, S3Uri} file of ModelMetrics, as an attached evaluation report."""
    reports = []
    for kind in METRIC_KINDS:
        for part, source in metrics.get(kind, {}).items():
            if isinstance(source, dict) and "S3Uri" in source:
                reports.append(
                    EvaluationReport(f"{kind}.{part}", source["S3Uri"], source["ContentType"])
                )
    return reports


def _user(access_key: str) -> Members:
    return {"IamIdentity": {"PrincipalId": access_key}}
