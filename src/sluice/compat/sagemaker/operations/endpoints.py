"""CreateEndpoint, DescribeEndpoint, ListEndpoints, UpdateEndpoint,
UpdateEndpointWeightsAndCapacities, DeleteEndpoint."""

from __future__ import annotations

from sluice.compat.sagemaker import listing
from sluice.compat.sagemaker.operations import Members, Services, operation, tags_of
from sluice.compat.sagemaker.shapes import ValidationException
from sluice.control.policies import parse_policy
from sluice.entities import (
    Endpoint,
    EndpointConfig,
    EndpointStatus,
    EndpointVariant,
    ResourceKind,
    VariantKind,
    VariantSpec,
)
from sluice.errors import NotFound

VARIANT_STATUSES = {"Creating", "Updating", "Deleting", "ActivatingTraffic", "Baking"}
"""The variant states SageMaker lists in VariantStatus (InService shows as none)."""

FIELDS: listing.Fields[Endpoint] = listing.Fields(
    name=lambda ep: ep.name,
    created=lambda ep: ep.created_at,
    modified=lambda ep: ep.updated_at,
    status=lambda ep: ep.status.value,
)


@operation("CreateEndpoint")
async def create_endpoint(s: Services, m: Members) -> Members:
    tags = tags_of(m)
    endpoint = await s.endpoints.create_endpoint(m["EndpointName"], m["EndpointConfigName"])
    if tags:
        s.tags.add(ResourceKind.ENDPOINT, endpoint.name, tags)
    return {"EndpointArn": s.arns.of(ResourceKind.ENDPOINT, endpoint.name)}


@operation("DescribeEndpoint")
async def describe_endpoint(s: Services, m: Members) -> Members:
    endpoint = s.endpoints.get_endpoint(m["EndpointName"])
    config = _config(s, endpoint.config_name)
    history = s.deployments.history(endpoint.name)
    last = history[0] if history else None
    out: Members = {
        "EndpointName": endpoint.name,
        "EndpointArn": s.arns.of(ResourceKind.ENDPOINT, endpoint.name),
        "EndpointConfigName": endpoint.config_name,
        "ProductionVariants": [
            _summary(v, endpoint) for v in endpoint.variants if v.kind is VariantKind.PRODUCTION
        ],
        "ShadowProductionVariants": [
            _summary(v, endpoint) for v in endpoint.variants if v.kind is VariantKind.SHADOW
        ]
        or None,
        "EndpointStatus": endpoint.status.value,
        "FailureReason": endpoint.failure_reason,
        "CreationTime": endpoint.created_at,
        "LastModifiedTime": endpoint.updated_at,
        "LastDeploymentConfig": last.policy if last and last.policy else None,
    }
    if config is not None:
        out["DataCaptureConfig"] = _capture_summary(config, s)
        out["AsyncInferenceConfig"] = config.details.get("AsyncInferenceConfig")
        out["ExplainerConfig"] = config.details.get("ExplainerConfig")
        out["MetricsConfig"] = config.details.get("MetricsConfig")
    if last is not None and not last.state.finished:
        pending = _config(s, last.to_config)
        if pending is not None:
            out["PendingDeploymentSummary"] = _pending(pending, endpoint, last.created_at)
    elif endpoint.status is EndpointStatus.CREATING and config is not None:
        out["PendingDeploymentSummary"] = _pending(config, endpoint, endpoint.created_at)
    return out


@operation("ListEndpoints")
async def list_endpoints(s: Services, m: Members) -> Members:
    shown, token = listing.page(s.endpoints.list_endpoints(), m, FIELDS)
    return {
        "Endpoints": [
            {
                "EndpointName": ep.name,
                "EndpointArn": s.arns.of(ResourceKind.ENDPOINT, ep.name),
                "CreationTime": ep.created_at,
                "LastModifiedTime": ep.updated_at,
                "EndpointStatus": ep.status.value,
            }
            for ep in shown
        ],
        "NextToken": token,
    }


@operation("UpdateEndpoint")
async def update_endpoint(s: Services, m: Members) -> Members:
    name = m["EndpointName"]
    if m.get("RetainAllVariantProperties") or m.get("ExcludeRetainedVariantProperties"):
        raise ValidationException(
            "RetainAllVariantProperties is not supported: the new endpoint config's weights "
            "and instance counts apply",
            field="RetainAllVariantProperties",
        )
    document = m.get("DeploymentConfig")
    if document is None and m.get("RetainDeploymentConfig"):
        history = s.deployments.history(name)
        document = history[0].policy if history else None
    policy = parse_policy(document) if document else None
    # A missing config is SageMaker's "Could not find endpoint configuration" (the control
    # plane words NotFound); the deployments service would report it in its own words.
    s.endpoints.get_endpoint_config(m["EndpointConfigName"])
    await s.deployments.update_endpoint(name, m["EndpointConfigName"], policy)
    return {"EndpointArn": s.arns.of(ResourceKind.ENDPOINT, name)}


@operation("UpdateEndpointWeightsAndCapacities")
async def update_weights_and_capacities(s: Services, m: Members) -> Members:
    weights: dict[str, float] = {}
    counts: dict[str, int] = {}
    for i, item in enumerate(m["DesiredWeightsAndCapacities"], start=1):
        if "ServerlessUpdateConfig" in item:
            raise ValidationException(
                "ServerlessUpdateConfig is not supported: serverless variants run one worker",
                field=f"DesiredWeightsAndCapacities.{i}.ServerlessUpdateConfig",
            )
        if "DesiredWeight" in item:
            weights[item["VariantName"]] = item["DesiredWeight"]
        if "DesiredInstanceCount" in item:
            counts[item["VariantName"]] = item["DesiredInstanceCount"]
    endpoint = await s.endpoints.update_capacity(m["EndpointName"], weights, counts)
    return {"EndpointArn": s.arns.of(ResourceKind.ENDPOINT, endpoint.name)}


@operation("DeleteEndpoint")
async def delete_endpoint(s: Services, m: Members) -> Members:
    await s.endpoints.delete_endpoint(m["EndpointName"])
    return {}


def _summary(v: EndpointVariant, endpoint: Endpoint) -> Members:
    status = (
        [{"Status": v.status, "StartTime": endpoint.updated_at}]
        if v.status in VARIANT_STATUSES
        else []
    )
    return {
        "VariantName": v.name,
        "CurrentWeight": v.current_weight,
        "DesiredWeight": v.desired_weight,
        "CurrentInstanceCount": v.current_instance_count,
        "DesiredInstanceCount": v.desired_instance_count,
        "VariantStatus": status,
    }


def _pending(config: EndpointConfig, endpoint: Endpoint, since: object) -> Members:
    def summary(v: VariantSpec) -> Members:
        live = endpoint.variant(v.name)
        return {
            "VariantName": v.name,
            "DesiredWeight": v.initial_weight,
            "DesiredInstanceCount": v.instance_count,
            "CurrentWeight": live.current_weight if live else None,
            "CurrentInstanceCount": live.current_instance_count if live else None,
            "InstanceType": v.instance_type,
            "VariantStatus": [{"Status": "Creating", "StartTime": since}]
            if live is None or endpoint.status is EndpointStatus.CREATING
            else [],
        }

    return {
        "EndpointConfigName": config.name,
        "ProductionVariants": [summary(v) for v in config.production],
        "ShadowProductionVariants": [summary(v) for v in config.shadows] or None,
        "StartTime": since,
    }


def _capture_summary(config: EndpointConfig, s: Services) -> Members | None:
    capture = config.data_capture
    if capture is None:
        return None
    given = config.details.get("DataCaptureConfig", {})
    return {
        "EnableCapture": capture.enabled,
        "CaptureStatus": "Started" if capture.enabled else "Stopped",
        "CurrentSamplingPercentage": capture.sampling_percentage,
        "DestinationS3Uri": given.get("DestinationS3Uri")
        or capture.destination
        or s.settings.capture_dir.as_uri(),
        "KmsKeyId": given.get("KmsKeyId", ""),
    }


def _config(s: Services, name: str) -> EndpointConfig | None:
    """The endpoint config, or None once it was deleted (the endpoint keeps running it)."""
    try:
        return s.endpoints.get_endpoint_config(name)
    except NotFound:
        return None
