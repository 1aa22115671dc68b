"""Variant instances the gateway wraps: what a request may name, and the pool beneath."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sluice.errors import ValidationError
from sluice.types import InvokeRequest
from sluice.workers.client import Answer, ModelTarget
from sluice.workers.file_request import FileRequest

if TYPE_CHECKING:
    from sluice.backends.base import VariantInstances
    from sluice.gateway.routing import VariantBackend

TARGET_MODEL = "TargetModel"
TARGET_CONTAINER = "TargetContainerHostname"


def target_of(request: InvokeRequest, endpoint: str, backend: VariantBackend) -> str | None:
    """The model or container `request` names, if `backend` takes one; SageMaker's
    error for a header the variant does not take."""
    takes = backend.takes
    if request.target_model is not None and takes != TARGET_MODEL:
        raise ValidationError(
            f"Endpoint {endpoint} is not a multi-model endpoint and does not support target "
            "model header.",
            field=TARGET_MODEL,
        )
    if request.target_container is not None and takes != TARGET_CONTAINER:
        raise ValidationError(
            f"Endpoint {endpoint} is not a multi-container endpoint with Direct invocation "
            "and does not support the target container hostname header.",
            field=TARGET_CONTAINER,
        )
    if takes is None:
        return None
    return request.target_model if takes == TARGET_MODEL else request.target_container


class WrappedInstances:
    """A variant's instances behind a wrapper that reads what requests name; all but
    `invoke` is the pool's."""

    takes: str | None = None

    def __init__(self, pool: VariantInstances) -> None:
        self.pool = pool

    async def invoke(
        self, body: bytes, content_type: str, accept: str, target: str | None = None
    ) -> Answer:
        return await self.pool.invoke(body, content_type, accept)

    async def invoke_model(
        self,
        target: ModelTarget,
        body: bytes,
        content_type: str,
        accept: str,
        timeout: float | None = None,
    ) -> Answer:
        return await self.pool.invoke_model(target, body, content_type, accept, timeout)

    async def invoke_file(self, request: FileRequest, timeout: float) -> str:
        return await self.pool.invoke_file(request, timeout)

    async def transform(self, chunk: bytes, timeout: float) -> dict[str, Any]:
        return await self.pool.transform(chunk, timeout)

    @property
    def on_empty(self) -> Callable[[], None] | None:
        return self.pool.on_empty

    @on_empty.setter
    def on_empty(self, value: Callable[[], None] | None) -> None:
        self.pool.on_empty = value

    @property
    def instance_count(self) -> int:
        return self.pool.instance_count

    @property
    def loaded_models(self) -> int:
        return self.pool.loaded_models

    async def scale(self, count: int) -> None:
        await self.pool.scale(count)

    async def drain(self, timeout: float) -> None:
        await self.pool.drain(timeout)

    async def stop(self) -> None:
        await self.pool.stop()

    @property
    def pids(self) -> list[int]:
        return self.pool.pids

    def usage(self) -> dict[str, tuple[float, float]]:
        return self.pool.usage()

    @property
    def restarts(self) -> int:
        return self.pool.restarts
