"""Multi-container endpoints (an inference pipeline, and containers invoked directly)
through boto3, unchanged, against a running server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests import models
from tests.conftest import RunningServer
from tests.e2e.helpers import aws_client, metric

pytestmark = pytest.mark.slow

# Reads {"pixels": [...]} records and hands the model CSV rows: the next container's input.
PREPROCESS = """
import json

def model_fn(model_dir):
    return None

def input_fn(body, content_type):
    return [record["pixels"] for record in json.loads(body)]

def predict_fn(data, model):
    return data

def output_fn(rows, accept):
    return "\\n".join(",".join(str(v) for v in row) for row in rows) + "\\n", "text/csv"
"""


def _endpoint(sm: Any, name: str, containers: list[dict[str, Any]], mode: str) -> None:
    sm.create_model(ModelName=name, Containers=containers, InferenceExecutionConfig={"Mode": mode})
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[{"VariantName": "all", "ModelName": name,
                             "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}],
    )  # fmt: skip
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )


def test_an_inference_pipeline_feeds_each_answer_to_the_next_container(
    server: RunningServer, artifacts: dict[str, Path], tmp_path: Path
) -> None:
    preprocess = models.write_handler(tmp_path / "pre", PREPROCESS, with_model=False)
    sm, runtime = aws_client("sagemaker", server.url), aws_client("sagemaker-runtime", server.url)
    _endpoint(
        sm,
        "pipeline",
        [
            {"ContainerHostname": "pre", "ModelDataUrl": str(preprocess)},
            {"ContainerHostname": "model", "ModelDataUrl": str(artifacts["logreg"])},
        ],
        "Serial",
    )
    described = sm.describe_model(ModelName="pipeline")
    assert [c["ContainerHostname"] for c in described["Containers"]] == ["pre", "model"]
    x, y = models.digits()
    records = [{"pixels": x[i].tolist()} for i in range(8)]
    answer = runtime.invoke_endpoint(
        EndpointName="pipeline", ContentType="application/json", Body=json.dumps(records)
    )
    assert json.loads(answer["Body"].read())["predictions"] == list(y[:8])
    # Each step's failure is the request's: a record the first container cannot read.
    with pytest.raises(runtime.exceptions.ValidationError, match="input_fn"):
        runtime.invoke_endpoint(
            EndpointName="pipeline", ContentType="application/json", Body=b'[{"no": 1}]'
        )
    latency = "sluice_container_latency_seconds_count"  # of the answered requests
    assert metric(server.url, latency, endpoint="pipeline", container="pre") == 1
    assert metric(server.url, latency, endpoint="pipeline", container="model") == 1
    with pytest.raises(runtime.exceptions.ValidationError, match="Direct invocation"):
        runtime.invoke_endpoint(
            EndpointName="pipeline", TargetContainerHostname="model",
            ContentType="application/json", Body=json.dumps(records),
        )  # fmt: skip


def test_containers_invoked_directly(server: RunningServer, artifacts: dict[str, Path]) -> None:
    sm, runtime = aws_client("sagemaker", server.url), aws_client("sagemaker-runtime", server.url)
    with pytest.raises(sm.exceptions.ClientError, match="ContainerHostname is required"):
        sm.create_model(
            ModelName="nameless",
            Containers=[{"ModelDataUrl": str(artifacts["logreg"])},
                        {"ModelDataUrl": str(artifacts["tree"])}],
            InferenceExecutionConfig={"Mode": "Direct"},
        )  # fmt: skip
    _endpoint(
        sm,
        "direct",
        [
            {"ContainerHostname": "logreg", "ModelDataUrl": str(artifacts["logreg"])},
            {"ContainerHostname": "tree", "ModelDataUrl": str(artifacts["tree"])},
        ],
        "Direct",
    )
    x, y = models.digits()
    body = json.dumps([x[7].tolist()])
    for hostname in ("logreg", "tree", "logreg"):
        answer = runtime.invoke_endpoint(
            EndpointName="direct", TargetContainerHostname=hostname,
            ContentType="application/json", Body=body,
        )  # fmt: skip
        assert json.loads(answer["Body"].read())["predictions"] == [y[7]]
    with pytest.raises(runtime.exceptions.ValidationError, match="missing TargetContainer"):
        runtime.invoke_endpoint(EndpointName="direct", ContentType="application/json", Body=body)
    with pytest.raises(runtime.exceptions.ValidationError, match="names no container"):
        runtime.invoke_endpoint(
            EndpointName="direct", TargetContainerHostname="forest",
            ContentType="application/json", Body=body,
        )  # fmt: skip
    invocations = "sluice_container_invocations_total"
    assert metric(server.url, invocations, endpoint="direct", container="logreg") == 2
    assert metric(server.url, invocations, endpoint="direct", container="tree") == 1
