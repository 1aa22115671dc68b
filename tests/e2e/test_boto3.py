"""boto3's sagemaker-runtime client, unchanged, against a real server."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from sluice.client import Client
from tests import models
from tests.conftest import RunningServer

pytestmark = pytest.mark.slow


def test_invoke_endpoint_with_boto3(server: RunningServer, artifacts: dict[str, Path]) -> None:
    with Client(server.url) as client:
        client.create_model("logreg", str(artifacts["logreg"]))
        client.create_model("crashing", str(artifacts["crashing"]))
        client.create_endpoint_config(
            "cfg",
            [{"name": "A", "model": "logreg"}, {"name": "C", "model": "crashing", "weight": 0}],
        )
        client.create_endpoint("digits", "cfg", wait=True, timeout=60)
    runtime = boto3.client(
        "sagemaker-runtime",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 1}),
    )
    x, y = models.digits()
    answer = runtime.invoke_endpoint(
        EndpointName="digits",
        ContentType="application/json",
        Accept="application/json",
        Body=json.dumps([x[5].tolist()]),
        InferenceId="boto-1",
    )
    assert answer["InvokedProductionVariant"] == "A"
    assert answer["ContentType"] == "application/json"
    assert json.loads(answer["Body"].read())["predictions"] == [int(y[5])]

    with pytest.raises(runtime.exceptions.ModelError) as info:
        runtime.invoke_endpoint(
            EndpointName="digits",
            TargetVariant="C",
            ContentType="application/json",
            Body=json.dumps([[-1.0] * 64]),
        )
    error = info.value.response
    assert error["Error"]["Code"] == "ModelError"
    assert error["OriginalStatusCode"] == 500
    assert "negative pixel values" in error["OriginalMessage"]

    with pytest.raises(runtime.exceptions.ValidationError):
        runtime.invoke_endpoint(
            EndpointName="missing", ContentType="application/json", Body="[[1]]"
        )
