"""CreateEndpointConfig, DescribeEndpointConfig, ListEndpointConfigs, DeleteEndpointConfig."""

from __future__ import annotations

from typing import Any

from sluice.compat.sagemaker import listing
from sluice.compat.sagemaker.operations import Members, Services, operation, tags_of
from sluice.compat.sagemaker.shapes import ValidationException
from sluice.entities import (
    AsyncConfig,
    DataCapture,
    EndpointConfig,
    ResourceKind,
    VariantKind,
    VariantSpec,
)

STORED = ("KmsKeyId", "AsyncInferenceConfig", "ExplainerConfig", "ExecutionRoleArn", "VpcConfig",
          "EnableNetworkIsolation", "MetricsConfig", "CrossRegionTrafficConfig",
          "DataCaptureConfig")  # fmt: skip
"""Members kept as given and answered back by DescribeEndpointConfig."""

USED = ("VariantName", "ModelName", "InitialInstanceCount", "InstanceType", "InitialVariantWeight")
"""ProductionVariant members sluice acts on; the others are stored as given."""

FIELDS: listing.Fields[EndpointConfig] = listing.Fields(
    name=lambda c: c.name,
    created=lambda c: c.created_at,  # type: ignore[arg-type,return-value]
)


@operation("CreateEndpointConfig")
async def create_endpoint_config(s: Services, m: Members) -> Members:
    variants = [
        _variant(v, VariantKind.PRODUCTION, f"ProductionVariants.{i}")
        for i, v in enumerate(m["ProductionVariants"], start=1)
    ]
    variants += [
        _variant(v, VariantKind.SHADOW, f"ShadowProductionVariants.{i}")
        for i, v in enumerate(m.get("ShadowProductionVariants", ()), start=1)
    ]
    tags = tags_of(m)
    asynchronous = AsyncConfig.from_details(m)
    if asynchronous is not None:
        s.asynchronous.check_config(asynchronous)
    capture = m.get("DataCaptureConfig")
    config = s.endpoints.create_endpoint_config(
        EndpointConfig(
            m["EndpointConfigName"],
            tuple(variants),
            _data_capture(capture, s) if capture else None,
            details={k: m[k] for k in STORED if k in m},
        )
    )
    if tags:
        s.tags.add(ResourceKind.ENDPOINT_CONFIG, config.name, tags)
    return {"EndpointConfigArn": s.arns.of(ResourceKind.ENDPOINT_CONFIG, config.name)}


@operation("DescribeEndpointConfig")
async def describe_endpoint_config(s: Services, m: Members) -> Members:
    config = s.endpoints.get_endpoint_config(m["EndpointConfigName"])
    out: Members = {
        "EndpointConfigName": config.name,
        "EndpointConfigArn": s.arns.of(ResourceKind.ENDPOINT_CONFIG, config.name),
        "ProductionVariants": [variant_document(v) for v in config.production],
        "ShadowProductionVariants": [variant_document(v) for v in config.shadows] or None,
        "CreationTime": config.created_at,
        **{k: config.details[k] for k in STORED if k in config.details},
    }
    if "DataCaptureConfig" not in config.details and config.data_capture is not None:
        out["DataCaptureConfig"] = capture_document(config.data_capture)
    return out


@operation("ListEndpointConfigs")
async def list_endpoint_configs(s: Services, m: Members) -> Members:
    shown, token = listing.page(s.endpoints.list_endpoint_configs(), m, FIELDS)
    return {
        "EndpointConfigs": [
            {
                "EndpointConfigName": c.name,
                "EndpointConfigArn": s.arns.of(ResourceKind.ENDPOINT_CONFIG, c.name),
                "CreationTime": c.created_at,
            }
            for c in shown
        ],
        "NextToken": token,
    }


@operation("DeleteEndpointConfig")
async def delete_endpoint_config(s: Services, m: Members) -> Members:
    s.endpoints.delete_endpoint_config(m["EndpointConfigName"])
    return {}


def variant_document(v: VariantSpec) -> Members:
    """A ProductionVariant as SageMaker describes it."""
    return {
        **v.details,
        "VariantName": v.name,
        "ModelName": v.model_name,
        "InitialInstanceCount": v.instance_count,
        "InstanceType": v.instance_type,
        "InitialVariantWeight": v.details.get("InitialVariantWeight", v.initial_weight),
    }


def capture_document(capture: DataCapture) -> Members:
    """DataCaptureConfig for a capture set up through the native API."""
    mode = {(True, True): "InputAndOutput", (True, False): "Input", (False, True): "Output"}
    return {
        "EnableCapture": capture.enabled,
        "InitialSamplingPercentage": capture.sampling_percentage,
        "DestinationS3Uri": capture.destination or "",
        "CaptureOptions": [
            {"CaptureMode": mode.get((capture.capture_input, capture.capture_output), "Input")}
        ],
    }


def _variant(v: dict[str, Any], kind: VariantKind, where: str) -> VariantSpec:
    if not v.get("ModelName"):
        raise ValidationException(
            f"{where}.ModelName is required: sluice serves a model per variant "
            "(inference components are not served yet)",
            field=f"{where}.ModelName",
        )
    count = v.get("InitialInstanceCount")
    if count is None:
        if "ServerlessConfig" not in v:
            raise ValidationException(
                f"{where}.InitialInstanceCount is required (or ServerlessConfig)",
                field=f"{where}.InitialInstanceCount",
            )
        count = 1  # a serverless variant runs one worker process here
    details = {k: value for k, value in v.items() if k not in USED}
    weight = v.get("InitialVariantWeight", 1.0)
    if kind is VariantKind.SHADOW:
        # A shadow answers no client: it takes no production weight and gets a copy of
        # every request. The weight given is kept and described back.
        details["InitialVariantWeight"] = weight
        weight = 0.0
    return VariantSpec(
        v["VariantName"],
        v["ModelName"],
        kind,
        weight,
        count,
        instance_type=v.get("InstanceType"),
        details=details,
    )


def _data_capture(capture: dict[str, Any], s: Services) -> DataCapture:
    modes = {option["CaptureMode"] for option in capture["CaptureOptions"]}
    return DataCapture(
        enabled=capture.get("EnableCapture", True),
        sampling_percentage=capture["InitialSamplingPercentage"],
        capture_input=bool(modes & {"Input", "InputAndOutput"}),
        capture_output=bool(modes & {"Output", "InputAndOutput"}),
        destination=capture["DestinationS3Uri"],
    )
