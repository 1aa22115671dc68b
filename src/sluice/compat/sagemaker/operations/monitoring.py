"""Model Monitor's operations: data- and model-quality job definitions, monitoring
schedules and their executions.

A job definition's container fields (image, resources, role, network, output) are
recorded and described back as sent; the analysis itself is sluice's built-in one. The
baseline's statistics and constraints (S3 or local URIs) are copied when the definition
is created, so later edits of those objects do not change running schedules.
"""

from __future__ import annotations

import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sluice.compat.sagemaker import listing
from sluice.compat.sagemaker.operations import Members, Services, operation, tags_of
from sluice.compat.sagemaker.shapes import ValidationException
from sluice.control.monitoring import ScheduleSpec
from sluice.entities import (
    MonitoringExecution,
    MonitoringJob,
    MonitoringJobDefinition,
    MonitoringSchedule,
    MonitoringType,
    ResourceKind,
)
from sluice.errors import ValidationError

SCHEDULES: listing.Fields[MonitoringSchedule] = listing.Fields(
    name=lambda x: x.name,
    created=lambda x: x.created_at,
    modified=lambda x: x.updated_at,
    status=lambda x: x.status.value,
)
EXECUTIONS: listing.Fields[MonitoringExecution] = listing.Fields(
    name=lambda x: f"{x.schedule}/{x.id:012d}",
    created=lambda x: x.created_at,
    modified=lambda x: x.updated_at,
    status=lambda x: x.status.value,
)
BY_SCHEDULED_TIME: listing.Fields[MonitoringExecution] = listing.Fields(
    name=EXECUTIONS.name,
    created=lambda x: x.scheduled_at,
    modified=EXECUTIONS.modified,
    status=EXECUTIONS.status,
)
KINDS = {
    MonitoringType.DATA_QUALITY: ("DataQuality", ResourceKind.DATA_QUALITY_JOB_DEFINITION),
    MonitoringType.MODEL_QUALITY: ("ModelQuality", ResourceKind.MODEL_QUALITY_JOB_DEFINITION),
}


@operation("CreateDataQualityJobDefinition")
async def create_data_quality(s: Services, m: Members) -> Members:
    return _create_definition(s, m, MonitoringType.DATA_QUALITY)


@operation("CreateModelQualityJobDefinition")
async def create_model_quality(s: Services, m: Members) -> Members:
    return _create_definition(s, m, MonitoringType.MODEL_QUALITY)


def _create_definition(s: Services, m: Members, kind: MonitoringType) -> Members:
    prefix = KINDS[kind][0]
    name = m["JobDefinitionName"]
    tags = tags_of(m)
    job_input = m[f"{prefix}JobInput"]
    endpoint_input = job_input.get("EndpointInput")
    if endpoint_input is None:
        raise ValidationException(
            f"{prefix}JobInput.EndpointInput is required: sluice monitors endpoints' capture "
            "(BatchTransformInput is not supported)",
            field=f"{prefix}JobInput.EndpointInput",
        )
    baseline = m.get(f"{prefix}BaselineConfig") or {}
    # A folder of its own: a failed create (a taken name, say) removes only what it copied.
    folder = s.settings.monitoring_dir / "baselines" / f"{name.lower()}-{uuid.uuid4().hex[:8]}"
    files = {"constraints.json": baseline.get("ConstraintsResource", {}).get("S3Uri")}
    if kind is MonitoringType.DATA_QUALITY:
        files["statistics.json"] = baseline.get("StatisticsResource", {}).get("S3Uri")
    app = m[f"{prefix}AppSpecification"]
    job = MonitoringJob(
        kind,
        endpoint_input["EndpointName"],
        str(folder),
        window_start=endpoint_input.get("StartTimeOffset"),
        window_end=endpoint_input.get("EndTimeOffset") or "-PT0S",
        problem_type=app.get("ProblemType"),
        inference_attribute=endpoint_input.get("InferenceAttribute"),
        probability_attribute=endpoint_input.get("ProbabilityAttribute"),
        probability_threshold=endpoint_input.get("ProbabilityThresholdAttribute"),
        max_runtime_s=m.get("StoppingCondition", {}).get("MaxRuntimeInSeconds", 3600),
    )
    if kind is MonitoringType.MODEL_QUALITY and job.problem_type is None:
        raise ValidationException(
            "ModelQualityAppSpecification.ProblemType is required",
            field="ModelQualityAppSpecification.ProblemType",
        )
    try:
        _copy_baseline(s, files, folder, prefix)
        s.monitoring.check_job(job)
        definition = s.monitoring.repo.add_definition(
            MonitoringJobDefinition(name, kind, job, _jsonable(m), datetime.now(UTC))
        )
    except Exception:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    if tags:
        s.tags.add(KINDS[kind][1], definition.name, tags)
    return {"JobDefinitionArn": s.arns.of(KINDS[kind][1], definition.name)}


def _copy_baseline(s: Services, files: dict[str, str | None], folder: Path, prefix: str) -> None:
    objects = s.endpoints.artifacts.objects
    folder.mkdir(parents=True, exist_ok=True)
    for target, uri in files.items():
        resource = "ConstraintsResource" if target == "constraints.json" else "StatisticsResource"
        where = f"{prefix}BaselineConfig.{resource}.S3Uri"
        if not uri:
            raise ValidationException(
                f"{where} is required: sluice checks against a baseline "
                "(`sluice monitor baseline` writes one)",
                field=where,
            )
        try:
            source = objects.fetch(uri, where)
            if source.is_dir():
                source = source / target
            shutil.copyfile(source, folder / target)
        except (OSError, ValidationError) as exc:
            raise ValidationException(f"cannot read {uri}: {exc}", field=where) from None


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items() if k != "Tags"}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


@operation("DescribeDataQualityJobDefinition")
async def describe_data_quality(s: Services, m: Members) -> Members:
    return _describe_definition(s, m, MonitoringType.DATA_QUALITY)


@operation("DescribeModelQualityJobDefinition")
async def describe_model_quality(s: Services, m: Members) -> Members:
    return _describe_definition(s, m, MonitoringType.MODEL_QUALITY)


def _describe_definition(s: Services, m: Members, kind: MonitoringType) -> Members:
    definition = _definition(s, m["JobDefinitionName"], kind)
    return {
        **definition.request,
        "JobDefinitionArn": s.arns.of(KINDS[kind][1], definition.name),
        "JobDefinitionName": definition.name,
        "CreationTime": definition.created_at,
    }


@operation("DeleteDataQualityJobDefinition")
async def delete_data_quality(s: Services, m: Members) -> Members:
    return _delete_definition(s, m, MonitoringType.DATA_QUALITY)


@operation("DeleteModelQualityJobDefinition")
async def delete_model_quality(s: Services, m: Members) -> Members:
    return _delete_definition(s, m, MonitoringType.MODEL_QUALITY)


def _delete_definition(s: Services, m: Members, kind: MonitoringType) -> Members:
    definition = _definition(s, m["JobDefinitionName"], kind)
    s.monitoring.repo.delete_definition(definition.name)
    shutil.rmtree(definition.job.baseline, ignore_errors=True)
    return {}


def _definition(s: Services, name: str, kind: MonitoringType) -> MonitoringJobDefinition:
    from sluice.errors import NotFound

    definition = s.monitoring.repo.get_definition(name)
    if definition.kind is not kind:
        raise NotFound(f"{KINDS[kind][0]} job definition {name!r} does not exist", field="name")
    return definition


@operation("CreateMonitoringSchedule")
async def create_schedule(s: Services, m: Members) -> Members:
    tags = tags_of(m)
    config = m["MonitoringScheduleConfig"]
    if "MonitoringJobDefinition" in config:
        raise ValidationException(
            "MonitoringScheduleConfig.MonitoringJobDefinition (a container job) is not "
            "supported: create a data- or model-quality job definition and name it in "
            "MonitoringJobDefinitionName",
            field="MonitoringScheduleConfig.MonitoringJobDefinition",
        )
    name = config.get("MonitoringJobDefinitionName")
    if not name:
        raise ValidationException(
            "MonitoringScheduleConfig.MonitoringJobDefinitionName is required",
            field="MonitoringScheduleConfig.MonitoringJobDefinitionName",
        )
    try:
        kind = MonitoringType(config.get("MonitoringType", "DataQuality"))
    except ValueError:
        raise ValidationException(
            "MonitoringType must be DataQuality or ModelQuality",
            field="MonitoringScheduleConfig.MonitoringType",
        ) from None
    definition = _definition(s, name, kind)
    timing = config.get("ScheduleConfig", {})
    job = definition.job
    if timing.get("DataAnalysisStartTime"):
        from dataclasses import replace

        job = replace(
            job,
            window_start=timing["DataAnalysisStartTime"],
            window_end=timing.get("DataAnalysisEndTime") or job.window_end,
        )
    schedule = s.monitoring.create(
        ScheduleSpec(
            m["MonitoringScheduleName"],
            timing["ScheduleExpression"],
            job,
            job_definition=definition.name,
            details={"MonitoringScheduleConfig": _jsonable(config)},
        )
    )
    if tags:
        s.tags.add(ResourceKind.MONITORING_SCHEDULE, schedule.name, tags)
    return {"MonitoringScheduleArn": s.arns.of(ResourceKind.MONITORING_SCHEDULE, schedule.name)}


@operation("DescribeMonitoringSchedule")
async def describe_schedule(s: Services, m: Members) -> Members:
    schedule = s.monitoring.get(m["MonitoringScheduleName"])
    last = s.monitoring.executions(schedule.name, limit=1)
    return {
        **_schedule_summary(s, schedule),
        "MonitoringScheduleConfig": schedule.details.get("MonitoringScheduleConfig")
        or {"ScheduleConfig": {"ScheduleExpression": schedule.expression}},
        "LastMonitoringExecutionSummary": _execution_summary(schedule.job_definition, last[0])
        if last
        else None,
    }


@operation("ListMonitoringSchedules")
async def list_schedules(s: Services, m: Members) -> Members:
    found = [
        x
        for x in s.monitoring.find(m.get("EndpointName"))
        if _matches(x.job_definition, m.get("MonitoringJobDefinitionName"))
        and _matches(x.job.kind.value, m.get("MonitoringTypeEquals"))
    ]
    shown, token = listing.page(found, m, SCHEDULES)
    return {
        "MonitoringScheduleSummaries": [_schedule_summary(s, x) for x in shown],
        "NextToken": token,
    }


@operation("ListMonitoringExecutions")
async def list_executions(s: Services, m: Members) -> Members:
    definitions = {x.name.lower(): x.job_definition for x in s.monitoring.find()}
    name = m.get("MonitoringScheduleName")
    found = [
        x
        for x in s.monitoring.repo.executions(name, endpoint=m.get("EndpointName"))
        if _in_time(x.scheduled_at, m, "ScheduledTime")
        and _matches(x.kind.value, m.get("MonitoringTypeEquals"))
        and _matches(definitions.get(x.schedule.lower()), m.get("MonitoringJobDefinitionName"))
    ]
    if name is not None and not found and name.lower() not in definitions:
        s.monitoring.get(name)  # NotFound for an unknown schedule
    by_scheduled = m.get("SortBy", "ScheduledTime") == "ScheduledTime"
    params = {**m, "SortBy": "CreationTime"} if by_scheduled else m
    shown, token = listing.page(found, params, BY_SCHEDULED_TIME if by_scheduled else EXECUTIONS)
    return {
        "MonitoringExecutionSummaries": [
            _execution_summary(definitions.get(x.schedule.lower()), x) for x in shown
        ],
        "NextToken": token,
    }


def _matches(value: str | None, wanted: str | None) -> bool:
    return wanted is None or (value or "").lower() == wanted.lower()


def _in_time(at: datetime, m: Members, member: str) -> bool:
    before, after = m.get(f"{member}Before"), m.get(f"{member}After")
    return (before is None or at < before) and (after is None or at > after)


@operation("StopMonitoringSchedule")
async def stop_schedule(s: Services, m: Members) -> Members:
    s.monitoring.stop(m["MonitoringScheduleName"])
    return {}


@operation("StartMonitoringSchedule")
async def start_schedule(s: Services, m: Members) -> Members:
    s.monitoring.start(m["MonitoringScheduleName"])
    return {}


@operation("DeleteMonitoringSchedule")
async def delete_schedule(s: Services, m: Members) -> Members:
    s.monitoring.delete(m["MonitoringScheduleName"])
    return {}


def _schedule_summary(s: Services, x: MonitoringSchedule) -> Members:
    return {
        "MonitoringScheduleName": x.name,
        "MonitoringScheduleArn": s.arns.of(ResourceKind.MONITORING_SCHEDULE, x.name),
        "CreationTime": x.created_at,
        "LastModifiedTime": x.updated_at,
        "MonitoringScheduleStatus": x.status.value,
        "EndpointName": x.job.endpoint,
        "MonitoringJobDefinitionName": x.job_definition,
        "MonitoringType": x.job.kind.value,
    }


def _execution_summary(definition: str | None, x: MonitoringExecution) -> Members:
    """SageMaker's summary; InsufficientGroundTruth (not in its enum) shows as Failed with
    the reason."""
    status = x.status.value
    if status == "InsufficientGroundTruth":
        status = "Failed"
    return {
        "MonitoringScheduleName": x.schedule,
        "ScheduledTime": x.scheduled_at,
        "CreationTime": x.created_at,
        "LastModifiedTime": x.updated_at,
        "MonitoringExecutionStatus": status,
        "EndpointName": x.endpoint,
        "FailureReason": x.failure_reason,
        "MonitoringJobDefinitionName": definition,
        "MonitoringType": x.kind.value,
    }
