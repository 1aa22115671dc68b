"""Application Auto Scaling (AWS JSON 1.1, `X-Amz-Target: AnyScaleFrontendService.<Op>`)
for SageMaker variants, over sluice's autoscaler.

Requests go through `JsonService` (the body checked against botocore's model, the
operation run off the event loop); each operation checks the namespace, dimension and
resource id. Errors carry Application Auto Scaling's `__type` (ValidationException,
ObjectNotFoundException, InvalidNextTokenException, InternalServiceException).
"""

from __future__ import annotations

import re
from typing import Any

from sluice.compat.json_service import JsonService, Operation, ServiceError, Wording
from sluice.control.autoscaling import Autoscaler
from sluice.entities import ScalableTarget, ScalingActivity, ScalingPolicy, ScheduledAction
from sluice.errors import NotFound, SluiceError

TARGET = "AnyScaleFrontendService"
NAMESPACE = "sagemaker"
DIMENSION = "sagemaker:variant:DesiredInstanceCount"
PAGE = 50
_RESOURCE = re.compile(r"^endpoint/([^/]+)/variant/([^/]+)$")


class AutoscalingError(ServiceError):
    """An error in Application Auto Scaling's words."""


class AutoscalingApi(JsonService):
    def __init__(self, autoscaler: Autoscaler) -> None:
        self.autoscaler = autoscaler
        operations: dict[str, Operation] = {
            "RegisterScalableTarget": self.register_scalable_target,
            "DescribeScalableTargets": self.describe_scalable_targets,
            "DeregisterScalableTarget": self.deregister_scalable_target,
            "PutScalingPolicy": self.put_scaling_policy,
            "DescribeScalingPolicies": self.describe_scaling_policies,
            "DeleteScalingPolicy": self.delete_scaling_policy,
            "DescribeScalingActivities": self.describe_scaling_activities,
            "PutScheduledAction": self.put_scheduled_action,
            "DescribeScheduledActions": self.describe_scheduled_actions,
            "DeleteScheduledAction": self.delete_scheduled_action,
        }
        wording = Wording(
            "Application Auto Scaling",
            "ValidationException",
            "Message",
            ("InternalServiceException", "internal error"),
        )
        super().__init__("application-autoscaling", TARGET, operations, wording, _run)

    # -- scalable targets

    def register_scalable_target(self, m: dict[str, Any]) -> dict[str, Any]:
        endpoint, variant = _resource(m)
        target = self.autoscaler.register(
            endpoint,
            variant,
            m.get("MinCapacity"),
            m.get("MaxCapacity"),
            m.get("RoleARN"),
            m.get("SuspendedState"),
        )
        return {"ScalableTargetARN": _target_arn(target, self.autoscaler.region)}

    def describe_scalable_targets(self, m: dict[str, Any]) -> dict[str, Any]:
        _namespace(m)
        wanted = {_parse_resource(r) for r in m.get("ResourceIds") or ()}
        found = [
            t
            for t in self.autoscaler.find_targets()
            if not wanted or (t.endpoint, t.variant) in wanted
        ]
        region = self.autoscaler.region
        return _page(m, "ScalableTargets", [_target(t, region) for t in found])

    def deregister_scalable_target(self, m: dict[str, Any]) -> dict[str, Any]:
        endpoint, variant = _resource(m)
        try:
            self.autoscaler.deregister(endpoint, variant)
        except NotFound:
            raise _no_target(endpoint, variant) from None
        return {}

    # -- policies

    def put_scaling_policy(self, m: dict[str, Any]) -> dict[str, Any]:
        endpoint, variant = _resource(m)
        kind = m.get("PolicyType") or "StepScaling"
        configuration = (
            m.get("TargetTrackingScalingPolicyConfiguration")
            if kind == "TargetTrackingScaling"
            else m.get("StepScalingPolicyConfiguration")
        ) or {}
        if self.autoscaler.repo.target(endpoint, variant) is None:
            raise _no_target(endpoint, variant)
        policy = self.autoscaler.put_policy(endpoint, variant, m["PolicyName"], kind, configuration)
        return {"PolicyARN": policy.arn, "Alarms": []}

    def describe_scaling_policies(self, m: dict[str, Any]) -> dict[str, Any]:
        _namespace(m)
        endpoint, variant = _optional_resource(m)
        names = set(m.get("PolicyNames") or ())
        found = [
            p
            for p in self.autoscaler.find_policies(endpoint, variant)
            if not names or p.name in names
        ]
        return _page(m, "ScalingPolicies", [self._policy(p) for p in found])

    def delete_scaling_policy(self, m: dict[str, Any]) -> dict[str, Any]:
        endpoint, variant = _resource(m)
        try:
            self.autoscaler.delete_policy(endpoint, variant, m["PolicyName"])
        except NotFound as exc:
            raise AutoscalingError("ObjectNotFoundException", exc.message) from None
        return {}

    def _policy(self, policy: ScalingPolicy) -> dict[str, Any]:
        described: dict[str, Any] = {
            "PolicyARN": policy.arn,
            "PolicyName": policy.name,
            "ServiceNamespace": NAMESPACE,
            "ResourceId": f"endpoint/{policy.endpoint}/variant/{policy.variant}",
            "ScalableDimension": DIMENSION,
            "PolicyType": policy.policy_type,
            "CreationTime": policy.created_at,
            "Alarms": [
                {"AlarmName": a.name, "AlarmARN": _alarm_arn(a.name, self.autoscaler.region)}
                for a in self.autoscaler.policy_alarms(policy.arn)
            ],
        }
        key = (
            "TargetTrackingScalingPolicyConfiguration"
            if policy.policy_type == "TargetTrackingScaling"
            else "StepScalingPolicyConfiguration"
        )
        described[key] = policy.configuration
        return described

    # -- activities and scheduled actions

    def describe_scaling_activities(self, m: dict[str, Any]) -> dict[str, Any]:
        _namespace(m)
        endpoint, variant = _optional_resource(m)
        found = self.autoscaler.activities(endpoint, variant)
        return _page(m, "ScalingActivities", [_activity(a) for a in found])

    def put_scheduled_action(self, m: dict[str, Any]) -> dict[str, Any]:
        endpoint, variant = _resource(m)
        if self.autoscaler.repo.target(endpoint, variant) is None:
            raise _no_target(endpoint, variant)
        action = m.get("ScalableTargetAction") or {}
        self.autoscaler.put_scheduled(
            endpoint,
            variant,
            m["ScheduledActionName"],
            m.get("Schedule"),
            m.get("Timezone"),
            m.get("StartTime"),
            m.get("EndTime"),
            action.get("MinCapacity"),
            action.get("MaxCapacity"),
        )
        return {}

    def describe_scheduled_actions(self, m: dict[str, Any]) -> dict[str, Any]:
        _namespace(m)
        endpoint, variant = _optional_resource(m)
        names = set(m.get("ScheduledActionNames") or ())
        found = [
            a
            for a in self.autoscaler.find_scheduled(endpoint, variant)
            if not names or a.name in names
        ]
        return _page(m, "ScheduledActions", [_scheduled(a) for a in found])

    def delete_scheduled_action(self, m: dict[str, Any]) -> dict[str, Any]:
        endpoint, variant = _resource(m)
        try:
            self.autoscaler.delete_scheduled(endpoint, variant, m["ScheduledActionName"])
        except NotFound as exc:
            raise AutoscalingError("ObjectNotFoundException", exc.message) from None
        return {}


def _run(operation: Operation, members: dict[str, Any]) -> dict[str, Any]:
    """The operation, with sluice's errors in Application Auto Scaling's words."""
    try:
        return operation(members)
    except NotFound as exc:
        raise AutoscalingError("ObjectNotFoundException", exc.message) from None
    except SluiceError as exc:
        if exc.server_side:
            raise
        raise AutoscalingError("ValidationException", exc.message) from None


def _namespace(m: dict[str, Any]) -> None:
    if m.get("ServiceNamespace") != NAMESPACE:
        raise AutoscalingError(
            "ValidationException",
            f"sluice scales SageMaker variants only (ServiceNamespace {NAMESPACE!r}), not "
            f"{m.get('ServiceNamespace')!r}",
        )
    dimension = m.get("ScalableDimension")
    if dimension is not None and dimension != DIMENSION:
        raise AutoscalingError(
            "ValidationException",
            f"sluice scales the dimension {DIMENSION!r}, not {dimension!r}",
        )


def _resource(m: dict[str, Any]) -> tuple[str, str]:
    _namespace(m)
    if m.get("ScalableDimension") is None:
        raise AutoscalingError("ValidationException", "ScalableDimension is required")
    return _parse_resource(m["ResourceId"])


def _optional_resource(m: dict[str, Any]) -> tuple[str | None, str | None]:
    if not m.get("ResourceId"):
        return None, None
    return _parse_resource(m["ResourceId"])


def _parse_resource(resource_id: str) -> tuple[str, str]:
    found = _RESOURCE.fullmatch(resource_id)
    if found is None:
        raise AutoscalingError(
            "ValidationException",
            f"ResourceId {resource_id!r} must be endpoint/<endpoint-name>/variant/<variant-name>",
        )
    return found.group(1), found.group(2)


def _no_target(endpoint: str, variant: str) -> AutoscalingError:
    return AutoscalingError(
        "ObjectNotFoundException",
        f"No scalable target registered for service namespace: {NAMESPACE}, resource ID: "
        f"endpoint/{endpoint}/variant/{variant}, scalable dimension: {DIMENSION}",
    )


def _target(target: ScalableTarget, region: str) -> dict[str, Any]:
    return {
        "ServiceNamespace": NAMESPACE,
        "ResourceId": target.resource_id,
        "ScalableDimension": DIMENSION,
        "MinCapacity": target.min_capacity,
        "MaxCapacity": target.max_capacity,
        "RoleARN": target.role_arn
        or "arn:aws:iam::000000000000:role/aws-service-role/sagemaker.application-autoscaling"
        ".amazonaws.com/AWSServiceRoleForApplicationAutoScaling_SageMakerEndpoint",
        "CreationTime": target.created_at,
        "SuspendedState": {
            name: name in target.suspended
            for name in (
                "DynamicScalingInSuspended",
                "DynamicScalingOutSuspended",
                "ScheduledScalingSuspended",
            )
        },
        "ScalableTargetARN": _target_arn(target, region),
    }


def _target_arn(target: ScalableTarget, region: str) -> str:
    return (
        f"arn:aws:application-autoscaling:{region}:000000000000:scalable-target/"
        f"sagemaker/{target.resource_id}"
    )


def _alarm_arn(name: str, region: str) -> str:
    return f"arn:aws:cloudwatch:{region}:000000000000:alarm:{name}"


def _activity(activity: ScalingActivity) -> dict[str, Any]:
    out: dict[str, Any] = {
        "ActivityId": activity.id,
        "ServiceNamespace": NAMESPACE,
        "ResourceId": f"endpoint/{activity.endpoint}/variant/{activity.variant}",
        "ScalableDimension": DIMENSION,
        "Description": activity.description,
        "Cause": activity.cause,
        "StartTime": activity.started_at,
        "StatusCode": activity.status,
    }
    if activity.ended_at is not None:
        out["EndTime"] = activity.ended_at
    if activity.message:
        out["StatusMessage"] = activity.message
    if activity.details:
        out["Details"] = activity.details
    return out


def _scheduled(action: ScheduledAction) -> dict[str, Any]:
    out: dict[str, Any] = {
        "ScheduledActionName": action.name,
        "ScheduledActionARN": action.arn,
        "ServiceNamespace": NAMESPACE,
        "Schedule": action.schedule,
        "Timezone": action.timezone,
        "ResourceId": f"endpoint/{action.endpoint}/variant/{action.variant}",
        "ScalableDimension": DIMENSION,
        "ScalableTargetAction": {
            k: v
            for k, v in (("MinCapacity", action.min_capacity), ("MaxCapacity", action.max_capacity))
            if v is not None
        },
        "CreationTime": action.created_at,
    }
    if action.start_time is not None:
        out["StartTime"] = action.start_time
    if action.end_time is not None:
        out["EndTime"] = action.end_time
    return out


def _page(m: dict[str, Any], key: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    token = m.get("NextToken")
    if token and not token.isdigit():
        raise AutoscalingError("InvalidNextTokenException", "The NextToken is not one sluice gave")
    offset = int(token or 0)
    size = m.get("MaxResults") or PAGE
    out: dict[str, Any] = {key: items[offset : offset + size]}
    if offset + size < len(items):
        out["NextToken"] = str(offset + size)
    return out
