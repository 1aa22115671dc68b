"""boto3's application-autoscaling, cloudwatch and sagemaker clients, unchanged, against a
real server: target tracking scales a variant out under load and back in after it, a
CloudWatch alarm drives a step-scaling policy, scheduled actions move the bounds, and bad
requests get Application Auto Scaling's errors. No request fails while instances come and
go."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError

from tests.conftest import RunningServer
from tests.e2e.helpers import Load, aws_client, digit_rows

pytestmark = pytest.mark.slow

ROLE = "arn:aws:iam::000000000000:role/SageMakerRole"
RESOURCE = "endpoint/digits/variant/A"
DIMENSION = "sagemaker:variant:DesiredInstanceCount"
WINDOWS = {
    "SLUICE_AUTOSCALING_TICK_S": "0.5",
    "SLUICE_AUTOSCALING_STABLE_WINDOW_S": "8",
    "SLUICE_AUTOSCALING_PANIC_WINDOW_S": "2",
}


client = aws_client


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    running = RunningServer(tmp_path / "home", WINDOWS)
    yield running
    running.stop()


@pytest.fixture
def endpoint(server: RunningServer, artifacts: dict[str, Path]) -> BaseClient:
    return deploy(server, artifacts)


def deploy(server: RunningServer, artifacts: dict[str, Path], **config: Any) -> BaseClient:
    """Endpoint `digits`, variant A on one instance, made with boto3's sagemaker client;
    `config`: more members of its endpoint config (AsyncInferenceConfig, ...)."""
    sm = client("sagemaker", server.url)
    sm.create_model(
        ModelName="logreg",
        PrimaryContainer={"Image": "sklearn", "ModelDataUrl": artifacts["logreg"].as_uri()},
        ExecutionRoleArn=ROLE,
    )
    sm.create_endpoint_config(
        EndpointConfigName="cfg",
        ProductionVariants=[
            {"VariantName": "A", "ModelName": "logreg", "InitialInstanceCount": 1,
             "InstanceType": "ml.m5.large"},
        ],
        **config,
    )  # fmt: skip
    sm.create_endpoint(EndpointName="digits", EndpointConfigName="cfg")
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName="digits", WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    return sm


def instances(sm: BaseClient) -> int:
    variant = sm.describe_endpoint(EndpointName="digits")["ProductionVariants"][0]
    return int(variant["CurrentInstanceCount"])


def until(check: Any, timeout: float, what: str) -> float:
    """Seconds until `check()` held."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < timeout, f"{what}: not within {timeout} s"
        time.sleep(0.25)
    return time.monotonic() - start


def register(scaling: BaseClient, low: int = 1, high: int = 3) -> None:
    scaling.register_scalable_target(
        ServiceNamespace="sagemaker",
        ResourceId=RESOURCE,
        ScalableDimension=DIMENSION,
        MinCapacity=low,
        MaxCapacity=high,
    )


def test_target_tracking_scales_out_under_load_and_back_in_after_it(
    server: RunningServer, endpoint: BaseClient
) -> None:
    sm, scaling = endpoint, client("application-autoscaling", server.url)
    register(scaling)
    arn = scaling.put_scaling_policy(
        PolicyName="per-instance",
        ServiceNamespace="sagemaker",
        ResourceId=RESOURCE,
        ScalableDimension=DIMENSION,
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": 600.0,  # invocations per instance per minute: 10 a second
            "PredefinedMetricSpecification": {
                "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
            },
            "ScaleOutCooldown": 1,
            "ScaleInCooldown": 2,
        },
    )["PolicyARN"]
    assert arn.startswith("arn:aws:autoscaling:us-east-1:000000000000:scalingPolicy:")
    target = scaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    assert [(t["ResourceId"], t["MinCapacity"], t["MaxCapacity"]) for t in target] == [
        (RESOURCE, 1, 3)
    ]
    policies = scaling.describe_scaling_policies(ServiceNamespace="sagemaker", ResourceId=RESOURCE)
    assert (
        policies["ScalingPolicies"][0]["TargetTrackingScalingPolicyConfiguration"]["TargetValue"]
        == 600.0
    )

    # About 30 requests a second: 1,800 a minute need 3 instances at 600 each.
    with Load(server.url, "digits", digit_rows(50), concurrency=6, pause_s=0.2) as load:
        out_s = until(lambda: instances(sm) == 3, 40, "scale-out to 3")
        time.sleep(2)  # served by all three
    assert not load.failed(), load.failed()[:3]
    in_s = until(lambda: instances(sm) == 1, 40, "scale-in to 1")
    assert out_s < 20 and in_s > 5  # fast out, slow in (the stable window is 8 s)
    activities = scaling.describe_scaling_activities(
        ServiceNamespace="sagemaker", ResourceId=RESOURCE
    )["ScalingActivities"]
    assert activities and all(a["StatusCode"] == "Successful" for a in activities)
    last, first = activities[0], activities[-1]
    assert "target tracking policy per-instance" in first["Cause"]
    assert first["Description"].startswith("Setting desired instance count to ")
    assert last["Description"] == "Setting desired instance count to 1."
    counts = sm.describe_endpoint(EndpointName="digits")["ProductionVariants"][0]
    assert counts["DesiredInstanceCount"] == counts["CurrentInstanceCount"] == 1
    assert sm.describe_endpoint(EndpointName="digits")["EndpointStatus"] == "InService"


def test_a_cloudwatch_alarm_drives_a_step_policy(
    server: RunningServer, endpoint: BaseClient
) -> None:
    sm, scaling = endpoint, client("application-autoscaling", server.url)
    cw = client("cloudwatch", server.url)
    register(scaling, 1, 4)
    arn = scaling.put_scaling_policy(
        PolicyName="step-out",
        ServiceNamespace="sagemaker",
        ResourceId=RESOURCE,
        ScalableDimension=DIMENSION,
        PolicyType="StepScaling",
        StepScalingPolicyConfiguration={
            "AdjustmentType": "ChangeInCapacity",
            "StepAdjustments": [
                {"MetricIntervalLowerBound": 0, "MetricIntervalUpperBound": 1000,
                 "ScalingAdjustment": 1},
                {"MetricIntervalLowerBound": 1000, "ScalingAdjustment": 2},
            ],
            "Cooldown": 600,
        },
    )["PolicyARN"]  # fmt: skip
    with pytest.raises(ClientError) as refused:  # an action must name a policy that exists
        cw.put_metric_alarm(
            AlarmName="busy", Namespace="AWS/SageMaker", MetricName="Invocations",
            Dimensions=[{"Name": "EndpointName", "Value": "digits"}], Statistic="Sum",
            Period=2, EvaluationPeriods=1, Threshold=5, ComparisonOperator="GreaterThanThreshold",
            AlarmActions=[arn.replace("step-out", "nothing") + "x"],
        )  # fmt: skip
    assert "no scaling policy" in str(refused.value)
    cw.put_metric_alarm(
        AlarmName="busy", Namespace="AWS/SageMaker", MetricName="Invocations",
        Dimensions=[{"Name": "EndpointName", "Value": "digits"}], Statistic="Sum",
        Period=2, EvaluationPeriods=1, Threshold=5, ComparisonOperator="GreaterThanThreshold",
        AlarmActions=[arn],
    )  # fmt: skip
    alarm = cw.describe_alarms(AlarmNames=["busy"])["MetricAlarms"][0]
    assert alarm["AlarmActions"] == [arn] and alarm["ActionsEnabled"] is True
    policy = scaling.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"][0]
    assert [a["AlarmName"] for a in policy["Alarms"]] == ["busy"]

    # Actions off: the alarm goes to ALARM and nothing scales.
    cw.disable_alarm_actions(AlarmNames=["busy"])
    with Load(server.url, "digits", digit_rows(20), concurrency=2, pause_s=0.05) as load:
        until(
            lambda: (
                cw.describe_alarms(AlarmNames=["busy"])["MetricAlarms"][0]["StateValue"] == "ALARM"
            ),
            20,
            "alarm",
        )
        time.sleep(1.5)
        assert instances(sm) == 1
        # On: some 60 requests a period, well past the threshold of 5 but less than 1,000
        # past it: the first step, one more instance; then the cooldown.
        cw.enable_alarm_actions(AlarmNames=["busy"])
        until(lambda: instances(sm) == 2, 20, "step scale-out")
        time.sleep(3)
        assert instances(sm) == 2  # the cooldown holds it while the alarm stays in ALARM
    assert not load.failed()
    activity = scaling.describe_scaling_activities(ServiceNamespace="sagemaker")[
        "ScalingActivities"
    ][0]
    assert activity["Cause"].startswith("monitor alarm busy in state ALARM triggered step-out")
    assert activity["StatusCode"] == "Successful"

    # SetAlarmState is seen as a transition, until the next evaluation.
    cw.set_alarm_state(AlarmName="busy", StateValue="OK", StateReason="testing")
    history = cw.describe_alarm_history(AlarmName="busy")["AlarmHistoryItems"]
    assert any("set by a caller: testing" in h["HistoryData"] for h in history)


def test_scheduled_actions_move_the_bounds_and_bad_requests_are_refused(
    server: RunningServer, endpoint: BaseClient
) -> None:
    sm, scaling = endpoint, client("application-autoscaling", server.url)

    def refused(kind: str, call: Any, **members: Any) -> str:
        with pytest.raises(ClientError) as caught:
            call(**members)
        assert caught.value.response["Error"]["Code"] == kind, caught.value.response
        return str(caught.value)

    common = {"ServiceNamespace": "sagemaker", "ScalableDimension": DIMENSION}
    refused("ObjectNotFoundException", scaling.put_scaling_policy, PolicyName="p",
            ResourceId=RESOURCE, PolicyType="StepScaling", **common)  # fmt: skip
    assert "does not exist" in refused(
        "ValidationException", scaling.register_scalable_target,
        ResourceId="endpoint/nope/variant/A", MinCapacity=1, MaxCapacity=2, **common,
    )  # fmt: skip
    refused("ValidationException", scaling.register_scalable_target, ResourceId="nonsense",
            MinCapacity=1, MaxCapacity=2, **common)  # fmt: skip
    refused("ValidationException", scaling.register_scalable_target, ResourceId=RESOURCE,
            MinCapacity=3, MaxCapacity=2, **common)  # fmt: skip
    refused(
        "ValidationException",
        scaling.register_scalable_target,
        ResourceId=RESOURCE,
        MinCapacity=0,
        MaxCapacity=2,
        **common,
    )  # fmt: skip  (real-time: at least 1)
    refused("ValidationException", scaling.describe_scalable_targets, ServiceNamespace="ecs")
    register(scaling, 1, 2)
    assert "gap" in refused(
        "ValidationException", scaling.put_scaling_policy, PolicyName="p", ResourceId=RESOURCE,
        PolicyType="StepScaling", StepScalingPolicyConfiguration={
            "AdjustmentType": "ChangeInCapacity",
            "StepAdjustments": [
                {"MetricIntervalUpperBound": 0, "ScalingAdjustment": -1},
                {"MetricIntervalLowerBound": 5, "ScalingAdjustment": 1},
            ]},
        **common,
    )  # fmt: skip
    refused("ValidationException", scaling.put_scaling_policy, PolicyName="p",
            ResourceId=RESOURCE, PolicyType="TargetTrackingScaling",
            TargetTrackingScalingPolicyConfiguration={
                "TargetValue": 5, "PredefinedMetricSpecification": {
                    "PredefinedMetricType": "ECSServiceAverageCPUUtilization"}},
            **common)  # fmt: skip
    refused("ObjectNotFoundException", scaling.delete_scaling_policy, PolicyName="none",
            ResourceId=RESOURCE, **common)  # fmt: skip
    refused("ValidationException", scaling.put_scheduled_action, ScheduledActionName="s",
            ResourceId=RESOURCE, Schedule="whenever", **common,
            ScalableTargetAction={"MinCapacity": 2})  # fmt: skip

    # A scheduled action that is due raises the floor; the autoscaler brings the count up.
    soon = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 2))
    scaling.put_scheduled_action(
        ScheduledActionName="morning", ResourceId=RESOURCE, Schedule=f"at({soon})",
        ScalableTargetAction={"MinCapacity": 2, "MaxCapacity": 2}, **common,
    )  # fmt: skip
    actions = scaling.describe_scheduled_actions(ServiceNamespace="sagemaker")["ScheduledActions"]
    assert [a["ScheduledActionName"] for a in actions] == ["morning"]
    until(lambda: instances(sm) == 2, 30, "scheduled floor")
    target = scaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"][0]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (2, 2)
    causes = [
        a["Cause"]
        for a in scaling.describe_scaling_activities(ServiceNamespace="sagemaker")[
            "ScalingActivities"
        ]
    ]
    assert "scheduled action name morning was triggered" in causes
    assert "the count is below MinCapacity 2" in causes

    # Deregistering drops the policies and scheduled actions with the target.
    scaling.deregister_scalable_target(ResourceId=RESOURCE, **common)
    left = scaling.describe_scheduled_actions(ServiceNamespace="sagemaker")["ScheduledActions"]
    assert left == []
    refused("ObjectNotFoundException", scaling.deregister_scalable_target,
            ResourceId=RESOURCE, **common)  # fmt: skip
    assert instances(sm) == 2  # what runs stays


def test_a_real_time_variant_scaled_to_zero_holds_its_next_requests_while_one_starts(
    tmp_path: Path, artifacts: dict[str, Path]
) -> None:
    server = RunningServer(
        tmp_path / "home", {**WINDOWS, "SLUICE_AUTOSCALING_REALTIME_SCALE_TO_ZERO": "true"}
    )
    try:
        sm = deploy(server, artifacts)
        scaling = client("application-autoscaling", server.url)
        register(scaling, 0, 2)
        scaling.put_scaling_policy(
            PolicyName="per-instance", ServiceNamespace="sagemaker", ResourceId=RESOURCE,
            ScalableDimension=DIMENSION, PolicyType="TargetTrackingScaling",
            TargetTrackingScalingPolicyConfiguration={
                "TargetValue": 600.0, "ScaleInCooldown": 1,
                "PredefinedMetricSpecification": {
                    "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
            },
        )  # fmt: skip
        until(lambda: instances(sm) == 0, 40, "scale-in to zero")  # no load: none needed
        runtime = client("sagemaker-runtime", server.url)
        body = digit_rows(1)[0]

        def invoke() -> int:
            answer = runtime.invoke_endpoint(
                EndpointName="digits", ContentType="application/json", Body=body
            )
            return int(answer["ResponseMetadata"]["HTTPStatusCode"])

        started = time.monotonic()
        with ThreadPoolExecutor(4) as pool:  # concurrent first requests share one wake
            statuses = list(pool.map(lambda _: invoke(), range(4)))
        held_s = time.monotonic() - started
        assert statuses == [200] * 4 and held_s < 15
        assert instances(sm) == 1
        woken = [
            a
            for a in scaling.describe_scaling_activities(ServiceNamespace="sagemaker")[
                "ScalingActivities"
            ]
            if a["Cause"] == "a request arrived while no instance ran"
        ]
        assert len(woken) == 1 and woken[0]["StatusCode"] == "Successful"
        assert woken[0]["Description"] == "Setting desired instance count to 1."
    finally:
        server.stop()


def test_an_async_variant_scales_to_zero_and_its_next_request_is_answered(
    server: RunningServer, artifacts: dict[str, Path]
) -> None:
    sm = deploy(
        server, artifacts,
        AsyncInferenceConfig={"OutputConfig": {"S3OutputPath": "s3://bucket/out"}},
    )  # fmt: skip
    scaling = client("application-autoscaling", server.url)
    runtime = client("sagemaker-runtime", server.url)
    register(scaling, 0, 2)  # MinCapacity 0: an async endpoint may, as in SageMaker
    scaling.put_scaling_policy(
        PolicyName="per-instance", ServiceNamespace="sagemaker", ResourceId=RESOURCE,
        ScalableDimension=DIMENSION, PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": 600.0, "ScaleInCooldown": 1,
            "PredefinedMetricSpecification": {
                "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
        },
    )  # fmt: skip
    until(lambda: instances(sm) == 0, 40, "scale-in to zero")
    source = server.home / "s3" / "bucket" / "in" / "row.json"
    source.parent.mkdir(parents=True)
    source.write_bytes(digit_rows(1)[0])
    reply = runtime.invoke_endpoint_async(
        EndpointName="digits", InputLocation="s3://bucket/in/row.json",
        ContentType="application/json",
    )  # fmt: skip
    output = server.home / "s3" / reply["OutputLocation"].removeprefix("s3://")
    until(output.exists, 30, "the answer of a request sent while scaled to zero")
    assert "predictions" in output.read_text()


def test_the_autoscaler_waits_for_a_deployment_to_finish(
    server: RunningServer, endpoint: BaseClient
) -> None:
    sm, scaling = endpoint, client("application-autoscaling", server.url)
    sm.create_endpoint_config(
        EndpointConfigName="cfg-2",
        ProductionVariants=[
            {"VariantName": "A", "ModelName": "logreg", "InitialInstanceCount": 1,
             "InstanceType": "ml.m5.large"},
        ],
    )  # fmt: skip
    canary = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "CANARY",
                "WaitIntervalInSeconds": 3,
                "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 50},
            },
            "TerminationWaitInSeconds": 0,
        }
    }
    sm.update_endpoint(EndpointName="digits", EndpointConfigName="cfg-2", DeploymentConfig=canary)
    register(scaling, 2, 3)  # above the running count, while the endpoint is Updating
    time.sleep(1.5)
    assert sm.describe_endpoint(EndpointName="digits")["EndpointStatus"] == "Updating"
    assert (
        scaling.describe_scaling_activities(ServiceNamespace="sagemaker")["ScalingActivities"] == []
    )  # nothing while the deployment runs
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName="digits", WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    done = time.time()
    until(lambda: instances(sm) == 2, 30, "the minimum after the update")
    (activity,) = scaling.describe_scaling_activities(ServiceNamespace="sagemaker")[
        "ScalingActivities"
    ]
    assert activity["StartTime"].timestamp() >= done - 1.5  # (the waiter polls each second)
    assert activity["Cause"] == "the count is below MinCapacity 2"
    assert sm.describe_endpoint(EndpointName="digits")["EndpointConfigName"] == "cfg-2"


def test_target_tracking_on_a_customized_metric_from_the_history(
    server: RunningServer, endpoint: BaseClient
) -> None:
    sm, scaling = endpoint, client("application-autoscaling", server.url)
    cw = client("cloudwatch", server.url)
    register(scaling, 1, 3)
    dimensions = [{"Name": "EndpointName", "Value": "digits"}]
    scaling.put_scaling_policy(
        PolicyName="queue", ServiceNamespace="sagemaker", ResourceId=RESOURCE,
        ScalableDimension=DIMENSION, PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration={
            "TargetValue": 10.0, "ScaleOutCooldown": 0, "ScaleInCooldown": 0,
            "CustomizedMetricSpecification": {
                "Namespace": "Team/Queue", "MetricName": "Depth", "Dimensions": dimensions,
                "Statistic": "Average"},
        },
    )  # fmt: skip
    # One instance with a queue of 25 each: 3 instances bring it to about 8, under 10.
    cw.put_metric_data(
        Namespace="Team/Queue",
        MetricData=[{"MetricName": "Depth", "Dimensions": dimensions, "Value": 25.0,
                     "StorageResolution": 1}],
    )  # fmt: skip
    until(lambda: instances(sm) == 3, 40, "scale-out on the customized metric")
    (activity,) = scaling.describe_scaling_activities(ServiceNamespace="sagemaker")[
        "ScalingActivities"
    ]
    assert activity["Cause"].startswith("target tracking policy queue: Team/Queue Depth Average")
