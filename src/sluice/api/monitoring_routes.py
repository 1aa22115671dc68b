"""Monitoring schedules and their executions: create, read, stop, start, run now, delete;
an execution's report."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from sluice import entities as e
from sluice.api.schemas import StoredId
from sluice.control.monitoring import MonitoringService, ScheduleSpec
from sluice.errors import NotFound, ValidationError


class JobIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: e.MonitoringType = e.MonitoringType.DATA_QUALITY
    endpoint: str
    baseline: str = Field(
        pattern=r"^[^\x00]+$",
        max_length=4096,
        description="Folder (on the server) with statistics.json and constraints.json, as "
        "`sluice monitor baseline` writes them; model quality needs constraints.json.",
    )
    variant: str | None = Field(None, description="One variant's capture; default: all.")
    window_start: str | None = Field(
        None, description="ISO-8601 duration from the scheduled time (-PT2H); default: one "
        "period back."
    )  # fmt: skip
    window_end: str = Field("-PT0S", description="ISO-8601 duration from the scheduled time.")
    problem_type: str | None = Field(
        None, description="Model quality: BinaryClassification, MulticlassClassification or "
        "Regression."
    )  # fmt: skip
    inference_attribute: str | None = None
    probability_attribute: str | None = None
    probability_threshold: float | None = None
    positive_label: str = "1"
    min_rows: int = Field(100, description="Model quality: joined rows needed to judge.")
    max_runtime_s: int = 3600

    def to_entity(self) -> e.MonitoringJob:
        return e.MonitoringJob(
            self.kind, self.endpoint, str(Path(self.baseline).expanduser().resolve()),
            self.variant, self.window_start, self.window_end, self.problem_type,
            self.inference_attribute, self.probability_attribute, self.probability_threshold,
            self.positive_label, self.min_rows, self.max_runtime_s,
        )  # fmt: skip


class ScheduleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    schedule: str = Field(
        description="cron(0 * ? * * *), a five-field cron expression (UTC), "
        "rate(N minutes|hours|days), or NOW for one run."
    )
    job: JobIn
    missed_runs: str = Field(
        "run", description="After downtime: run every missed time, or skip to the last."
    )
    webhook_url: str | None = Field(None, description="Receives alert-state changes.")


class ScheduleOut(BaseModel):
    name: str
    schedule: str
    status: str
    job: dict[str, Any]
    missed_runs: str
    alert_state: str
    webhook_url: str | None
    job_definition: str | None
    last_scheduled_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, s: e.MonitoringSchedule) -> ScheduleOut:
        from sluice.store.monitoring_repo import job_dict

        return cls(
            name=s.name,
            schedule=s.expression,
            status=s.status.value,
            job=job_dict(s.job),
            missed_runs=s.missed_runs,
            alert_state=s.alert_state,
            webhook_url=s.webhook_url,
            job_definition=s.job_definition,
            last_scheduled_at=s.last_scheduled_at,
            created_at=s.created_at,
            updated_at=s.updated_at,
        )


class ExecutionOut(BaseModel):
    id: int
    schedule: str
    endpoint: str
    kind: str
    scheduled_at: datetime
    status: str
    window_start: datetime | None
    window_end: datetime | None
    counts: dict[str, Any]
    summary: dict[str, Any]
    report_dir: str | None
    failure_reason: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, x: e.MonitoringExecution) -> ExecutionOut:
        return cls(
            id=x.id,
            schedule=x.schedule,
            endpoint=x.endpoint,
            kind=x.kind.value,
            scheduled_at=x.scheduled_at,
            status=x.status.value,
            window_start=x.window_start,
            window_end=x.window_end,
            counts=x.counts,
            summary=x.summary,
            report_dir=x.report_dir,
            failure_reason=x.failure_reason,
            created_at=x.created_at,
            updated_at=x.updated_at,
        )


def monitoring_router(
    monitoring: MonitoringService, responses: dict[int | str, dict[str, Any]]
) -> APIRouter:
    router = APIRouter(responses=responses, tags=["monitoring"])

    @router.post("/monitoring-schedules", status_code=201)
    def create_schedule(body: ScheduleCreate) -> ScheduleOut:
        spec = ScheduleSpec(
            body.name, body.schedule, body.job.to_entity(), body.missed_runs, body.webhook_url
        )
        return ScheduleOut.of(monitoring.create(spec, keep_baseline=True))

    @router.get("/monitoring-schedules")
    def list_schedules(endpoint: str | None = None) -> list[ScheduleOut]:
        return [ScheduleOut.of(s) for s in monitoring.find(endpoint)]

    @router.get("/monitoring-schedules/{name}")
    def get_schedule(name: str) -> ScheduleOut:
        return ScheduleOut.of(monitoring.get(name))

    @router.post("/monitoring-schedules/{name}/stop")
    def stop_schedule(name: str) -> ScheduleOut:
        return ScheduleOut.of(monitoring.stop(name))

    @router.post("/monitoring-schedules/{name}/start")
    def start_schedule(name: str) -> ScheduleOut:
        return ScheduleOut.of(monitoring.start(name))

    @router.post("/monitoring-schedules/{name}/run", status_code=202)
    def run_now(name: str) -> ExecutionOut:
        """Run the schedule's check now, beside its own runs; poll the execution."""
        return ExecutionOut.of(monitoring.run_now(name))

    @router.delete("/monitoring-schedules/{name}", status_code=204)
    def delete_schedule(name: str) -> Response:
        monitoring.delete(name)
        return Response(status_code=204)

    @router.get("/monitoring-schedules/{name}/executions")
    def list_executions(
        name: str,
        status: str | None = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    ) -> list[ExecutionOut]:
        statuses = [_status(status)] if status else None
        return [ExecutionOut.of(x) for x in monitoring.executions(name, None, statuses, limit)]

    @router.get("/monitoring-executions/{execution_id}")
    def get_execution(execution_id: StoredId) -> ExecutionOut:
        return ExecutionOut.of(monitoring.execution(execution_id))

    @router.get("/monitoring-executions/{execution_id}/{file}", response_model=None)
    def execution_file(execution_id: StoredId, file: str) -> Response:
        """One of the execution's files: report.html, report.json, statistics.json or
        constraint_violations.json."""
        allowed = {
            "report.html": "text/html; charset=utf-8",
            "report.json": "application/json",
            "statistics.json": "application/json",
            "constraint_violations.json": "application/json",
        }
        if file not in allowed:
            raise ValidationError(f"file is one of {', '.join(allowed)}", field="file")
        execution = monitoring.execution(execution_id)
        path = Path(execution.report_dir or "") / file
        if not execution.report_dir or not path.is_file():
            raise NotFound(f"execution {execution_id} has no {file} (yet)", field="file")
        body = path.read_bytes()
        if file == "report.html":
            return HTMLResponse(body)
        return Response(body, media_type=allowed[file])

    return router


def _status(text: str) -> e.ExecutionStatus:
    try:
        return e.ExecutionStatus(text)
    except ValueError:
        raise ValidationError(
            f"status is one of {', '.join(s.value for s in e.ExecutionStatus)}", field="status"
        ) from None
