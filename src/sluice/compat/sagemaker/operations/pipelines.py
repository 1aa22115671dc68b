"""SageMaker Pipelines: CreatePipeline, DescribePipeline, UpdatePipeline, DeletePipeline,
ListPipelines, StartPipelineExecution, DescribePipelineExecution, ListPipelineExecutions,
ListPipelineExecutionSteps, StopPipelineExecution, RetryPipelineExecution,
DescribePipelineDefinitionForExecution, ListPipelineParametersForExecution.

An execution's ARN is its pipeline's with `/execution/<id>`.
"""

from __future__ import annotations

import json
from typing import Any

from sluice.compat.sagemaker import listing
from sluice.compat.sagemaker.operations import Members, Services, caller, operation, tags_of
from sluice.compat.sagemaker.shapes import ValidationException
from sluice.entities import ExecutionStep, Pipeline, PipelineExecution, ResourceKind

PIPELINES: listing.Fields[Pipeline] = listing.Fields(
    name=lambda p: p.name, created=lambda p: p.created_at, modified=lambda p: p.updated_at
)
EXECUTIONS: listing.Fields[PipelineExecution] = listing.Fields(
    name=lambda e: e.id, created=lambda e: e.created_at, modified=lambda e: e.updated_at
)
STEPS: listing.Fields[ExecutionStep] = listing.Fields(
    name=lambda s: s.name, created=lambda s: s.started_at
)
STEP_METADATA = ("ProcessingJob", "TrainingJob", "TransformJob", "Model", "RegisterModel",
                 "Condition", "Fail")  # fmt: skip


def pipeline_arn(s: Services, name: str) -> str:
    return s.arns.of(ResourceKind.PIPELINE, name)


def execution_arn(s: Services, execution: PipelineExecution) -> str:
    return f"{pipeline_arn(s, execution.pipeline)}/execution/{execution.id}"


def _execution(s: Services, arn: str) -> PipelineExecution:
    head, marker, execution_id = arn.rpartition("/execution/")
    if not marker or not execution_id or not head.startswith("arn:aws:sagemaker:"):
        raise ValidationException(
            f"{arn!r} is not a pipeline execution ARN", field="PipelineExecutionArn"
        )
    return s.pipelines.execution(execution_id)


def _definition(s: Services, m: Members) -> str | None:
    if "PipelineDefinition" in m:
        return str(m["PipelineDefinition"])
    location = m.get("PipelineDefinitionS3Location")
    if not location:
        return None
    uri = f"s3://{location['Bucket']}/{location['ObjectKey']}"
    path = s.jobs.objects.fetch(uri, "PipelineDefinitionS3Location")
    if not path.is_file():
        raise ValidationException(f"{uri} does not exist", field="PipelineDefinitionS3Location")
    return path.read_text()


def _parallelism(m: Members) -> int | None:
    config = m.get("ParallelismConfiguration") or {}
    value = config.get("MaxParallelExecutionSteps")
    return int(value) if value else None


# -- pipelines


@operation("CreatePipeline")
async def create_pipeline(s: Services, m: Members) -> Members:
    definition = _definition(s, m)
    if definition is None:
        raise ValidationException(
            "PipelineDefinition or PipelineDefinitionS3Location is required",
            field="PipelineDefinition",
        )
    tags = tags_of(m)
    pipeline = s.pipelines.create(
        m["PipelineName"],
        definition,
        m["RoleArn"],
        m.get("PipelineDisplayName"),
        m.get("PipelineDescription"),
        _parallelism(m),
    )
    if tags:
        s.tags.add(ResourceKind.PIPELINE, pipeline.name, tags)
    return {"PipelineArn": pipeline_arn(s, pipeline.name)}


@operation("DescribePipeline")
async def describe_pipeline(s: Services, m: Members) -> Members:
    pipeline = s.pipelines.get(m["PipelineName"])
    return {
        "PipelineArn": pipeline_arn(s, pipeline.name),
        "PipelineName": pipeline.name,
        "PipelineDisplayName": pipeline.display_name or pipeline.name,
        "PipelineDefinition": pipeline.definition,
        "PipelineDescription": pipeline.description,
        "RoleArn": pipeline.role_arn,
        "PipelineStatus": "Active",
        "CreationTime": pipeline.created_at,
        "LastModifiedTime": pipeline.updated_at,
        "LastRunTime": pipeline.last_run_at,
        "ParallelismConfiguration": (
            {"MaxParallelExecutionSteps": pipeline.parallelism} if pipeline.parallelism else None
        ),
    }


@operation("UpdatePipeline")
async def update_pipeline(s: Services, m: Members) -> Members:
    pipeline = s.pipelines.update(
        m["PipelineName"],
        _definition(s, m),
        role_arn=m.get("RoleArn"),
        display_name=m.get("PipelineDisplayName"),
        description=m.get("PipelineDescription"),
        parallelism=_parallelism(m),
    )
    return {"PipelineArn": pipeline_arn(s, pipeline.name), "PipelineVersionId": pipeline.version}


@operation("DeletePipeline")
async def delete_pipeline(s: Services, m: Members) -> Members:
    pipeline = s.pipelines.delete(m["PipelineName"])
    return {"PipelineArn": pipeline_arn(s, pipeline.name)}


@operation("ListPipelines")
async def list_pipelines(s: Services, m: Members) -> Members:
    prefix = m.pop("PipelineNamePrefix", "").lower()
    chosen = [p for p in s.pipelines.list() if p.name.lower().startswith(prefix)]
    shown, token = listing.page(chosen, _sorting(m, {"Name": "Name"}), PIPELINES)
    return {
        "PipelineSummaries": [
            {
                "PipelineArn": pipeline_arn(s, p.name),
                "PipelineName": p.name,
                "PipelineDisplayName": p.display_name or p.name,
                "PipelineDescription": p.description,
                "RoleArn": p.role_arn,
                "CreationTime": p.created_at,
                "LastModifiedTime": p.updated_at,
                "LastExecutionTime": p.last_run_at,
            }
            for p in shown
        ],
        "NextToken": token,
    }


def _sorting(m: Members, names: dict[str, str]) -> Members:
    """The request with its SortBy in the listing's terms, and CreatedAfter/Before as
    CreationTimeAfter/Before."""
    out = dict(m)
    if "SortBy" in out:
        out["SortBy"] = names.get(out["SortBy"], "CreationTime")
    for ours, theirs in (
        ("CreatedAfter", "CreationTimeAfter"),
        ("CreatedBefore", "CreationTimeBefore"),
    ):
        if ours in out:
            out[theirs] = out.pop(ours)
    return out


# -- executions


@operation("StartPipelineExecution")
async def start_pipeline_execution(s: Services, m: Members) -> Members:
    given = {p["Name"]: str(p["Value"]) for p in m.get("PipelineParameters") or []}
    selective = m.get("SelectiveExecutionConfig")
    selected = [step["StepName"] for step in selective["SelectedSteps"]] if selective else None
    source_arn = (selective or {}).get("SourcePipelineExecutionArn")
    execution = s.pipelines.start(
        m["PipelineName"],
        given,
        m.get("PipelineExecutionDisplayName"),
        m.get("PipelineExecutionDescription"),
        _parallelism(m),
        selected,
        _execution(s, source_arn) if source_arn else None,
    )
    return {"PipelineExecutionArn": execution_arn(s, execution)}


@operation("DescribePipelineExecution")
async def describe_pipeline_execution(s: Services, m: Members) -> Members:
    execution = _execution(s, m["PipelineExecutionArn"])
    who = {"UserProfileName": caller.get() or "sluice"}
    return {
        "PipelineArn": pipeline_arn(s, execution.pipeline),
        "PipelineExecutionArn": execution_arn(s, execution),
        "PipelineExecutionDisplayName": execution.display_name or f"execution-{execution.id}",
        "PipelineExecutionStatus": execution.status.value,
        "PipelineExecutionDescription": execution.description,
        "PipelineExperimentConfig": {
            "ExperimentName": execution.pipeline.lower(),
            "TrialName": execution.id,
        },
        "FailureReason": execution.failure_reason,
        "CreationTime": execution.created_at,
        "LastModifiedTime": execution.updated_at,
        "CreatedBy": who,
        "LastModifiedBy": who,
        "ParallelismConfiguration": (
            {"MaxParallelExecutionSteps": execution.parallelism} if execution.parallelism else None
        ),
        "SelectiveExecutionConfig": _selective(s, execution),
    }


def _selective(s: Services, execution: PipelineExecution) -> Members | None:
    if execution.selected_steps is None:
        return None
    config: Members = {"SelectedSteps": [{"StepName": n} for n in execution.selected_steps]}
    if execution.source_execution:
        source = s.pipelines.execution(execution.source_execution)
        config["SourcePipelineExecutionArn"] = execution_arn(s, source)
    return config


@operation("ListPipelineExecutions")
async def list_pipeline_executions(s: Services, m: Members) -> Members:
    executions = s.pipelines.executions(m["PipelineName"])
    shown, token = listing.page(executions, _sorting(m, {}), EXECUTIONS)
    return {
        "PipelineExecutionSummaries": [
            {
                "PipelineExecutionArn": execution_arn(s, e),
                "StartTime": e.created_at,
                "PipelineExecutionStatus": e.status.value,
                "PipelineExecutionDescription": e.description,
                "PipelineExecutionDisplayName": e.display_name or f"execution-{e.id}",
                "PipelineExecutionFailureReason": e.failure_reason,
            }
            for e in shown
        ],
        "NextToken": token,
    }


@operation("ListPipelineExecutionSteps")
async def list_pipeline_execution_steps(s: Services, m: Members) -> Members:
    if "PipelineExecutionArn" not in m:
        raise ValidationException("PipelineExecutionArn is required", field="PipelineExecutionArn")
    execution = _execution(s, m["PipelineExecutionArn"])
    steps = s.pipelines.steps(execution.id)
    shown, token = listing.page(steps, {k: v for k, v in m.items() if k != "SortBy"}, STEPS)
    return {
        "PipelineExecutionSteps": [_step(s, execution, step) for step in shown],
        "NextToken": token,
    }


def _step(s: Services, execution: PipelineExecution, step: ExecutionStep) -> Members:
    out: dict[str, Any] = {
        "StepName": step.name,
        "StepDisplayName": step.display_name,
        "StepDescription": step.description,
        "StartTime": step.started_at,
        "EndTime": step.ended_at,
        "StepStatus": step.status.value,
        "FailureReason": step.failure_reason,
        "Metadata": {k: v for k, v in step.metadata.items() if k in STEP_METADATA},
        "AttemptCount": step.attempts,
    }
    if step.cached_from:
        source = s.pipelines.execution(step.cached_from)
        out["CacheHitResult"] = {"SourcePipelineExecutionArn": execution_arn(s, source)}
    if step.reused_from:
        source = s.pipelines.execution(step.reused_from)
        out["SelectiveExecutionResult"] = {"SourcePipelineExecutionArn": execution_arn(s, source)}
    return out


@operation("StopPipelineExecution")
async def stop_pipeline_execution(s: Services, m: Members) -> Members:
    execution = await s.pipelines.stop(_execution(s, m["PipelineExecutionArn"]).id)
    return {"PipelineExecutionArn": execution_arn(s, execution)}


@operation("RetryPipelineExecution")
async def retry_pipeline_execution(s: Services, m: Members) -> Members:
    execution = _execution(s, m["PipelineExecutionArn"])
    execution = s.pipelines.retry(execution.id, _parallelism(m))
    return {"PipelineExecutionArn": execution_arn(s, execution)}


@operation("DescribePipelineDefinitionForExecution")
async def describe_definition_for_execution(s: Services, m: Members) -> Members:
    execution = _execution(s, m["PipelineExecutionArn"])
    return {"PipelineDefinition": execution.definition, "CreationTime": execution.created_at}


@operation("ListPipelineParametersForExecution")
async def list_parameters_for_execution(s: Services, m: Members) -> Members:
    execution = _execution(s, m["PipelineExecutionArn"])
    parameters = [
        {"Name": name, "Value": _text(value)} for name, value in execution.parameters.items()
    ]
    return {"PipelineParameters": parameters}


def _text(value: Any) -> str:
    return json.dumps(value) if isinstance(value, bool) else str(value)
