"""Processing and training jobs, pipelines and their executions on the native API.

Jobs are created through the SageMaker API (their requests are SageMaker's); here they
are listed, described with their log, and stopped. Pipelines are created from a
SageMaker pipeline definition, started with parameters, and their executions described
step by step, stopped, retried, and asked why a step missed the cache.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from sluice import entities as e
from sluice.control.jobs import JobService, image_of
from sluice.control.pipelines import PipelineService
from sluice.pipelines.definition import parse


class JobOut(BaseModel):
    kind: e.JobKind
    name: str
    status: e.JobStatus
    secondary_status: str | None
    failure_reason: str | None
    image: str
    metrics: dict[str, float] = Field(description="The last value of each metric in the log")
    model_artifacts: str | None
    attempts: int
    folder: str = Field(description="The job's folder: its /opt/ml tree (ml/) and output.log")
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    duration_s: float | None
    request: dict[str, Any] = Field(description="The SageMaker request, as sent")

    @classmethod
    def of(cls, job: e.Job) -> JobOut:
        details = job.details
        end = job.ended_at
        return cls(
            kind=job.kind,
            name=job.name,
            status=job.status,
            secondary_status=job.secondary_status,
            failure_reason=job.failure_reason,
            image=image_of(job.kind, job.request),
            metrics={k: v["value"] for k, v in details.get("metrics", {}).items()},
            model_artifacts=details.get("model_artifacts"),
            attempts=int(details.get("attempts", 1)),
            folder=str(details.get("folder", "")),
            created_at=job.created_at,
            started_at=job.started_at,
            ended_at=job.ended_at,
            duration_s=(
                round((end - job.started_at).total_seconds(), 3) if end and job.started_at else None
            ),
            request=job.request,
        )


class JobLog(BaseModel):
    lines: list[str]


class PipelineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,255}$")
    definition: dict[str, Any] = Field(description="A SageMaker pipeline definition")
    role_arn: str = Field("arn:aws:iam::000000000000:role/sluice", max_length=2048)
    description: str | None = Field(None, max_length=3072)
    parallelism: int | None = Field(None, ge=1, le=1000)


class PipelineUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    definition: dict[str, Any] | None = None
    description: str | None = Field(None, max_length=3072)
    parallelism: int | None = Field(None, ge=1, le=1000)


class PipelineStepOut(BaseModel):
    name: str
    type: str
    depends_on: list[str]
    condition: str | None
    cached: bool


class PipelineOut(BaseModel):
    name: str
    description: str | None
    version: int
    parameters: dict[str, Any] = Field(description="Each parameter's default")
    steps: list[PipelineStepOut]
    parallelism: int | None
    created_at: datetime
    updated_at: datetime
    last_run_at: datetime | None

    @classmethod
    def of(cls, pipeline: e.Pipeline) -> PipelineOut:
        definition = parse(pipeline.definition)
        return cls(
            name=pipeline.name,
            description=pipeline.description,
            version=pipeline.version,
            parameters={p.name: p.default for p in definition.parameters.values()},
            steps=[
                PipelineStepOut(
                    name=s.name,
                    type=s.type,
                    depends_on=sorted(s.depends_on),
                    condition=s.condition,
                    cached=s.cache_enabled,
                )
                for s in definition.steps.values()
            ],
            parallelism=pipeline.parallelism,
            created_at=pipeline.created_at,
            updated_at=pipeline.updated_at,
            last_run_at=pipeline.last_run_at,
        )


class StartIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    parameters: dict[str, str | int | float | bool] = Field(default_factory=dict)
    description: str | None = Field(None, max_length=3072)
    parallelism: int | None = Field(None, ge=1, le=1000)
    steps: list[str] | None = Field(
        None, min_length=1, max_length=50, description="Run only these steps (a selective run)"
    )
    source: str | None = Field(
        None, description="The execution whose results the steps not run are taken from"
    )


class StepRunOut(BaseModel):
    name: str
    type: str
    status: e.StepStatus
    failure_reason: str | None
    attempts: int
    cached_from: str | None = Field(description="The execution whose run was reused")
    reused_from: str | None = Field(
        None, description="The execution whose results a selective run took, not run"
    )
    job: str | None = Field(description="The job, model or transform job the step ran")
    outcome: str | None = Field(description="A condition's outcome (True or False)")
    started_at: datetime
    ended_at: datetime | None

    @classmethod
    def of(cls, step: e.ExecutionStep) -> StepRunOut:
        return cls(
            name=step.name,
            type=step.type,
            status=step.status,
            failure_reason=step.failure_reason,
            attempts=step.attempts,
            cached_from=step.cached_from,
            reused_from=step.reused_from,
            job=step.metadata.get("ResourceName"),
            outcome=step.metadata.get("Condition", {}).get("Outcome"),
            started_at=step.started_at,
            ended_at=step.ended_at,
        )


class PipelineExecutionOut(BaseModel):
    id: str
    pipeline: str
    status: e.PipelineExecutionStatus
    failure_reason: str | None
    parameters: dict[str, Any]
    folder: str = Field(description="One folder per step under it")
    created_at: datetime
    ended_at: datetime | None
    steps: list[StepRunOut]


class WhyMissed(BaseModel):
    reasons: list[str]


def pipeline_router(
    jobs: JobService, pipelines: PipelineService, errors: dict[int | str, Any]
) -> APIRouter:
    router = APIRouter(responses=errors)

    # -- jobs

    @router.get("/jobs", tags=["jobs"])
    async def list_jobs(
        kind: e.JobKind | None = None, status: e.JobStatus | None = None
    ) -> list[JobOut]:
        kinds = [kind] if kind else list(e.JobKind)
        found: list[e.Job] = []
        for chosen in kinds:
            found += await asyncio.to_thread(jobs.list, chosen, status)
        return [JobOut.of(job) for job in sorted(found, key=lambda j: j.created_at)]

    @router.get("/jobs/{kind}/{name}", tags=["jobs"])
    async def describe_job(kind: e.JobKind, name: str) -> JobOut:
        return JobOut.of(await asyncio.to_thread(jobs.get, kind, name))

    @router.get("/jobs/{kind}/{name}/log", tags=["jobs"])
    async def job_log(
        kind: e.JobKind, name: str, lines: int = Query(200, ge=1, le=10000)
    ) -> JobLog:
        job = await asyncio.to_thread(jobs.get, kind, name)
        return JobLog(lines=await asyncio.to_thread(jobs.log, job, lines))

    @router.post("/jobs/{kind}/{name}/stop", tags=["jobs"])
    async def stop_job(kind: e.JobKind, name: str) -> JobOut:
        return JobOut.of(await jobs.stop(kind, name))

    # -- pipelines

    @router.post("/pipelines", status_code=201, tags=["pipelines"])
    async def create_pipeline(body: PipelineIn) -> PipelineOut:
        created = pipelines.create(
            body.name,
            json.dumps(body.definition),
            body.role_arn,
            description=body.description,
            parallelism=body.parallelism,
        )
        return PipelineOut.of(created)

    @router.get("/pipelines", tags=["pipelines"])
    async def list_pipelines() -> list[PipelineOut]:
        return [PipelineOut.of(p) for p in await asyncio.to_thread(pipelines.list)]

    @router.put("/pipelines/{name}", tags=["pipelines"])
    async def update_pipeline(name: str, body: PipelineUpdate) -> PipelineOut:
        updated = pipelines.update(
            name,
            json.dumps(body.definition) if body.definition is not None else None,
            description=body.description,
            parallelism=body.parallelism,
        )
        return PipelineOut.of(updated)

    @router.get("/pipelines/{name}", tags=["pipelines"])
    async def describe_pipeline(name: str) -> PipelineOut:
        return PipelineOut.of(await asyncio.to_thread(pipelines.get, name))

    @router.post("/pipelines/{name}/executions", status_code=201, tags=["pipelines"])
    async def start(name: str, body: StartIn) -> PipelineExecutionOut:
        given = {
            k: json.dumps(v) if isinstance(v, bool) else str(v) for k, v in body.parameters.items()
        }
        source = await asyncio.to_thread(pipelines.execution, body.source) if body.source else None
        started = pipelines.start(
            name,
            given,
            description=body.description,
            parallelism=body.parallelism,
            selected=body.steps,
            source=source,
        )
        return await execution_out(started)

    @router.get("/pipelines/{name}/executions", tags=["pipelines"])
    async def executions(name: str) -> list[PipelineExecutionOut]:
        found = await asyncio.to_thread(pipelines.executions, name)
        return [await execution_out(x) for x in sorted(found, key=lambda x: x.created_at)]

    @router.get("/executions/{execution_id}", tags=["pipelines"])
    async def describe_execution(execution_id: str) -> PipelineExecutionOut:
        return await execution_out(await asyncio.to_thread(pipelines.execution, execution_id))

    @router.post("/executions/{execution_id}/stop", tags=["pipelines"])
    async def stop_execution(execution_id: str) -> PipelineExecutionOut:
        return await execution_out(await pipelines.stop(execution_id))

    @router.post("/executions/{execution_id}/retry", tags=["pipelines"])
    async def retry_execution(execution_id: str) -> PipelineExecutionOut:
        return await execution_out(pipelines.retry(execution_id))

    @router.get("/executions/{execution_id}/steps/{step}/why-missed", tags=["pipelines"])
    async def why_missed(execution_id: str, step: str) -> WhyMissed:
        return WhyMissed(reasons=await asyncio.to_thread(pipelines.why_missed, execution_id, step))

    async def execution_out(execution: e.PipelineExecution) -> PipelineExecutionOut:
        steps = await asyncio.to_thread(pipelines.steps, execution.id)
        return PipelineExecutionOut(
            id=execution.id,
            pipeline=execution.pipeline,
            status=execution.status,
            failure_reason=execution.failure_reason,
            parameters=execution.parameters,
            folder=str(pipelines.execution_folder(execution)),
            created_at=execution.created_at,
            ended_at=execution.ended_at,
            steps=[StepRunOut.of(s) for s in sorted(steps, key=lambda s: s.started_at)],
        )

    return router
