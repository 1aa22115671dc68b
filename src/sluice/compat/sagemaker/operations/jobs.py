"""CreateProcessingJob, CreateTrainingJob and their Describe, List and Stop.

The request is kept as sent (Tags apart) and described back with what became of the job.
Members sluice records but does not act on (NetworkConfig, VpcConfig, ExperimentConfig,
DebugHookConfig, ProfilerConfig, ...) are described back as sent.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sluice.compat.sagemaker import listing
from sluice.compat.sagemaker.operations import Members, Services, operation, tags_of
from sluice.entities import Job, JobKind, ResourceKind

FIELDS: listing.Fields[Job] = listing.Fields(
    name=lambda job: job.name,
    created=lambda job: job.created_at,
    modified=lambda job: job.updated_at,
    status=lambda job: job.status.value,
)
RESOURCE = {
    JobKind.PROCESSING: ResourceKind.PROCESSING_JOB,
    JobKind.TRAINING: ResourceKind.TRAINING_JOB,
}


def create(s: Services, kind: JobKind, m: Members, name_field: str) -> str:
    tags = tags_of(m)
    request = {key: value for key, value in m.items() if key != "Tags"}
    job = s.jobs.create(kind, m[name_field], request)
    if tags:
        s.tags.add(RESOURCE[kind], job.name, tags)
    return s.arns.of(RESOURCE[kind], job.name)


def _time(seconds: float | None) -> datetime | None:
    return datetime.fromtimestamp(seconds, UTC) if seconds is not None else None


# -- processing


@operation("CreateProcessingJob")
async def create_processing_job(s: Services, m: Members) -> Members:
    return {"ProcessingJobArn": create(s, JobKind.PROCESSING, m, "ProcessingJobName")}


@operation("DescribeProcessingJob")
async def describe_processing_job(s: Services, m: Members) -> Members:
    job = s.jobs.get(JobKind.PROCESSING, m["ProcessingJobName"])
    return describe_processing(s, job)


def describe_processing(s: Services, job: Job) -> Members:
    return {
        **job.request,
        "ProcessingJobName": job.name,
        "ProcessingJobArn": s.arns.of(ResourceKind.PROCESSING_JOB, job.name),
        "ProcessingJobStatus": job.status.value,
        "ExitMessage": job.details.get("exit_message"),
        "FailureReason": job.failure_reason,
        "ProcessingStartTime": job.started_at,
        "ProcessingEndTime": job.ended_at,
        "LastModifiedTime": job.updated_at,
        "CreationTime": job.created_at,
    }


@operation("ListProcessingJobs")
async def list_processing_jobs(s: Services, m: Members) -> Members:
    shown, token = listing.page(s.jobs.list(JobKind.PROCESSING), m, FIELDS)
    return {
        "ProcessingJobSummaries": [
            {
                "ProcessingJobName": job.name,
                "ProcessingJobArn": s.arns.of(ResourceKind.PROCESSING_JOB, job.name),
                "CreationTime": job.created_at,
                "ProcessingEndTime": job.ended_at,
                "LastModifiedTime": job.updated_at,
                "ProcessingJobStatus": job.status.value,
                "FailureReason": job.failure_reason,
                "ExitMessage": job.details.get("exit_message"),
            }
            for job in shown
        ],
        "NextToken": token,
    }


@operation("StopProcessingJob")
async def stop_processing_job(s: Services, m: Members) -> Members:
    await s.jobs.stop(JobKind.PROCESSING, m["ProcessingJobName"])
    return {}


# -- training


@operation("CreateTrainingJob")
async def create_training_job(s: Services, m: Members) -> Members:
    return {"TrainingJobArn": create(s, JobKind.TRAINING, m, "TrainingJobName")}


@operation("DescribeTrainingJob")
async def describe_training_job(s: Services, m: Members) -> Members:
    job = s.jobs.get(JobKind.TRAINING, m["TrainingJobName"])
    return describe_training(s, job)


def describe_training(s: Services, job: Job) -> Members:
    details = job.details
    seconds = details.get("training_seconds")
    out: dict[str, Any] = {
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": 86400},
        **job.request,
        "TrainingJobName": job.name,
        "TrainingJobArn": s.arns.of(ResourceKind.TRAINING_JOB, job.name),
        "TrainingJobStatus": job.status.value,
        "SecondaryStatus": job.secondary_status,
        "FailureReason": job.failure_reason,
        "CreationTime": job.created_at,
        "TrainingStartTime": job.started_at,
        "TrainingEndTime": job.ended_at,
        "LastModifiedTime": job.updated_at,
        "SecondaryStatusTransitions": [
            {
                "Status": t["Status"],
                "StartTime": _time(t["StartTime"]),
                "EndTime": _time(t.get("EndTime")),
                "StatusMessage": t.get("StatusMessage"),
            }
            for t in details.get("transitions", [])
        ],
        "FinalMetricDataList": [
            {"MetricName": name, "Value": v["value"], "Timestamp": _time(v["timestamp"])}
            for name, v in sorted(details.get("metrics", {}).items())
        ],
        "TrainingTimeInSeconds": int(seconds) if seconds is not None else None,
        "BillableTimeInSeconds": int(seconds) if seconds is not None else None,
    }
    if details.get("model_artifacts"):
        out["ModelArtifacts"] = {"S3ModelArtifacts": details["model_artifacts"]}
    return out


@operation("ListTrainingJobs")
async def list_training_jobs(s: Services, m: Members) -> Members:
    shown, token = listing.page(s.jobs.list(JobKind.TRAINING), m, FIELDS)
    return {
        "TrainingJobSummaries": [
            {
                "TrainingJobName": job.name,
                "TrainingJobArn": s.arns.of(ResourceKind.TRAINING_JOB, job.name),
                "CreationTime": job.created_at,
                "TrainingEndTime": job.ended_at,
                "LastModifiedTime": job.updated_at,
                "TrainingJobStatus": job.status.value,
                "SecondaryStatus": job.secondary_status,
            }
            for job in shown
        ],
        "NextToken": token,
    }


@operation("StopTrainingJob")
async def stop_training_job(s: Services, m: Members) -> Members:
    await s.jobs.stop(JobKind.TRAINING, m["TrainingJobName"])
    return {}
