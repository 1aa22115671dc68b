"""Multi-model endpoints through boto3, unchanged, against a running server."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config

from sluice.client import Client
from sluice.errors import ValidationError
from tests import models
from tests.conftest import RunningServer
from tests.e2e.helpers import aws_client, metric

pytestmark = pytest.mark.slow

SKLEARN_IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"


def _prefix(tmp_path: Path, artifacts: dict[str, Path], *keys: str) -> Path:
    """A folder of model archives (the digits logistic regression) under `keys`."""
    prefix = tmp_path / "models"
    for key in keys:
        (prefix / key).parent.mkdir(parents=True, exist_ok=True)
        models.tarball(artifacts["logreg"], prefix / key)
    return prefix


def _deploy(
    sm: Any, name: str, prefix: Path, instances: int = 1, wait: bool = True, **environment: str
) -> None:
    sm.create_model(
        ModelName=name,
        PrimaryContainer={"Image": SKLEARN_IMAGE, "Mode": "MultiModel",
                          "ModelDataUrl": f"{prefix}/", "Environment": environment},
    )  # fmt: skip
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[{"VariantName": "all", "ModelName": name,
                             "InitialInstanceCount": instances, "InstanceType": "ml.m5.large"}],
    )  # fmt: skip
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    if wait:
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
        )


def _predict(runtime: Any, endpoint: str, target: str, row: list[float]) -> list[Any]:
    answer = runtime.invoke_endpoint(
        EndpointName=endpoint,
        TargetModel=target,
        ContentType="application/json",
        Body=json.dumps([row]),
    )
    answer = json.loads(answer["Body"].read())  # a SageMaker scikit-learn image's: bare
    predictions: list[Any] = answer if isinstance(answer, list) else answer["predictions"]
    return predictions


def test_models_under_a_prefix_load_on_first_use(
    server: RunningServer, artifacts: dict[str, Path], tmp_path: Path
) -> None:
    prefix = tmp_path / "models"
    prefix.mkdir()
    models.tarball(artifacts["logreg"], prefix / "logreg.tar.gz")
    models.tarball(artifacts["tree"], prefix / "tree.tar.gz")
    sm, runtime = aws_client("sagemaker", server.url), aws_client("sagemaker-runtime", server.url)
    _deploy(sm, "many", prefix)
    assert sm.describe_model(ModelName="many")["PrimaryContainer"]["Mode"] == "MultiModel"

    x, y = models.digits()
    assert _predict(runtime, "many", "logreg.tar.gz", x[3].tolist()) == [y[3]]
    assert _predict(runtime, "many", "tree.tar.gz", x[3].tolist()) == [y[3]]
    assert _predict(runtime, "many", "logreg.tar.gz", x[4].tolist()) == [y[4]]

    # A model uploaded after the endpoint started, asked for by many callers at once:
    # served to all of them, downloaded and loaded once.
    (prefix / "sub").mkdir()
    models.tarball(artifacts["logreg"], prefix / "sub" / "late.tar.gz")

    async def first_calls() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            return await asyncio.gather(
                *(
                    http.post(
                        "/endpoints/many/invocations",
                        content=json.dumps([x[i].tolist()]),
                        headers={"Content-Type": "application/json",
                                 "X-Amzn-SageMaker-Target-Model": "sub/late.tar.gz"},
                    )
                    for i in range(20)
                )
            )  # fmt: skip

    replies = asyncio.run(first_calls())
    assert [r.status_code for r in replies] == [200] * 20
    assert [json.loads(r.content)[0] for r in replies] == list(y[:20])

    cache = "sluice_model_cache_requests_total"
    misses = metric(server.url, cache, endpoint="many", outcome="miss")
    assert misses >= 3 and misses + metric(server.url, cache, endpoint="many", outcome="hit") == 23
    loads = "sluice_model_transfer_seconds_count"
    assert metric(server.url, loads, endpoint="many", kind="load") == 3
    assert metric(server.url, loads, endpoint="many", kind="download") == 3
    assert metric(server.url, "sluice_loaded_models", endpoint="many") == 3

    # The same figures in the metric history, as CloudWatch's.
    cw = aws_client("cloudwatch", server.url)
    dimensions = [
        {"Name": "EndpointName", "Value": "many"},
        {"Name": "VariantName", "Value": "all"},
    ]

    def statistic(namespace: str, name: str, which: str) -> float:
        points = cw.get_metric_statistics(
            Namespace=namespace, MetricName=name, Dimensions=dimensions,
            StartTime=datetime.now(UTC) - timedelta(minutes=5),
            EndTime=datetime.now(UTC) + timedelta(minutes=1), Period=600, Statistics=[which],
        )["Datapoints"]  # fmt: skip
        return float(sum(p[which] for p in points))

    deadline = time.monotonic() + 30
    while statistic("AWS/SageMaker", "ModelCacheHit", "SampleCount") < 23:  # every 10 s
        assert time.monotonic() < deadline, "no multi-model metrics after 30 s"
        time.sleep(1)
    assert statistic("AWS/SageMaker", "ModelCacheHit", "Sum") == 23 - misses
    assert statistic("AWS/SageMaker", "ModelLoadingTime", "SampleCount") == 3
    assert statistic("AWS/SageMaker", "ModelDownloadingTime", "SampleCount") == 3
    assert statistic("AWS/SageMaker", "ModelLoadingWaitTime", "SampleCount") == misses
    assert statistic("/aws/sagemaker/Endpoints", "LoadedModelCount", "Maximum") == 3


def test_multi_model_errors_are_sagemakers(
    server: RunningServer, artifacts: dict[str, Path], tmp_path: Path
) -> None:
    prefix = _prefix(tmp_path, artifacts, "logreg.tar.gz")
    sm, runtime = aws_client("sagemaker", server.url), aws_client("sagemaker-runtime", server.url)
    _deploy(sm, "many", prefix)
    row = models.digits()[0][0].tolist()
    with pytest.raises(runtime.exceptions.ValidationError, match="Failed to download model"):
        _predict(runtime, "many", "missing.tar.gz", row)
    with pytest.raises(runtime.exceptions.ValidationError, match="missing a target model"):
        runtime.invoke_endpoint(EndpointName="many", ContentType="application/json",
                                Body=json.dumps([row]))  # fmt: skip
    with pytest.raises(runtime.exceptions.ValidationError, match="without .."):
        _predict(runtime, "many", "../logreg.tar.gz", row)
    with Client(server.url) as client:
        client.create_model("single", str(artifacts["logreg"]))
        client.create_endpoint_config("single", [{"name": "A", "model": "single"}])
        client.create_endpoint("single", "single", wait=True, timeout=60)
    with pytest.raises(runtime.exceptions.ValidationError, match="not a multi-model endpoint"):
        _predict(runtime, "single", "logreg.tar.gz", row)
    assert _predict(runtime, "many", "logreg.tar.gz", row) == [0]  # nothing broke


def test_each_model_stays_on_one_instance(
    server: RunningServer, artifacts: dict[str, Path], tmp_path: Path
) -> None:
    prefix = _prefix(tmp_path, artifacts, *(f"m{i}.tar.gz" for i in range(6)))
    sm, runtime = aws_client("sagemaker", server.url), aws_client("sagemaker-runtime", server.url)
    _deploy(sm, "spread", prefix, instances=2)
    row = models.digits()[0][0].tolist()
    for _ in range(3):
        for i in range(6):
            assert _predict(runtime, "spread", f"m{i}.tar.gz", row) == [0]
    loads = metric(
        server.url, "sluice_model_transfer_seconds_count", endpoint="spread", kind="load"
    )
    assert loads == 6  # each on one instance: never loaded twice
    assert metric(server.url, "sluice_loaded_models", endpoint="spread") == 6


def test_capture_and_shadows_carry_the_target_model(
    server: RunningServer, artifacts: dict[str, Path], tmp_path: Path
) -> None:
    prefix = _prefix(tmp_path, artifacts, "logreg.tar.gz")
    sm, runtime = aws_client("sagemaker", server.url), aws_client("sagemaker-runtime", server.url)
    sm.create_model(
        ModelName="many",
        PrimaryContainer={"Mode": "MultiModel", "ModelDataUrl": f"{prefix}/"},
    )
    variant = {"ModelName": "many", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}
    sm.create_endpoint_config(
        EndpointConfigName="watched",
        ProductionVariants=[{"VariantName": "prod", **variant}],
        ShadowProductionVariants=[{"VariantName": "shadow", **variant}],
        DataCaptureConfig={
            "EnableCapture": True,
            "InitialSamplingPercentage": 100,
            "DestinationS3Uri": "s3://capture/mme",
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        },
    )
    sm.create_endpoint(EndpointName="watched", EndpointConfigName="watched")
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName="watched", WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    row = models.digits()[0][0].tolist()
    for _ in range(5):
        assert _predict(runtime, "watched", "logreg.tar.gz", row) == [0]
    capture = server.home / "s3" / "capture" / "mme" / "watched"
    records: list[dict[str, Any]] = []
    deadline = time.monotonic() + 30
    while len(records) < 10 and time.monotonic() < deadline:  # production's and the shadow's
        time.sleep(0.2)
        records = [
            json.loads(line)
            for file in capture.rglob("*.jsonl")
            for line in file.read_text().splitlines()
        ]
    assert len(records) == 10
    assert {r["eventMetadata"]["targetModel"] for r in records} == {"logreg.tar.gz"}
    assert {p.name for p in capture.iterdir()} == {"prod", "shadow"}
    shadow = "sluice_model_cache_requests_total"
    assert metric(server.url, shadow, endpoint="watched", variant="shadow") == 5


def test_preloaded_models_are_loaded_on_every_instance_before_it_serves(
    server: RunningServer, artifacts: dict[str, Path], tmp_path: Path
) -> None:
    prefix = _prefix(tmp_path, artifacts, "hot.tar.gz", "a/cold.tar.gz")
    sm, runtime = aws_client("sagemaker", server.url), aws_client("sagemaker-runtime", server.url)
    _deploy(sm, "pinned", prefix, instances=2, SLUICE_MODEL_PRELOAD="hot.tar.gz")
    assert metric(server.url, "sluice_loaded_models", endpoint="pinned") == 2  # one each
    row = models.digits()[0][0].tolist()
    for _ in range(6):
        assert _predict(runtime, "pinned", "hot.tar.gz", row) == [0]
    cache = "sluice_model_cache_requests_total"
    assert metric(server.url, cache, endpoint="pinned", outcome="hit") == 6
    assert _predict(runtime, "pinned", "a/cold.tar.gz", row) == [0]
    assert metric(server.url, cache, endpoint="pinned", outcome="miss") == 1

    # A preloaded key that is not there fails the endpoint, saying which.
    _deploy(sm, "absent", prefix, wait=False, SLUICE_MODEL_PRELOAD='["hot.tar.gz", "gone.tar.gz"]')
    deadline = time.monotonic() + 60
    while (described := sm.describe_endpoint(EndpointName="absent"))["EndpointStatus"] in (
        "Creating"
    ):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert described["EndpointStatus"] == "Failed"
    assert "key: gone.tar.gz" in described["FailureReason"]
    with pytest.raises(sm.exceptions.ClientError, match="the server sets it"):
        sm.create_model(
            ModelName="sneaky",
            PrimaryContainer={"Mode": "MultiModel", "ModelDataUrl": f"{prefix}/",
                              "Environment": {"SLUICE_MODEL_PINNED": '[["sklearn", "/etc"]]'}},
        )  # fmt: skip
    with pytest.raises(sm.exceptions.ClientError, match="without .."):
        sm.create_model(
            ModelName="climbing",
            PrimaryContainer={"Mode": "MultiModel", "ModelDataUrl": f"{prefix}/",
                              "Environment": {"SLUICE_MODEL_PRELOAD": "../x.tar.gz"}},
        )  # fmt: skip


# A model that takes 3 s to load.
SLOW_LOAD = """
import time
import joblib

def model_fn(model_dir):
    time.sleep(3)
    return joblib.load(model_dir + "/model.joblib")
"""


@pytest.fixture
def impatient_server(tmp_path: Path) -> Iterator[RunningServer]:
    running = RunningServer(tmp_path / "home", {"SLUICE_TARGET_MODEL_READY_S": "1"})
    yield running
    running.stop()


def test_a_slow_load_answers_model_not_ready_and_goes_on(
    impatient_server: RunningServer, tmp_path: Path
) -> None:
    server = impatient_server
    prefix = tmp_path / "models"
    prefix.mkdir()
    models.tarball(models.write_handler(tmp_path / "slow", SLOW_LOAD), prefix / "slow.tar.gz")
    sm = aws_client("sagemaker", server.url)
    # One attempt only (botocore's legacy mode retries a 429 once).
    once = Config(retries={"mode": "standard", "total_max_attempts": 1})
    runtime = boto3.session.Session().client(
        "sagemaker-runtime", endpoint_url=server.url, region_name="us-east-1",
        aws_access_key_id="test", aws_secret_access_key="test", config=once,
    )  # fmt: skip
    _deploy(sm, "slow", prefix)
    row = models.digits()[0][0].tolist()
    started = time.monotonic()
    with pytest.raises(runtime.exceptions.ModelNotReadyException, match="still being"):
        _predict(runtime, "slow", "slow.tar.gz", row)
    assert time.monotonic() - started < 2.5  # told after 1 s, not after the load
    deadline = time.monotonic() + 30
    while True:  # as a client does: retry until the load is done
        try:
            assert _predict(runtime, "slow", "slow.tar.gz", row) == [0]
            break
        except runtime.exceptions.ModelNotReadyException:
            assert time.monotonic() < deadline
            time.sleep(0.5)
    cache = "sluice_model_cache_requests_total"
    assert (
        metric(server.url, "sluice_model_transfer_seconds_count", endpoint="slow", kind="load") == 1
    )
    before = metric(server.url, cache, endpoint="slow", outcome="hit")
    started = time.monotonic()
    assert _predict(runtime, "slow", "slow.tar.gz", row) == [0]  # loaded: answered at once
    assert time.monotonic() - started < 1
    assert metric(server.url, cache, endpoint="slow", outcome="hit") == before + 1


def test_the_native_api_and_cli_serve_many_models_and_containers(
    server: RunningServer, artifacts: dict[str, Path], tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from sluice.cli.main import cli

    prefix = _prefix(tmp_path, artifacts, "one.tar.gz", "two.tar.gz")
    base = ["--url", server.url]
    run = CliRunner().invoke
    result = run(cli, [*base, "models", "create", "many", "--artifact", str(prefix),
                       "--multi-model"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["runtime"] == "multi-model"
    x, y = models.digits()
    with Client(server.url) as client:
        client.create_endpoint_config("many", [{"name": "A", "model": "many"}])
        client.create_endpoint("many", "many", wait=True, timeout=60)
        for key in ("one.tar.gz", "two.tar.gz"):
            answer = client.invoke("many", json.dumps([x[5].tolist()]), target_model=key)
            assert json.loads(answer.body)["predictions"] == [y[5]]
        client.create_model(
            "both",
            containers=[{"hostname": "logreg", "artifact": str(artifacts["logreg"])},
                        {"hostname": "tree", "artifact": str(artifacts["tree"])}],
            mode="direct",
        )  # fmt: skip
        client.create_endpoint_config("both", [{"name": "A", "model": "both"}])
        client.create_endpoint("both", "both", wait=True, timeout=60)
    result = run(cli, [*base, "invoke", "both", "--target-container", "tree",
                       "-d", json.dumps([x[6].tolist()])])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.splitlines()[-1])["predictions"] == [y[6]]
    result = run(cli, [*base, "invoke", "many", "--target-model", "two.tar.gz",
                       "-d", json.dumps([x[7].tolist()])])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.splitlines()[-1])["predictions"] == [y[7]]
    refused = pytest.raises(ValidationError, match="containers or an artifact")
    with Client(server.url) as client, refused:
        client.create_model(
            "mixed", str(artifacts["logreg"]),
            containers=[{"hostname": "a", "artifact": str(artifacts["logreg"])}],
        )  # fmt: skip
