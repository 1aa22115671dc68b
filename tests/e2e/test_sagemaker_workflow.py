"""A deployment script written for SageMaker, run unchanged against a real sluice server
through boto3's `sagemaker` and `sagemaker-runtime` clients: every answer is also checked
against the service model's output shape, strictly."""

from __future__ import annotations

import json
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.client import BaseClient
from botocore.config import Config

from sluice.compat.sagemaker.shapes import ServiceModel
from tests.conftest import RunningServer, database_env
from tests.e2e.helpers import digit_rows

pytestmark = pytest.mark.slow

ROLE = "arn:aws:iam::000000000000:role/SageMakerRole"
OPERATIONS = [
    "DescribeModel", "ListModels", "DescribeEndpointConfig", "ListEndpointConfigs",
    "DescribeEndpoint", "ListEndpoints", "DescribeInferenceExperiment",
    "ListInferenceExperiments", "ListTags", "AddTags",
]  # fmt: skip


@pytest.fixture(scope="module")
def shapes() -> ServiceModel:
    return ServiceModel("sagemaker", OPERATIONS)


def clients(url: str) -> tuple[BaseClient, BaseClient]:
    options: dict[str, Any] = {
        "endpoint_url": url,
        "region_name": "us-east-1",
        "aws_access_key_id": "AKIDEXAMPLE",
        "aws_secret_access_key": "secret",
        "config": Config(retries={"max_attempts": 1}),
    }
    return boto3.client("sagemaker", **options), boto3.client("sagemaker-runtime", **options)


@pytest.fixture(params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningServer]:
    """The server on each database it supports: its default SQLite and a real PostgreSQL."""
    env = database_env(request.param, request)
    running = RunningServer(tmp_path / "home", env)
    yield running
    running.stop()


@pytest.fixture
def aws(server: RunningServer) -> Iterator[tuple[BaseClient, BaseClient]]:
    sm, runtime = clients(server.url)
    yield sm, runtime
    sm.close()
    runtime.close()


def conforms(shapes: ServiceModel, operation: str, answer: dict[str, Any]) -> None:
    """The answer, as sent on the wire, has exactly the members the output shape allows."""
    body = {k: v for k, v in answer.items() if k != "ResponseMetadata"}
    wire = json.loads(json.dumps(body, default=lambda t: t.timestamp()))
    problems = list(shapes.problems(shapes.output_shape(operation) or "", wire))
    assert problems == [], problems


def wait(sm: BaseClient, waiter: str, name: str) -> None:
    sm.get_waiter(waiter).wait(EndpointName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120})


def invoke(runtime: BaseClient, endpoint: str, body: bytes, **extra: str) -> dict[str, Any]:
    answer = runtime.invoke_endpoint(
        EndpointName=endpoint,
        ContentType="application/json",
        Accept="application/json",
        Body=body,
        **extra,
    )
    answer["Body"] = json.loads(answer["Body"].read())
    return answer


def until(check: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)
    return result


def test_a_sagemaker_script_runs_unchanged(
    server: RunningServer,
    aws: tuple[BaseClient, BaseClient],
    artifacts: dict[str, Path],
    shapes: ServiceModel,
) -> None:
    sm, runtime = aws
    # Model data "in S3": s3://models/... lives under the server's home.
    bucket = server.home / "s3" / "models"
    bucket.mkdir(parents=True)
    shutil.copy(artifacts["logreg_tar"], bucket / "logreg.tar.gz")
    image = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1"
    arn = sm.create_model(
        ModelName="logreg",
        PrimaryContainer={
            "Image": image,
            "ModelDataUrl": "s3://models/logreg.tar.gz",
            "Environment": {"SAGEMAKER_PROGRAM": "inference.py"},
        },
        ExecutionRoleArn=ROLE,
        Tags=[{"Key": "team", "Value": "fraud"}],
    )["ModelArn"]
    assert arn == "arn:aws:sagemaker:us-east-1:000000000000:model/logreg"
    sm.create_model(
        ModelName="tree",
        Containers=[{"Image": image, "ModelDataUrl": artifacts["tree"].as_uri()}],
        ExecutionRoleArn=ROLE,
    )
    model = sm.describe_model(ModelName="logreg")
    conforms(shapes, "DescribeModel", model)
    assert model["PrimaryContainer"]["ModelDataUrl"] == "s3://models/logreg.tar.gz"
    assert model["ExecutionRoleArn"] == ROLE and model["EnableNetworkIsolation"] is False
    assert "Containers" in sm.describe_model(ModelName="tree")

    variant = {"InstanceType": "ml.m5.large", "InitialInstanceCount": 1}
    sm.create_endpoint_config(
        EndpointConfigName="ab",
        ProductionVariants=[
            {"VariantName": "A", "ModelName": "logreg", "InitialVariantWeight": 1.0, **variant},
            {"VariantName": "B", "ModelName": "tree", "InitialVariantWeight": 1.0, **variant},
        ],
        ShadowProductionVariants=[{"VariantName": "S", "ModelName": "tree", **variant}],
        DataCaptureConfig={
            "EnableCapture": True,
            "InitialSamplingPercentage": 100,
            "DestinationS3Uri": "s3://capture/ab",
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]},
        },
        KmsKeyId="alias/capture",
    )
    config = sm.describe_endpoint_config(EndpointConfigName="ab")
    conforms(shapes, "DescribeEndpointConfig", config)
    assert [v["VariantName"] for v in config["ProductionVariants"]] == ["A", "B"]
    assert config["ShadowProductionVariants"][0]["InstanceType"] == "ml.m5.large"

    sm.create_endpoint(EndpointName="fraud", EndpointConfigName="ab")
    creating = sm.describe_endpoint(EndpointName="fraud")
    assert creating["EndpointStatus"] == "Creating"
    assert creating["PendingDeploymentSummary"]["EndpointConfigName"] == "ab"
    wait(sm, "endpoint_in_service", "fraud")
    endpoint = sm.describe_endpoint(EndpointName="fraud")
    conforms(shapes, "DescribeEndpoint", endpoint)
    assert endpoint["EndpointStatus"] == "InService" and "PendingDeploymentSummary" not in endpoint
    assert {v["VariantName"]: v["CurrentWeight"] for v in endpoint["ProductionVariants"]} == {
        "A": 1.0,
        "B": 1.0,
    }
    assert endpoint["ShadowProductionVariants"][0]["VariantName"] == "S"
    assert endpoint["DataCaptureConfig"] == {
        "EnableCapture": True,
        "CaptureStatus": "Started",
        "CurrentSamplingPercentage": 100,
        "DestinationS3Uri": "s3://capture/ab",
        "KmsKeyId": "",
    }

    rows = digit_rows(100)
    served = Counter(invoke(runtime, "fraud", row)["InvokedProductionVariant"] for row in rows)
    assert set(served) == {"A", "B"} and served["A"] > 20 and served["B"] > 20
    answer = invoke(runtime, "fraud", rows[0], TargetVariant="B", InferenceId="req-1",
                    CustomAttributes="trace=1")  # fmt: skip
    assert answer["InvokedProductionVariant"] == "B"
    assert answer["ContentType"] == "application/json"
    # Captures land where DestinationS3Uri says, SageMaker's layout beneath.
    until(lambda: list((server.home / "s3" / "capture" / "ab" / "fraud").rglob("*.jsonl")))

    sm.update_endpoint_weights_and_capacities(
        EndpointName="fraud",
        DesiredWeightsAndCapacities=[
            {"VariantName": "A", "DesiredWeight": 1.0},
            {"VariantName": "B", "DesiredWeight": 0.0},
        ],
    )
    wait(sm, "endpoint_in_service", "fraud")
    assert {invoke(runtime, "fraud", row)["InvokedProductionVariant"] for row in rows[:30]} == {"A"}

    # A guarded update: canary, then the rest, watched by the deployment machinery.
    sm.create_endpoint_config(
        EndpointConfigName="ab-2",
        ProductionVariants=[
            {"VariantName": "A", "ModelName": "tree", "InitialVariantWeight": 1.0, **variant},
            {"VariantName": "B", "ModelName": "tree", "InitialVariantWeight": 0.0, **variant},
        ],
    )
    policy = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "CANARY",
                "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 50},
                "WaitIntervalInSeconds": 2,
            },
            "TerminationWaitInSeconds": 0,
        }
    }
    sm.update_endpoint(EndpointName="fraud", EndpointConfigName="ab-2", DeploymentConfig=policy)
    updating = sm.describe_endpoint(EndpointName="fraud")
    assert updating["EndpointStatus"] == "Updating"
    assert updating["PendingDeploymentSummary"]["EndpointConfigName"] == "ab-2"
    conforms(shapes, "DescribeEndpoint", updating)
    wait(sm, "endpoint_in_service", "fraud")
    updated = sm.describe_endpoint(EndpointName="fraud")
    assert updated["EndpointConfigName"] == "ab-2"
    assert updated["LastDeploymentConfig"] == policy
    assert "ShadowProductionVariants" not in updated

    # A shadow test of logistic regression beside A, promoted at the end.
    sm.create_inference_experiment(
        Name="logreg-vs-tree",
        Type="ShadowMode",
        RoleArn=ROLE,
        EndpointName="fraud",
        ModelVariants=[
            {"ModelName": m, "VariantName": v, "InfrastructureConfig": {
                "InfrastructureType": "RealTimeInference",
                "RealTimeInferenceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1}}}
            for m, v in (("tree", "A"), ("logreg", "Shadow"))
        ],
        ShadowModeConfig={
            "SourceModelVariantName": "A",
            "ShadowModelVariants": [
                {"ShadowModelVariantName": "Shadow", "SamplingPercentage": 100}
            ],
        },
        DataStorageConfig={"Destination": "s3://capture/shadow"},
        Tags=[{"Key": "ticket", "Value": "ML-42"}],
    )  # fmt: skip
    sm.start_inference_experiment(Name="logreg-vs-tree")
    until(lambda: sm.describe_inference_experiment(Name="logreg-vs-tree")["Status"] == "Running")
    experiment = sm.describe_inference_experiment(Name="logreg-vs-tree")
    conforms(shapes, "DescribeInferenceExperiment", experiment)
    assert experiment["EndpointMetadata"]["EndpointName"] == "fraud"
    assert experiment["DataStorageConfig"] == {"Destination": "s3://capture/shadow"}
    for row in rows[:20]:
        assert invoke(runtime, "fraud", row)["InvokedProductionVariant"] == "A"
    sm.stop_inference_experiment(
        Name="logreg-vs-tree",
        ModelVariantActions={"A": "Remove", "Shadow": "Promote"},
        Reason="the shadow is as accurate and faster",
    )
    until(
        lambda: sm.describe_inference_experiment(Name="logreg-vs-tree")["Status"] == "Completed",
        timeout=90,
    )
    wait(sm, "endpoint_in_service", "fraud")
    promoted = sm.describe_endpoint(EndpointName="fraud")
    config = sm.describe_endpoint_config(EndpointConfigName=promoted["EndpointConfigName"])
    models_by_variant = {v["VariantName"]: v["ModelName"] for v in config["ProductionVariants"]}
    assert models_by_variant["A"] == "logreg"
    listed = sm.list_inference_experiments(StatusEquals="Completed")["InferenceExperiments"]
    assert [x["Name"] for x in listed] == ["logreg-vs-tree"]

    # Tags on every kind of resource, by ARN.
    for resource in (
        arn,
        config["EndpointConfigArn"],
        promoted["EndpointArn"],
        experiment["Arn"],
    ):
        added = sm.add_tags(ResourceArn=resource, Tags=[{"Key": "stage", "Value": "prod"}])
        conforms(shapes, "AddTags", added)
        sm.delete_tags(ResourceArn=resource, TagKeys=["stage"])
        assert {"Key": "stage", "Value": "prod"} not in sm.list_tags(ResourceArn=resource)["Tags"]
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "team", "Value": "fraud"}]

    sm.delete_endpoint(EndpointName="fraud")
    wait(sm, "endpoint_deleted", "fraud")
    assert sm.list_endpoints()["Endpoints"] == []
