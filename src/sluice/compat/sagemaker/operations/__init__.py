"""SageMaker operations, one function each: request members in, response members out.

Each is a thin adapter over the services the native API uses; the members were already
checked against the service model. Modules register their functions with `operation`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from sluice.compat.sagemaker.arns import Arns
from sluice.compat.sagemaker.shapes import ValidationException
from sluice.control.async_inference import AsyncInference
from sluice.control.deployments import DeploymentService
from sluice.control.endpoints import EndpointService
from sluice.control.experiments import ExperimentService
from sluice.control.jobs import JobService
from sluice.control.monitoring import MonitoringService
from sluice.control.pipelines import PipelineService
from sluice.control.registry import RegistryService
from sluice.control.tags import TagService, check_tags
from sluice.control.transforms import TransformService
from sluice.entities import Tag
from sluice.settings import Settings

Members = dict[str, Any]


@dataclass(frozen=True)
class Services:
    endpoints: EndpointService
    deployments: DeploymentService
    experiments: ExperimentService
    registry: RegistryService
    tags: TagService
    arns: Arns
    settings: Settings
    monitoring: MonitoringService
    asynchronous: AsyncInference
    transforms: TransformService
    jobs: JobService
    pipelines: PipelineService


Handler = Callable[[Services, Members], Awaitable[Members]]
caller: ContextVar[str | None] = ContextVar("caller", default=None)
"""The access key id of the request being handled (recorded as who changed a thing)."""
OPERATIONS: dict[str, Handler] = {}


def operation(name: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        OPERATIONS[name] = handler
        return handler

    return register


def tags_of(m: Members) -> list[Tag]:
    """The request's Tags, checked before anything is created."""
    tags = [Tag(t["Key"], t["Value"]) for t in m.get("Tags", ())]
    check_tags(tags)
    return tags


def model_data_url(container: Members, where: str) -> str:
    """Where a container's model is: ModelDataUrl or ModelDataSource's S3 URI (required)."""
    source = container.get("ModelDataSource", {}).get("S3DataSource", {})
    uri = container.get("ModelDataUrl") or source.get("S3Uri")
    if not uri:
        raise ValidationException(
            f"{where}.ModelDataUrl is required: sluice loads each model from an artifact "
            "(a directory or model.tar.gz: a path, file:// or s3:// URI)",
            field=f"{where}.ModelDataUrl",
        )
    return str(uri)


def load() -> dict[str, Handler]:
    """Every operation, registered by importing its module."""
    from sluice.compat.sagemaker.operations import (  # noqa: F401
        endpoint_configs,
        endpoints,
        experiments,
        jobs,
        model_packages,
        models,
        monitoring,
        pipelines,
        tags,
        transform_jobs,
    )

    return OPERATIONS
