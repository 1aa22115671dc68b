"""No code execution by request: model environments, worker environments, bad numbers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import pytest
from botocore.exceptions import ClientError

from sluice.client import Client
from sluice.errors import ValidationError
from tests import models
from tests.conftest import RunningServer

pytestmark = pytest.mark.slow

ENVIRONMENT_ECHO = """
import json, os

def model_fn(model_dir):
    return None

def input_fn(body, content_type):
    return body

def predict_fn(data, model):
    return dict(os.environ)

def output_fn(prediction, accept):
    return json.dumps(prediction), "application/json"
"""

SECRETS = {
    "AWS_SECRET_ACCESS_KEY": "server-aws-secret",
    "DATABASE_PASSWORD": "server-db-password",
    "SLUICE_S3": '{"secret": "server-s3-secret"}',
    "GPU_CHOICE": "2",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = RunningServer(
        tmp_path_factory.mktemp("isolation") / "home",
        {**SECRETS, "SLUICE_WORKER_ENVIRONMENT": '["GPU_CHOICE"]'},
    )
    yield running
    running.stop()


def test_workers_get_no_secret_of_the_servers(server: RunningServer, tmp_path: Path) -> None:
    artifact = models.write_handler(tmp_path / "env", ENVIRONMENT_ECHO, with_model=False)
    with Client(server.url) as client:
        client.create_model("env", str(artifact), environment={"MODEL_SETTING": "on"})
        client.create_endpoint_config("env", [{"name": "A", "model": "env"}])
        client.create_endpoint("env", "env", wait=True)
        seen = client.invoke("env", b"{}").json()
    assert seen["MODEL_SETTING"] == "on"
    assert seen["GPU_CHOICE"] == "2"  # named by the operator in worker_environment
    assert seen["OMP_NUM_THREADS"] == "1"
    for name, value in SECRETS.items():
        if name != "GPU_CHOICE":
            assert name not in seen
            assert value not in json.dumps(seen)
    assert not [name for name in seen if name.startswith("SLUICE_")]


@pytest.mark.parametrize(
    ("environment", "field"),
    [
        ({"PYTHONPATH": "/tmp/evil"}, "Environment.PYTHONPATH"),
        ({"PYTHONSTARTUP": "/tmp/evil.py"}, "Environment.PYTHONSTARTUP"),
        ({"LD_PRELOAD": "/tmp/evil.so"}, "Environment.LD_PRELOAD"),
        ({"ld_library_path": "/tmp"}, "Environment.ld_library_path"),
        ({"GCONV_PATH": "/tmp"}, "Environment.GCONV_PATH"),
        ({"PATH": "/tmp"}, "Environment.PATH"),
        ({"OPENSSL_CONF": "/tmp/engine.cnf"}, "Environment.OPENSSL_CONF"),
        ({"BAD NAME": "x"}, "Environment"),
        ({"NUL": "a\0b"}, "Environment.NUL"),
        ({"LONG": "x" * 1025}, "Environment.LONG"),
        ({f"V{i}": "x" for i in range(101)}, "Environment"),
    ],
)
def test_environments_that_change_the_interpreter_are_refused(
    server: RunningServer, artifacts: dict[str, Path], environment: dict[str, str], field: str
) -> None:
    with Client(server.url) as client, pytest.raises(ValidationError) as info:
        client.create_model("refused", str(artifacts["logreg"]), environment=environment)
    assert info.value.field == field
    with Client(server.url) as client:
        assert "refused" not in [m.name for m in client.list_models()]


def test_sagemaker_create_model_refuses_them_too(
    server: RunningServer, artifacts: dict[str, Path]
) -> None:
    sagemaker = boto3.client(
        "sagemaker", endpoint_url=server.url, region_name="us-east-1",
        aws_access_key_id="any", aws_secret_access_key="any",
    )  # fmt: skip
    with pytest.raises(ClientError) as info:
        sagemaker.create_model(
            ModelName="evil",
            PrimaryContainer={
                "ModelDataUrl": str(artifacts["logreg"]),
                "Environment": {"LD_PRELOAD": "/tmp/evil.so"},
            },
            ExecutionRoleArn="arn:aws:iam::000000000000:role/x",
        )
    assert info.value.response["Error"]["Code"] == "ValidationException"
    assert "LD_PRELOAD" in info.value.response["Error"]["Message"]


def test_weights_must_be_finite_numbers(server: RunningServer, artifacts: dict[str, Path]) -> None:
    with Client(server.url) as client:
        client.create_model("w", str(artifacts["logreg"]))
        client.create_endpoint_config("w", [{"name": "A", "model": "w"}])
        client.create_endpoint("w", "w", wait=True)
    for weight in ("NaN", "Infinity", "-Infinity"):
        r = httpx.put(
            f"{server.url}/api/v1/endpoints/w/weights",
            content=f'{{"weights": {{"A": {weight}}}}}',
            headers={"Content-Type": "application/json"},
        )
        assert r.status_code == 400, r.text
        assert r.json()["field"] in ("DesiredWeight", "weights.A"), r.text
    config = {"name": "nan", "variants": [{"name": "A", "model": "w", "weight": "NaN"}]}
    r = httpx.post(
        f"{server.url}/api/v1/endpoint-configs",
        content=json.dumps(config).replace('"NaN"', "NaN"),
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 400, r.text
    with Client(server.url) as client:
        assert client.get_endpoint("w").variants[0].current_weight == 1.0


def test_registered_packages_refuse_them_at_registration(
    server: RunningServer, artifacts: dict[str, Path]
) -> None:
    with Client(server.url) as client:
        client.create_package_group("g")
        with pytest.raises(ValidationError) as info:
            client.register_package(
                "g", str(artifacts["logreg"]), environment={"PYTHONINSPECT": "1"}
            )
    assert "PYTHONINSPECT" in info.value.message
