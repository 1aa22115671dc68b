"""The SageMaker-compatible API's bad cases through real boto3 clients: validation against
the service model, missing and taken names, unknown operations, pages under concurrent
changes, runtime errors as the exception classes boto3 raises against AWS, signatures."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore import UNSIGNED
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import ClientError

from tests import models
from tests.conftest import RunningServer
from tests.e2e.helpers import digit_rows

pytestmark = pytest.mark.slow

ARN = "arn:aws:sagemaker:us-east-1:000000000000"


def client(url: str, service: str = "sagemaker", **options: Any) -> BaseClient:
    config = Config(retries={"max_attempts": 1}, **options.pop("config", {}))
    return boto3.client(
        service,
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=options.pop("key", "AKIDEXAMPLE"),
        aws_secret_access_key=options.pop("secret", "secret"),
        config=config,
    )


@pytest.fixture
def sm(server: RunningServer, artifacts: dict[str, Path]) -> Iterator[BaseClient]:
    """A client that skips boto3's own checks, so the server's are what is tested."""
    c = client(server.url, config={"parameter_validation": False})
    c.create_model(ModelName="logreg", PrimaryContainer={"ModelDataUrl": str(artifacts["logreg"])})
    yield c
    c.close()


def error(call: Any, **members: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as info:
        call(**members)
    return info.value.response


def variant(**overrides: Any) -> dict[str, Any]:
    return {"VariantName": "A", "ModelName": "logreg", "InitialInstanceCount": 1, **overrides}


def test_requests_are_checked_against_the_service_model(sm: BaseClient) -> None:
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("create_endpoint_config",
         {"EndpointConfigName": "bad_name!", "ProductionVariants": [variant()]},
         "Value 'bad_name!' at 'endpointConfigName' failed to satisfy constraint: Member must "
         "satisfy regular expression pattern: [a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}"),
        ("create_endpoint_config",
         {"EndpointConfigName": "c", "ProductionVariants": [variant(InitialVariantWeight=-1)]},
         "Value '-1' at 'productionVariants.1.member.initialVariantWeight' failed to satisfy "
         "constraint: Member must have value greater than or equal to 0"),
        ("create_endpoint_config",
         {"EndpointConfigName": "c", "ProductionVariants": [variant(InitialInstanceCount="2")]},
         "at 'productionVariants.1.member.initialInstanceCount' failed to satisfy constraint: "
         "Member must be an integer"),
        ("create_endpoint_config",
         {"EndpointConfigName": "c", "ProductionVariants": [variant(InstanceType="ml.huge")]},
         "Member must satisfy enum value set: [ml.t2.medium,"),
        ("create_endpoint_config", {"EndpointConfigName": "c", "ProductionVariants": []},
         "at 'productionVariants' failed to satisfy constraint: Member must have length "
         "greater than or equal to 1"),
        ("create_model", {"PrimaryContainer": {"ModelDataUrl": "/m"}},
         "Value null at 'modelName' failed to satisfy constraint: Member must not be null"),
        ("list_endpoints", {"SortOrder": "Sideways", "MaxResults": 1000},
         "2 validation errors detected: "),
        ("create_model", {"ModelName": "m"},
         "PrimaryContainer (or Containers) is required"),
        ("create_model", {"ModelName": "m", "PrimaryContainer": {"Image": "x"}},
         "PrimaryContainer.ModelDataUrl is required"),
        ("create_model",
         {"ModelName": "m", "PrimaryContainer": {"ModelDataUrl": "/m", "Mode": "MultiModel"}},
         "/m is outside the folders"),
        ("create_model",
         {"ModelName": "m", "Containers": [{"ModelDataUrl": "/m"}] * 2,
          "InferenceExecutionConfig": {"Mode": "Direct"}},
         "Containers.1.ContainerHostname is required"),
        ("create_model",
         {"ModelName": "m", "Containers": [{"ModelDataUrl": "/m", "ContainerHostname": "a"}] * 2},
         "ContainerHostname is used twice"),
        ("create_model", {"ModelName": "m", "PrimaryContainer": {"ModelDataUrl": "/no/such"}},
         "outside the folders"),
        ("create_model", {"ModelName": "m", "PrimaryContainer": {"ModelDataUrl": "s3://b/none"}},
         "does not exist"),
        ("create_endpoint_config",
         {"EndpointConfigName": "c", "ProductionVariants": [variant(VariantName="B"), variant()],
          "Tags": [{"Key": "aws:owner", "Value": "x"}]},
         "reserved"),
    ]  # fmt: skip
    for method, members, message in cases:
        response = error(getattr(sm, method), **members)
        assert response["Error"]["Code"] == "ValidationException", (method, members, response)
        assert message in response["Error"]["Message"], (message, response["Error"]["Message"])
        assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    # Nothing half-made: the refused config with a tag did not stay behind.
    assert sm.list_endpoint_configs()["EndpointConfigs"] == []


def test_missing_and_taken_names_answer_as_sagemaker_does(sm: BaseClient) -> None:
    for method, members, text in [
        ("describe_model", {"ModelName": "nope"}, f'Could not find model "{ARN}:model/nope".'),
        ("delete_model", {"ModelName": "nope"}, f'Could not find model "{ARN}:model/nope".'),
        ("describe_endpoint_config", {"EndpointConfigName": "nope"},
         f'Could not find endpoint configuration "{ARN}:endpoint-config/nope".'),
        ("describe_endpoint", {"EndpointName": "Nope"},
         f'Could not find endpoint "{ARN}:endpoint/nope".'),
        ("delete_endpoint", {"EndpointName": "nope"}, "Could not find endpoint"),
        ("create_endpoint", {"EndpointName": "ep", "EndpointConfigName": "nope"},
         f'Could not find endpoint configuration "{ARN}:endpoint-config/nope".'),
        ("update_endpoint", {"EndpointName": "nope", "EndpointConfigName": "nope"},
         "Could not find endpoint configuration"),
        ("create_model", {"ModelName": "logreg", "PrimaryContainer": {"ModelDataUrl": "/x"}},
         f'Cannot create already existing model "{ARN}:model/logreg".'),
        ("list_tags", {"ResourceArn": f"{ARN}:endpoint/nope"}, "Could not find resource"),
        ("list_tags", {"ResourceArn": "arn:aws:s3:::bucket"}, "at 'resourceArn' failed"),
        ("list_tags", {"ResourceArn": "arn:aws:sagemaker:eu-west-1:000000000000:model/m"},
         "not in this server's region and account"),
    ]:  # fmt: skip
        response = error(getattr(sm, method), **members)
        assert response["Error"]["Code"] == "ValidationException", (method, response)
        assert text in response["Error"]["Message"], (method, response["Error"]["Message"])
    # Where the service model has ResourceNotFound, boto3 raises that class.
    with pytest.raises(sm.exceptions.ResourceNotFound):
        sm.describe_inference_experiment(Name="nope")
    with pytest.raises(sm.exceptions.ResourceNotFound):
        sm.start_inference_experiment(Name="nope")
    # The endpoint_deleted waiter succeeds on the ValidationException at once.
    sm.get_waiter("endpoint_deleted").wait(EndpointName="nope", WaiterConfig={"Delay": 1})


def test_unknown_operations_and_bodies_that_are_not_json(server: RunningServer) -> None:
    def post(target: str | None, body: bytes = b"{}") -> httpx.Response:
        headers = {"Content-Type": "application/x-amz-json-1.1"}
        if target:
            headers["X-Amz-Target"] = target
        return httpx.post(server.url + "/", content=body, headers=headers)

    for target, body, code in [
        ("SageMaker.CreateAutoMLJob", b"{}", "UnknownOperationException"),
        ("Kinesis.PutRecord", b"{}", "UnknownOperationException"),
        (None, b"{}", "UnknownOperationException"),
        ("SageMaker.ListModels", b"{not json", "SerializationException"),
        ("SageMaker.ListModels", b"[1, 2]", "ValidationException"),
    ]:
        response = post(target, body)
        assert response.status_code == 400, response.text
        assert response.json()["__type"] == code, response.text
        assert response.headers["content-type"] == "application/x-amz-json-1.1"
        assert response.headers["x-amzn-requestid"]
    assert post("SageMaker.ListModels", b"").json() == {"Models": []}


def test_list_operations_page_filter_and_sort(
    server: RunningServer, artifacts: dict[str, Path]
) -> None:
    sm = client(server.url)
    before = datetime.now(UTC) - timedelta(seconds=1)
    names = [f"model-{i:02d}" for i in range(25)]
    for name in names:
        sm.create_model(ModelName=name, PrimaryContainer={"ModelDataUrl": str(artifacts["logreg"])})
    seen: list[str] = []
    token: dict[str, str] = {}
    while True:
        page = sm.list_models(MaxResults=10, **token)
        seen += [m["ModelName"] for m in page["Models"]]
        if "NextToken" not in page:
            break
        token = {"NextToken": page["NextToken"]}
        if len(seen) == 10:
            sm.delete_model(ModelName=seen[0])  # a change between pages shifts nothing
    assert seen == list(reversed(names))  # newest first by default
    assert len(sm.list_models()["Models"]) == 10  # SageMaker's default page
    by_name = sm.get_paginator("list_models").paginate(
        SortBy="Name", SortOrder="Ascending", PaginationConfig={"PageSize": 7}
    )
    assert [m["ModelName"] for p in by_name for m in p["Models"]] == sorted(names)[:-1]
    assert [m["ModelName"] for m in sm.list_models(NameContains="MODEL-1")["Models"]] == [
        f"model-{i}" for i in range(19, 9, -1)
    ]
    assert sm.list_models(CreationTimeBefore=before)["Models"] == []
    assert len(sm.list_models(CreationTimeAfter=before, MaxResults=100)["Models"]) == 24
    with pytest.raises(ClientError, match="NextToken"):
        sm.list_models(NextToken="garbage")
    sm.close()


def test_concurrent_clients_create_and_delete(
    server: RunningServer, artifacts: dict[str, Path]
) -> None:
    failures: list[BaseException] = []

    def work(worker: int) -> None:
        sm = client(server.url)
        try:
            for i in range(5):
                name = f"w{worker}-{i}"
                sm.create_model(
                    ModelName=name, PrimaryContainer={"ModelDataUrl": str(artifacts["logreg"])}
                )
                sm.create_endpoint_config(
                    EndpointConfigName=name,
                    ProductionVariants=[variant(ModelName=name)],
                    Tags=[{"Key": "worker", "Value": str(worker)}],
                )
                if i % 2:
                    sm.delete_endpoint_config(EndpointConfigName=name)
                    sm.delete_model(ModelName=name)
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            failures.append(exc)
        finally:
            sm.close()

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    sm = client(server.url)
    configs = sm.list_endpoint_configs(MaxResults=100)["EndpointConfigs"]
    assert sorted(c["EndpointConfigName"] for c in configs) == sorted(
        f"w{w}-{i}" for w in range(8) for i in (0, 2, 4)
    )
    tags = sm.list_tags(ResourceArn=configs[0]["EndpointConfigArn"])["Tags"]
    assert [t["Key"] for t in tags] == ["worker"]
    sm.close()


def test_runtime_errors_are_the_classes_boto3_knows(
    tmp_path: Path, artifacts: dict[str, Path]
) -> None:
    server = RunningServer(tmp_path / "home", {"SLUICE_INVOCATION_TIMEOUT_S": "0.5"})
    dying = models.write_handler(tmp_path / "dying", models.DYING)
    try:
        sm, runtime = client(server.url), client(server.url, "sagemaker-runtime")
        for name, artifact in (("slow", artifacts["slow"]), ("dying", dying)):
            sm.create_model(
                ModelName=name,
                PrimaryContainer={
                    "ModelDataUrl": str(artifact),
                    "Environment": {"SLOW_SECONDS": "3"},
                },
            )
        sm.create_endpoint_config(
            EndpointConfigName="c",
            ProductionVariants=[
                variant(ModelName="slow"),
                variant(VariantName="D", ModelName="dying", InitialVariantWeight=0.0),
            ],
        )
        sm.create_endpoint(EndpointName="ep", EndpointConfigName="c")
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName="ep", WaiterConfig={"Delay": 1, "MaxAttempts": 60}
        )
        body = digit_rows(1)[0]
        # As SageMaker: a model that does not answer in time is the model's error.
        with pytest.raises(runtime.exceptions.ModelError, match="did not answer within"):
            runtime.invoke_endpoint(EndpointName="ep", ContentType="application/json", Body=body)
        # Before D's worker is killed below: its restart may outlast the 0.5 s timeout.
        with pytest.raises(runtime.exceptions.ValidationError):
            runtime.invoke_endpoint(
                EndpointName="ep", TargetVariant="D", ContentType="application/xml", Body=b"<x/>"
            )
        # An input that kills its worker is the model's error, never retried into more crashes.
        with pytest.raises(runtime.exceptions.ModelError, match="exited while handling"):
            runtime.invoke_endpoint(
                EndpointName="ep",
                TargetVariant="D",
                ContentType="application/json",
                Body=json.dumps([[-1.0] * 64]),
            )
        with pytest.raises(runtime.exceptions.ValidationError, match="multi-model"):
            runtime.invoke_endpoint(
                EndpointName="ep", ContentType="application/json", Body=body, TargetModel="a.tgz"
            )
        with pytest.raises(runtime.exceptions.ValidationError, match="of account 000000000000"):
            runtime.invoke_endpoint(EndpointName="nope", ContentType="application/json", Body=body)
    finally:
        server.stop()


def test_signatures_are_verified_when_keys_are_configured(
    tmp_path: Path, artifacts: dict[str, Path]
) -> None:
    keys = {"AKIDSLUICE": "right-secret"}
    server = RunningServer(
        tmp_path / "home", {"SLUICE_AWS_ACCESS_KEYS": json.dumps(keys)}, auth=True
    )
    try:
        good = client(server.url, key="AKIDSLUICE", secret="right-secret")
        good.create_model(
            ModelName="m", PrimaryContainer={"ModelDataUrl": str(artifacts["logreg"])}
        )
        good.create_endpoint_config(
            EndpointConfigName="c", ProductionVariants=[variant(ModelName="m")]
        )
        good.create_endpoint(EndpointName="ep", EndpointConfigName="c")
        good.get_waiter("endpoint_in_service").wait(EndpointName="ep", WaiterConfig={"Delay": 1})
        runtime = client(server.url, "sagemaker-runtime", key="AKIDSLUICE", secret="right-secret")
        answer = runtime.invoke_endpoint(
            EndpointName="ep", ContentType="application/json", Body=digit_rows(1)[0]
        )
        assert answer["InvokedProductionVariant"] == "A"

        for bad, code in [
            (client(server.url, key="AKIDSLUICE", secret="wrong"), "InvalidSignatureException"),
            (client(server.url, key="AKIDOTHER", secret="x"), "UnrecognizedClientException"),
            (client(server.url, config={"signature_version": UNSIGNED}),
             "MissingAuthenticationTokenException"),
        ]:  # fmt: skip
            response = error(bad.list_models)
            assert response["Error"]["Code"] == code
            assert response["ResponseMetadata"]["HTTPStatusCode"] == 403
        wrong = client(server.url, "sagemaker-runtime", key="AKIDSLUICE", secret="wrong")
        response = error(
            wrong.invoke_endpoint, EndpointName="ep", ContentType="application/json", Body=b"[[1]]"
        )
        assert response["Error"]["Code"] == "InvalidSignatureException"
    finally:
        server.stop()


def test_instance_types_carry_their_memory_limits(
    tmp_path: Path, artifacts: dict[str, Path]
) -> None:
    limits = {"ml.t2.medium": 64, "ml.m5.large": 8192}
    server = RunningServer(tmp_path / "home", {"SLUICE_INSTANCE_MEMORY_MB": json.dumps(limits)})
    try:
        sm = client(server.url)
        sm.create_model(ModelName="m", PrimaryContainer={"ModelDataUrl": str(artifacts["logreg"])})
        for name, instance_type in (("big", "ml.m5.large"), ("small", "ml.t2.medium")):
            sm.create_endpoint_config(
                EndpointConfigName=name,
                ProductionVariants=[variant(ModelName="m", InstanceType=instance_type)],
            )
            sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
        sm.get_waiter("endpoint_in_service").wait(EndpointName="big", WaiterConfig={"Delay": 1})
        with pytest.raises(Exception, match="Failed"):  # the waiter's failure state
            sm.get_waiter("endpoint_in_service").wait(
                EndpointName="small", WaiterConfig={"Delay": 1}
            )
        reason = sm.describe_endpoint(EndpointName="small")["FailureReason"]
        assert "the worker may map 64 MiB: setting instance_memory_mb" in reason, reason
    finally:
        server.stop()
