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
from tests.e2e.test_sagemaker_workflow import until

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


# Takes rows (CSV, or a Parquet file's rows) and hands them on as CSV, each value halved:
# the model after it is fitted on pixels, so it answers only if it gets the doubled back.
HALVE = """
import numpy as np

def model_fn(model_dir):
    return None

def predict_fn(rows, model):
    return np.asarray(rows, dtype=float) / 2

def output_fn(rows, accept):
    return "".join(",".join(f"{v:g}" for v in row) + "\\n" for row in rows), "text/csv"
"""

DOUBLE = """
import numpy as np

def predict_fn(rows, model):
    return model.predict(np.asarray(rows, dtype=float) * 2)
"""


def test_a_pipeline_answers_batch_transform_and_async_requests(
    server: RunningServer, artifacts: dict[str, Path], tmp_path: Path
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    halve = models.write_handler(tmp_path / "halve", HALVE, with_model=False)
    double = models.write_handler(tmp_path / "double", DOUBLE)
    sm, runtime = aws_client("sagemaker", server.url), aws_client("sagemaker-runtime", server.url)
    containers = [
        {"ContainerHostname": "halve", "ModelDataUrl": str(halve)},
        {"ContainerHostname": "model", "ModelDataUrl": str(double)},
    ]
    sm.create_model(ModelName="halving", Containers=containers)
    x, y = models.digits()
    bucket = server.home / "s3" / "bucket"
    (bucket / "csv").mkdir(parents=True)
    (bucket / "csv" / "rows.csv").write_text(
        "".join(",".join(f"{v:g}" for v in row) + "\n" for row in x[:40])
    )
    (bucket / "pq").mkdir()
    table = pa.table({f"p{i}": x[:40, i] for i in range(64)})
    pq.write_table(table, bucket / "pq" / "rows.parquet", row_group_size=15)
    for job, folder, content_type in (
        ("csv-through", "csv", "text/csv"),
        ("parquet-through", "pq", "application/x-parquet"),
    ):
        sm.create_transform_job(
            TransformJobName=job, ModelName="halving",
            TransformInput={"DataSource": {"S3DataSource": {
                "S3DataType": "S3Prefix", "S3Uri": f"s3://bucket/{folder}/"}},
                "ContentType": content_type, "SplitType": "Line"},
            TransformOutput={"S3OutputPath": f"s3://bucket/out/{job}", "Accept": "text/csv",
                             "AssembleWith": "Line"},
            TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1},
        )  # fmt: skip
    for job, name in (("csv-through", "rows.csv"), ("parquet-through", "rows.parquet")):
        described = until(lambda j=job: _finished(sm, j))
        assert described["TransformJobStatus"] == "Completed", described.get("FailureReason")
        answers = (bucket / "out" / job / f"{name}.out").read_text().split()
        assert [int(a) for a in answers] == list(y[:40])

    sm.create_endpoint_config(
        EndpointConfigName="halving-async",
        ProductionVariants=[{"VariantName": "all", "ModelName": "halving",
                             "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}],
        AsyncInferenceConfig={"OutputConfig": {"S3OutputPath": "s3://bucket/async-out"}},
    )  # fmt: skip
    sm.create_endpoint(EndpointName="halving-async", EndpointConfigName="halving-async")
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName="halving-async", WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    reply = runtime.invoke_endpoint_async(
        EndpointName="halving-async", InputLocation="s3://bucket/csv/rows.csv",
        ContentType="text/csv", Accept="application/json",
    )  # fmt: skip
    output = bucket / reply["OutputLocation"].removeprefix("s3://bucket/")
    until(lambda: output.exists() or None)
    assert json.loads(output.read_text())["predictions"] == list(y[:40])


def _finished(sm: Any, job: str) -> dict[str, Any] | None:
    described: dict[str, Any] = sm.describe_transform_job(TransformJobName=job)
    return described if described["TransformJobStatus"] in ("Completed", "Failed") else None
