"""Batch transform jobs on the native API: create, describe (with progress), list, stop.

The same jobs as SageMaker's CreateTransformJob; the answers add what SageMaker lacks:
records done and failed, records per second and an estimate of the time left.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from sluice import entities as e
from sluice.control.transforms import TransformService
from sluice.store.tables import utcnow


class TransformJobIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
    model: str = Field(min_length=1, max_length=63)
    input: str = Field(max_length=1024, description="s3:// or file:// prefix, or a manifest")
    output: str = Field(max_length=1024, description="Where `<name>.out` files are written")
    data_type: Literal["S3Prefix", "ManifestFile"] = "S3Prefix"
    content_type: str = Field("text/csv", max_length=256)
    compression: Literal["None", "Gzip"] = "None"
    split_type: Literal["None", "Line", "RecordIO"] = "Line"
    batch_strategy: Literal["MultiRecord", "SingleRecord"] = "MultiRecord"
    max_payload_mb: int = Field(6, ge=1, le=100)
    max_concurrent: int = Field(1, ge=1, le=100)
    accept: str | None = Field(None, max_length=256)
    assemble_with: Literal["None", "Line"] = "Line"
    instance_type: str = Field("ml.m5.large", max_length=64)
    instance_count: int = Field(1, ge=1, le=100)
    environment: dict[str, str] = Field(default_factory=dict, max_length=16)
    timeout_s: int = Field(600, ge=1, le=3600)
    max_retries: int = Field(3, ge=0, le=3)
    on_bad_record: Literal["fail", "continue"] = "fail"
    input_filter: str = Field("$", max_length=63, description="JSONPath on each input record")
    join_source: Literal["None", "Input"] = Field("None", description="Input: join answers")
    output_filter: str = Field("$", max_length=63, description="JSONPath on each output")

    def spec(self) -> e.TransformSpec:
        fields = self.model_dump(exclude={"name", "model", "input", "output"})
        return e.TransformSpec(input_uri=self.input, output_path=self.output, **fields)


class TransformProgress(BaseModel):
    files: int
    files_done: int
    chunks: int
    chunks_done: int
    records: int = Field(description="Lines in the input (0 until it is planned)")
    records_done: int
    records_failed: int
    records_per_s: float | None = None
    eta_s: float | None = Field(None, description="Estimated seconds left, while running")


class TransformJobOut(BaseModel):
    name: str
    model: str
    status: e.TransformStatus
    failure_reason: str | None
    input: str
    output: str
    summary: str = Field(description="The job's summary file, written when it ends")
    spec: dict[str, Any]
    progress: TransformProgress
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None

    @classmethod
    def of(cls, job: e.TransformJob, counts: e.TransformCounts) -> TransformJobOut:
        end = job.ended_at or utcnow()
        elapsed = (end - job.started_at).total_seconds() if job.started_at else 0.0
        rate = counts.records_done / elapsed if elapsed > 0 and counts.records_done else None
        left = max(counts.records - counts.records_done - counts.records_failed, 0)
        eta = left / rate if rate and not job.status.finished and counts.records else None
        spec = {k: v for k, v in vars(job.spec).items() if k not in ("input_uri", "output_path")}
        return cls(
            name=job.name,
            model=job.model_name,
            status=job.status,
            failure_reason=job.failure_reason,
            input=job.spec.input_uri,
            output=job.spec.output_path,
            summary=f"{job.spec.output_path.rstrip('/')}/{job.name}.summary.json",
            spec=spec,
            progress=TransformProgress(
                **vars(counts),
                records_per_s=round(rate, 1) if rate else None,
                eta_s=round(eta, 1) if eta is not None else None,
            ),
            created_at=job.created_at,
            started_at=job.started_at,
            ended_at=job.ended_at,
        )


def transform_router(transforms: TransformService, errors: dict[int | str, Any]) -> APIRouter:
    router = APIRouter(responses=errors, tags=["transform jobs"])

    async def out(job: e.TransformJob) -> TransformJobOut:
        return TransformJobOut.of(job, await asyncio.to_thread(transforms.counts, job))

    @router.post("/transform-jobs", status_code=201)
    async def create(body: TransformJobIn) -> TransformJobOut:
        return await out(transforms.create(body.name, body.model, body.spec(), {}))

    @router.get("/transform-jobs")
    async def list_jobs(status: e.TransformStatus | None = None) -> list[TransformJobOut]:
        jobs = await asyncio.to_thread(transforms.list, status)
        return [await out(job) for job in jobs]

    @router.get("/transform-jobs/{name}")
    async def describe(name: str) -> TransformJobOut:
        return await out(await asyncio.to_thread(transforms.get, name))

    @router.post("/transform-jobs/{name}/stop")
    async def stop(name: str) -> TransformJobOut:
        return await out(await transforms.stop(name))

    return router
