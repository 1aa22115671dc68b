"""Asynchronous invocations on the native API: submit, status (with queue position), cancel.

The SageMaker runtime's InvokeEndpointAsync queues the same requests; these routes add
what SageMaker lacks (a status by inference id, cancel, priority).
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from sluice import entities as e
from sluice.api.schemas import UploadOut
from sluice.control.async_inference import (
    DEFAULT_TIMEOUT_S,
    DEFAULT_TTL_S,
    AsyncInference,
    AsyncRequest,
)
from sluice.control.uploads import UploadStore
from sluice.errors import ValidationError

InferenceId = Annotated[str, Path(min_length=1, max_length=64)]


class AsyncInvocationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    input_location: str = Field(
        max_length=1024, description="s3:// or file:// URI of the request body"
    )
    content_type: str = Field("application/octet-stream", max_length=1024)
    accept: str = Field("*/*", max_length=1024)
    custom_attributes: str | None = Field(None, max_length=1024)
    inference_id: str | None = Field(None, min_length=1, max_length=64)
    ttl_s: int = Field(DEFAULT_TTL_S, ge=60, le=21600, description="RequestTTLSeconds")
    timeout_s: int = Field(DEFAULT_TIMEOUT_S, ge=1, le=3600, description="InvocationTimeoutSeconds")
    priority: int = Field(0, ge=-1000, le=1000, description="Higher runs first")


class AsyncInvocationOut(BaseModel):
    inference_id: str
    endpoint: str
    status: e.WorkStatus
    position: int | None = Field(None, description="Requests ahead of this one (Queued only)")
    priority: int
    attempts: int
    input_location: str
    output_location: str
    failure_location: str | None
    content_type: str | None = Field(None, description="The answer's, once Succeeded")
    variant: str | None = None
    failure_reason: str | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    expires_at: datetime | None = None


def invocation_out(item: e.WorkItem, position: int | None) -> AsyncInvocationOut:
    p, r = item.payload, item.result
    return AsyncInvocationOut(
        inference_id=item.key,
        endpoint=p["endpoint"],
        status=item.status,
        position=position,
        priority=item.priority,
        attempts=item.attempts,
        input_location=p["input_location"],
        output_location=p["output_location"],
        failure_location=r.get("failure_location") or p["failure_location"],
        content_type=r.get("content_type"),
        variant=r.get("variant") or None,
        failure_reason=item.failure_reason,
        created_at=item.created_at,
        started_at=item.started_at,
        finished_at=item.finished_at,
        expires_at=item.expires_at,
    )


def async_router(
    asynchronous: AsyncInference, inputs: UploadStore, errors: dict[int | str, Any]
) -> APIRouter:
    router = APIRouter(responses=errors, tags=["async invocations"])

    @router.post(
        "/async-inputs",
        status_code=201,
        openapi_extra={
            "requestBody": {
                "content": {
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
                }
            }
        },
    )
    async def upload_input(request: Request) -> UploadOut:
        """An async request's body from the client's disk; name the returned `uri` as
        the request's input location. `sluice.Client` and the CLI do this on their own."""
        return UploadOut(**asdict(await inputs.receive(request.stream())))

    @router.post("/endpoints/{name}/async-invocations", status_code=202)
    async def submit(name: str, body: AsyncInvocationIn) -> AsyncInvocationOut:
        accepted = await asynchronous.submit(
            AsyncRequest(
                name,
                body.input_location,
                body.content_type,
                body.accept,
                body.custom_attributes,
                body.inference_id,
                body.ttl_s,
                body.timeout_s,
                body.priority,
            ),
        )
        position = await asyncio.to_thread(asynchronous.queue.position, accepted.item)
        return invocation_out(accepted.item, position)

    @router.get("/endpoints/{name}/async-invocations/{inference_id}")
    async def status(name: str, inference_id: InferenceId) -> AsyncInvocationOut:
        item, position = await asyncio.to_thread(asynchronous.status, name, inference_id)
        return invocation_out(item, position)

    @router.get(
        "/endpoints/{name}/async-invocations/{inference_id}/output",
        response_class=FileResponse,
        responses={200: {"content": {"application/octet-stream": {}}}},
    )
    async def output(name: str, inference_id: InferenceId) -> FileResponse:
        """The answer of a Succeeded request (or the reason of a failed one), as written."""
        item, _ = await asyncio.to_thread(asynchronous.status, name, inference_id)
        if not item.status.finished or item.status is e.WorkStatus.CANCELLED:
            raise ValidationError(
                f"async invocation {inference_id!r} is {item.status.value}: it has no output",
                field="InferenceId",
            )
        location = str(
            item.result.get("output_location") or item.result.get("failure_location") or ""
        )
        path = await asyncio.to_thread(asynchronous.fetch_output, location)
        media = item.result.get("content_type") or "text/plain"
        return FileResponse(path, media_type=media)

    @router.delete("/endpoints/{name}/async-invocations/{inference_id}")
    async def cancel(name: str, inference_id: InferenceId) -> AsyncInvocationOut:
        item = await asyncio.to_thread(asynchronous.cancel, name, inference_id)
        return invocation_out(item, None)

    return router
