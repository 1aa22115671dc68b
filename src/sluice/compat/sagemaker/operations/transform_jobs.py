"""CreateTransformJob, DescribeTransformJob, ListTransformJobs, StopTransformJob.

The request is read into a `TransformSpec`; members sluice records but does not act on
(DataCaptureConfig, ExperimentConfig, KmsKeyId, VolumeKmsKeyId) are kept and described
back as sent. `Environment` "SLUICE_ON_BAD_RECORD=continue" asks for sluice's bad-record
mode (bad records to `<name>.out.errors`) instead of SageMaker's (the file fails).
"""

from __future__ import annotations

from typing import Any

from sluice.compat.sagemaker import listing
from sluice.compat.sagemaker.operations import Members, Services, operation, tags_of
from sluice.compat.sagemaker.shapes import ValidationException
from sluice.entities import ResourceKind, TransformJob, TransformSpec, TransformStatus

FIELDS: listing.Fields[TransformJob] = listing.Fields(
    name=lambda job: job.name,
    created=lambda job: job.created_at,
    modified=lambda job: job.updated_at,
    status=lambda job: job.status.value,
)
BAD_RECORD_SETTING = "SLUICE_ON_BAD_RECORD"
KEPT = ("DataCaptureConfig", "ExperimentConfig", "DataProcessing")


@operation("CreateTransformJob")
async def create_transform_job(s: Services, m: Members) -> Members:
    tags = tags_of(m)
    spec = spec_of(m)
    details = {key: m[key] for key in KEPT if key in m}
    details["TransformOutput"] = m["TransformOutput"]
    details["TransformResources"] = m["TransformResources"]
    details["TransformInput"] = m["TransformInput"]
    job = s.transforms.create(m["TransformJobName"], m["ModelName"], spec, details)
    if tags:
        s.tags.add(ResourceKind.TRANSFORM_JOB, job.name, tags)
    return {"TransformJobArn": s.arns.of(ResourceKind.TRANSFORM_JOB, job.name)}


def spec_of(m: Members) -> TransformSpec:
    """The job's spec from CreateTransformJob's members (already checked against the
    service model's shapes)."""
    data = m["TransformInput"]
    source = data["DataSource"].get("S3DataSource")
    if source is None:
        raise ValidationException(
            "TransformInput.DataSource.S3DataSource is required (FileSystemDataSource is "
            "not served)",
            field="TransformInput.DataSource",
        )
    processing = m.get("DataProcessing") or {}
    output = m["TransformOutput"]
    resources = m["TransformResources"]
    client = m.get("ModelClientConfig") or {}
    environment = dict(m.get("Environment") or {})
    on_bad_record = environment.pop(BAD_RECORD_SETTING, "fail")
    return TransformSpec(
        input_uri=source["S3Uri"],
        output_path=output["S3OutputPath"],
        data_type=source["S3DataType"],
        content_type=data.get("ContentType") or "application/json",
        compression=data.get("CompressionType") or "None",
        split_type=data.get("SplitType") or "None",
        batch_strategy=m.get("BatchStrategy") or "MultiRecord",
        max_payload_mb=m.get("MaxPayloadInMB", 6),
        max_concurrent=m.get("MaxConcurrentTransforms") or 1,
        accept=output.get("Accept"),
        assemble_with=output.get("AssembleWith") or "None",
        instance_type=resources["InstanceType"],
        instance_count=resources["InstanceCount"],
        environment=environment,
        timeout_s=client.get("InvocationsTimeoutInSeconds", 600),
        max_retries=client.get("InvocationsMaxRetries", 3),
        on_bad_record=on_bad_record,
        input_filter=processing.get("InputFilter") or "$",
        join_source=processing.get("JoinSource") or "None",
        output_filter=processing.get("OutputFilter") or "$",
    )


@operation("DescribeTransformJob")
async def describe_transform_job(s: Services, m: Members) -> Members:
    job = s.transforms.get(m["TransformJobName"])
    spec = job.spec
    environment = dict(spec.environment)
    if spec.on_bad_record != "fail":
        environment[BAD_RECORD_SETTING] = spec.on_bad_record
    out: dict[str, Any] = {
        "TransformJobName": job.name,
        "TransformJobArn": s.arns.of(ResourceKind.TRANSFORM_JOB, job.name),
        "TransformJobStatus": job.status.value,
        "FailureReason": job.failure_reason,
        "ModelName": job.model_name,
        "MaxConcurrentTransforms": spec.max_concurrent,
        "ModelClientConfig": {
            "InvocationsTimeoutInSeconds": spec.timeout_s,
            "InvocationsMaxRetries": spec.max_retries,
        },
        "MaxPayloadInMB": spec.max_payload_mb,
        "BatchStrategy": spec.batch_strategy,
        "Environment": environment,
        # As sent through this API; built from the spec for jobs made on the native API.
        "TransformInput": job.details.get("TransformInput") or _input(spec),
        "TransformOutput": job.details.get("TransformOutput") or _output(spec),
        "TransformResources": job.details.get("TransformResources")
        or {"InstanceType": spec.instance_type, "InstanceCount": spec.instance_count},
        "CreationTime": job.created_at,
        "TransformStartTime": job.started_at,
        "TransformEndTime": job.ended_at,
    }
    out.update({key: job.details[key] for key in KEPT if key in job.details})
    return out


def _input(spec: TransformSpec) -> Members:
    return {
        "DataSource": {"S3DataSource": {"S3DataType": spec.data_type, "S3Uri": spec.input_uri}},
        "ContentType": spec.content_type,
        "CompressionType": spec.compression,
        "SplitType": spec.split_type,
    }


def _output(spec: TransformSpec) -> Members:
    out: Members = {"S3OutputPath": spec.output_path, "AssembleWith": spec.assemble_with}
    if spec.accept:
        out["Accept"] = spec.accept
    return out


@operation("ListTransformJobs")
async def list_transform_jobs(s: Services, m: Members) -> Members:
    status = TransformStatus(m["StatusEquals"]) if "StatusEquals" in m else None
    shown, token = listing.page(s.transforms.list(status), m, FIELDS)
    return {
        "TransformJobSummaries": [
            {
                "TransformJobName": job.name,
                "TransformJobArn": s.arns.of(ResourceKind.TRANSFORM_JOB, job.name),
                "CreationTime": job.created_at,
                "TransformEndTime": job.ended_at,
                "LastModifiedTime": job.updated_at,
                "TransformJobStatus": job.status.value,
                "FailureReason": job.failure_reason,
            }
            for job in shown
        ],
        "NextToken": token,
    }


@operation("StopTransformJob")
async def stop_transform_job(s: Services, m: Members) -> Members:
    await s.transforms.stop(m["TransformJobName"])
    return {}
