"""Create, Describe, List, Start, Stop, Update and DeleteInferenceExperiment (shadow tests)."""

from __future__ import annotations

from typing import Any

from sluice.compat.sagemaker import listing
from sluice.compat.sagemaker.operations import Members, Services, operation, tags_of
from sluice.compat.sagemaker.shapes import ValidationException
from sluice.control.experiments import ExperimentSpec, StopRequest
from sluice.entities import (
    Experiment,
    ExperimentStatus,
    ExperimentVariant,
    ResourceKind,
    ShadowSampling,
    VariantAction,
)
from sluice.errors import NotFound

DEFAULT_INSTANCE_TYPE = "ml.m5.large"
"""Described for variants created without an instance type (through the native API)."""

FIELDS: listing.Fields[Experiment] = listing.Fields(
    name=lambda x: x.name,
    created=lambda x: x.created_at,  # type: ignore[arg-type,return-value]
    modified=lambda x: x.updated_at,  # type: ignore[arg-type,return-value]
    status=lambda x: x.status.value,
)


@operation("CreateInferenceExperiment")
async def create_experiment(s: Services, m: Members) -> Members:
    tags = tags_of(m)
    shadow_mode = m["ShadowModeConfig"]
    schedule = m.get("Schedule", {})
    storage = m.get("DataStorageConfig")
    experiment = s.experiments.create(
        ExperimentSpec(
            m["Name"],
            m["EndpointName"],
            shadow_mode["SourceModelVariantName"],
            _sampling(shadow_mode),
            tuple(_variant(v) for v in m["ModelVariants"]),
            schedule.get("StartTime"),
            schedule.get("EndTime"),
            m.get("Description", ""),
            _destination(s, storage),
            dict(storage or {}),
            m["RoleArn"],
            m.get("KmsKey"),
        )
    )
    if tags:
        s.tags.add(ResourceKind.INFERENCE_EXPERIMENT, experiment.name, tags)
    return _arn(s, experiment.name)


@operation("DescribeInferenceExperiment")
async def describe_experiment(s: Services, m: Members) -> Members:
    x = s.experiments.get(m["Name"])
    return {
        **_summary(x),
        "Arn": s.arns.of(ResourceKind.INFERENCE_EXPERIMENT, x.name),
        "EndpointMetadata": _endpoint_metadata(s, x),
        "ModelVariants": [
            {
                "ModelName": v.model_name,
                "VariantName": v.variant_name,
                "InfrastructureConfig": _infrastructure(v),
                "Status": v.status,
            }
            for v in x.variants
        ],
        "DataStorageConfig": x.data_storage
        or ({"Destination": x.destination} if x.destination else None),
        "ShadowModeConfig": {
            "SourceModelVariantName": x.source_variant,
            "ShadowModelVariants": [
                {
                    "ShadowModelVariantName": sh.variant_name,
                    "SamplingPercentage": sh.sampling_percentage,
                }
                for sh in x.shadows
            ],
        },
        "KmsKey": x.kms_key,
    }


@operation("ListInferenceExperiments")
async def list_experiments(s: Services, m: Members) -> Members:
    shown, token = listing.page(s.experiments.find(), m, FIELDS)
    return {"InferenceExperiments": [_summary(x) for x in shown], "NextToken": token}


@operation("StartInferenceExperiment")
async def start_experiment(s: Services, m: Members) -> Members:
    experiment = await s.experiments.start(m["Name"])
    return _arn(s, experiment.name)


@operation("StopInferenceExperiment")
async def stop_experiment(s: Services, m: Members) -> Members:
    actions = {name: VariantAction(action) for name, action in m["ModelVariantActions"].items()}
    request = StopRequest(
        actions,
        ExperimentStatus(m.get("DesiredState", "Completed")),
        m.get("Reason"),
        None,
        tuple(_variant(v) for v in m.get("DesiredModelVariants", ())),
    )
    experiment = await s.experiments.stop(m["Name"], request)
    return _arn(s, experiment.name)


@operation("UpdateInferenceExperiment")
async def update_experiment(s: Services, m: Members) -> Members:
    current = s.experiments.get(m["Name"])
    shadow_mode = m.get("ShadowModeConfig")
    if shadow_mode and shadow_mode["SourceModelVariantName"] != current.source_variant:
        raise ValidationException(
            "ShadowModeConfig.SourceModelVariantName cannot change; create a new experiment",
            field="ShadowModeConfig.SourceModelVariantName",
        )
    instances: dict[str, int] = {}
    for v in (_variant(v) for v in m.get("ModelVariants", ())):
        known = current.variant(v.variant_name)
        if known is None or known.model_name != v.model_name:
            raise ValidationException(
                f"ModelVariants: variant {v.variant_name!r} with model {v.model_name!r} is not "
                "in the experiment; only instance counts can change",
                field="ModelVariants",
            )
        instances[v.variant_name] = v.instance_count
    schedule = m.get("Schedule", {})
    storage = m.get("DataStorageConfig")
    experiment = await s.experiments.update(
        m["Name"],
        start=schedule.get("StartTime"),
        end=schedule.get("EndTime"),
        description=m.get("Description"),
        sampling={x.variant_name: x.sampling_percentage for x in _sampling(shadow_mode)}
        if shadow_mode
        else None,
        instances=instances or None,
        destination=_destination(s, storage),
    )
    return _arn(s, experiment.name)


@operation("DeleteInferenceExperiment")
async def delete_experiment(s: Services, m: Members) -> Members:
    s.experiments.delete(m["Name"])
    return _arn(s, m["Name"])


def _arn(s: Services, name: str) -> Members:
    return {"InferenceExperimentArn": s.arns.of(ResourceKind.INFERENCE_EXPERIMENT, name)}


def _summary(x: Experiment) -> Members:
    return {
        "Name": x.name,
        "Type": x.type,
        "Schedule": {"StartTime": x.start, "EndTime": x.end},
        "Status": x.status.value,
        "StatusReason": x.status_reason,
        "Description": x.description or None,
        "CreationTime": x.created_at,
        "CompletionTime": x.completion_time,
        "LastModifiedTime": x.updated_at,
        "RoleArn": x.role_arn,
    }


def _endpoint_metadata(s: Services, x: Experiment) -> Members:
    try:
        endpoint = s.endpoints.get_endpoint(x.endpoint)
    except NotFound:
        return {"EndpointName": x.endpoint}
    return {
        "EndpointName": endpoint.name,
        "EndpointConfigName": endpoint.config_name,
        "EndpointStatus": endpoint.status.value,
        "FailureReason": endpoint.failure_reason,
    }


def _infrastructure(v: ExperimentVariant) -> Members:
    instance_type = v.instance_type if v.instance_type.startswith("ml.") else DEFAULT_INSTANCE_TYPE
    return {
        "InfrastructureType": "RealTimeInference",
        "RealTimeInferenceConfig": {
            "InstanceType": instance_type,
            "InstanceCount": v.instance_count,
        },
    }


def _variant(v: dict[str, Any]) -> ExperimentVariant:
    config = v["InfrastructureConfig"]["RealTimeInferenceConfig"]
    return ExperimentVariant(
        v["VariantName"], v["ModelName"], config["InstanceCount"], config["InstanceType"]
    )


def _sampling(shadow_mode: dict[str, Any]) -> tuple[ShadowSampling, ...]:
    return tuple(
        ShadowSampling(sh["ShadowModelVariantName"], sh["SamplingPercentage"])
        for sh in shadow_mode["ShadowModelVariants"]
    )


def _destination(s: Services, storage: dict[str, Any] | None) -> str | None:
    if not storage:
        return None
    return str(storage["Destination"])
