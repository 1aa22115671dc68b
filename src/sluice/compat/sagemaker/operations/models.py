"""CreateModel, DescribeModel, ListModels, DeleteModel."""

from __future__ import annotations

from typing import Any

from sluice.compat.sagemaker import listing
from sluice.compat.sagemaker.operations import (
    Members,
    Services,
    model_data_url,
    operation,
    tags_of,
)
from sluice.compat.sagemaker.operations.model_packages import package_ref
from sluice.compat.sagemaker.shapes import ValidationException
from sluice.entities import Model, ResourceKind
from sluice.runtimes.container_manifest import DIRECT, SERIAL, ContainerDef

STORED = ("PrimaryContainer", "Containers", "ExecutionRoleArn", "VpcConfig",
          "EnableNetworkIsolation", "InferenceExecutionConfig")  # fmt: skip
"""Members kept as given and answered back by DescribeModel."""

FIELDS: listing.Fields[Model] = listing.Fields(
    name=lambda m: m.name, created=lambda m: m.created_at
)


@operation("CreateModel")
async def create_model(s: Services, m: Members) -> Members:
    if len(m.get("Containers") or ()) > 1 and "PrimaryContainer" not in m:
        return await _create_with_containers(s, m)
    container, where = _container(m)
    if container.get("ModelPackageName"):
        return await _create_from_package(s, m, container, where)
    multi_model = container.get("Mode") == "MultiModel"
    uri = model_data_url(container, where)
    if multi_model and not uri.endswith("/"):
        uri += "/"  # a prefix: the models are the objects under it
    source = container.get("ModelDataSource", {}).get("S3DataSource", {})
    if source.get("S3DataType") == "S3Prefix" and source.get("CompressionType") == "Gzip":
        raise ValidationException(
            f"{where}.ModelDataSource: an S3Prefix names a directory and is not compressed",
            field=f"{where}.ModelDataSource",
        )
    tags = tags_of(m)
    model = await s.endpoints.create_model(
        m["ModelName"],
        uri,
        image=container.get("Image"),
        environment=container.get("Environment"),
        details={k: m[k] for k in STORED if k in m},
        multi_model=multi_model,
    )
    arn = s.arns.of(ResourceKind.MODEL, model.name)
    if tags:
        s.tags.add(ResourceKind.MODEL, model.name, tags)
    return {"ModelArn": arn}


async def _create_with_containers(s: Services, m: Members) -> Members:
    """A model of several containers: an inference pipeline (Serial) or Direct."""
    mode = m.get("InferenceExecutionConfig", {}).get("Mode", SERIAL)
    containers = []
    for index, c in enumerate(m["Containers"], 1):
        where = f"Containers.{index}"
        for refused in ("ModelPackageName", "Mode"):
            if refused in c and not (refused == "Mode" and c[refused] == "SingleModel"):
                raise ValidationException(
                    f"{where}.{refused}: a container of several takes its own model data "
                    "(SingleModel)",
                    field=f"{where}.{refused}",
                )
        hostname = c.get("ContainerHostname")
        if mode == DIRECT and not hostname:
            raise ValidationException(
                f"{where}.ContainerHostname is required with InferenceExecutionConfig.Mode "
                "Direct: requests name their container by it",
                field=f"{where}.ContainerHostname",
            )
        containers.append(
            ContainerDef(
                hostname or f"container-{index}",
                model_data_url(c, where),
                c.get("Image"),
                c.get("Environment") or {},
            )
        )
    model = await s.endpoints.create_containers_model(
        m["ModelName"], containers, mode, details={k: m[k] for k in STORED if k in m}
    )
    tags = tags_of(m)
    if tags:
        s.tags.add(ResourceKind.MODEL, model.name, tags)
    return {"ModelArn": s.arns.of(ResourceKind.MODEL, model.name)}


async def _create_from_package(
    s: Services, m: Members, container: dict[str, Any], where: str
) -> Members:
    """A model from a registry package: the package says what to load and how."""
    field = f"{where}.ModelPackageName"
    for member in ("ModelDataUrl", "ModelDataSource", "Image"):
        if member in container:
            raise ValidationException(
                f"{where}.{member}: a model made from ModelPackageName takes it from the package",
                field=f"{where}.{member}",
            )
    ref = package_ref(s, container["ModelPackageName"], field)
    tags = tags_of(m)
    model = await s.registry.create_model(
        m["ModelName"], ref, details={k: m[k] for k in STORED if k in m}
    )
    if tags:
        s.tags.add(ResourceKind.MODEL, model.name, tags)
    return {"ModelArn": s.arns.of(ResourceKind.MODEL, model.name)}


@operation("DescribeModel")
async def describe_model(s: Services, m: Members) -> Members:
    model = s.endpoints.get_model(m["ModelName"])
    stored = model.details
    out: Members = {
        "ModelName": model.name,
        "ModelArn": s.arns.of(ResourceKind.MODEL, model.name),
        "CreationTime": model.created_at,
        "EnableNetworkIsolation": stored.get("EnableNetworkIsolation", False),
        **{k: stored[k] for k in STORED if k in stored},
    }
    if "PrimaryContainer" not in stored and "Containers" not in stored:
        out["PrimaryContainer"] = {  # created through the native API
            "Image": model.image,
            "ModelDataUrl": model.artifact_uri,
            "Environment": model.environment,
        }
    return out


@operation("ListModels")
async def list_models(s: Services, m: Members) -> Members:
    shown, token = listing.page(s.endpoints.list_models(), m, FIELDS)
    return {
        "Models": [
            {
                "ModelName": model.name,
                "ModelArn": s.arns.of(ResourceKind.MODEL, model.name),
                "CreationTime": model.created_at,
            }
            for model in shown
        ],
        "NextToken": token,
    }


@operation("DeleteModel")
async def delete_model(s: Services, m: Members) -> Members:
    s.endpoints.delete_model(m["ModelName"])
    return {}


def _container(m: Members) -> tuple[dict[str, Any], str]:
    primary, containers = m.get("PrimaryContainer"), m.get("Containers")
    if primary is not None and containers is not None:
        raise ValidationException(
            "give PrimaryContainer or Containers, not both", field="PrimaryContainer"
        )
    if primary is not None:
        return primary, "PrimaryContainer"
    if not containers:
        raise ValidationException(
            "PrimaryContainer (or Containers) is required: it says where the model is",
            field="PrimaryContainer",
        )
    return containers[0], "Containers.1"
