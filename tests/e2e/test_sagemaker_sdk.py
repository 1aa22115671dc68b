"""The SageMaker Python SDK (2.x), unchanged, deploying a scikit-learn entry point to sluice.

Only the environment points it here: AWS_ENDPOINT_URL_SAGEMAKER(_RUNTIME) at the server,
AWS_ENDPOINT_URL_S3 at an S3-compatible server (the store the server reads too).
"""

from __future__ import annotations

import json
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from tests import models
from tests.conftest import RunningServer, S3Server
from tests.e2e.test_sagemaker_workflow import ROLE

pytestmark = pytest.mark.slow

ENTRY_POINT = """
import os

import joblib


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))


def predict_fn(data, model):
    return model.predict(data) + OFFSET  # helpers.py sits beside this script
"""


@pytest.fixture
def sdk_env(
    tmp_path: Path, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> Iterator[RunningServer]:
    server = RunningServer(tmp_path / "home", {"SLUICE_S3": json.dumps(s3_server.options)})
    for name, value in {
        "AWS_ENDPOINT_URL_SAGEMAKER": server.url,
        "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": server.url,
        "AWS_ENDPOINT_URL_S3": s3_server.url,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "SAGEMAKER_SUPPRESS_V2_WARNING": "1",
    }.items():
        monkeypatch.setenv(name, value)
    yield server
    server.stop()


def test_sklearn_model_with_an_entry_point_deploys_unchanged(
    sdk_env: RunningServer, s3_server: S3Server, artifacts: dict[str, Path], tmp_path: Path
) -> None:
    import sagemaker
    from sagemaker.deserializers import JSONDeserializer
    from sagemaker.serializers import JSONSerializer
    from sagemaker.sklearn import SKLearnModel

    bucket = f"sdk-{uuid.uuid4().hex[:12]}"
    s3_server.client().create_bucket(Bucket=bucket)
    source = tmp_path / "source"
    source.mkdir()
    (source / "serve.py").write_text("from helpers import OFFSET\n" + textwrap.dedent(ENTRY_POINT))
    (source / "helpers.py").write_text("OFFSET = 0\n")

    session = sagemaker.Session(boto3.Session(), default_bucket=bucket)
    model_data = session.upload_data(str(artifacts["logreg_tar"]), bucket, "models")
    model = SKLearnModel(
        model_data=model_data,
        role=ROLE,
        entry_point="serve.py",
        source_dir=str(source),
        framework_version="1.2-1",
        sagemaker_session=session,
    )
    model.deploy(
        initial_instance_count=1,
        instance_type="ml.m5.large",
        endpoint_name="sdk",
        wait=False,
    )
    session.wait_for_endpoint("sdk", poll=1)
    described = session.sagemaker_client.describe_model(ModelName=model.name)
    environment = described["PrimaryContainer"]["Environment"]
    assert environment["SAGEMAKER_PROGRAM"] == "serve.py"
    assert environment["SAGEMAKER_SUBMIT_DIRECTORY"].startswith(f"s3://{bucket}/")

    predictor = sagemaker.Predictor(
        "sdk", session, serializer=JSONSerializer(), deserializer=JSONDeserializer()
    )
    x, y = models.digits()
    # As SageMaker's scikit-learn container answers: the predictions alone.
    assert predictor.predict(x[:5].tolist()) == list(y[:5])
    predictor.delete_endpoint()
    assert session.sagemaker_client.list_endpoints()["Endpoints"] == []


def test_a_sagemaker_sklearn_image_answers_as_its_container_unless_told(
    server: RunningServer, artifacts: dict[str, Path], tmp_path: Path
) -> None:
    from tests.e2e.helpers import aws_client

    image = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
    # The repacked form: the script inside the model's archive, under code/.
    repacked = tmp_path / "repacked"
    repacked.mkdir()
    (repacked / "model.joblib").write_bytes((artifacts["logreg"] / "model.joblib").read_bytes())
    (repacked / "code").mkdir()
    (repacked / "code" / "serve.py").write_text(
        "OFFSET = 0\n" + textwrap.dedent(ENTRY_POINT).replace("  # helpers.py", "  #")
    )
    sm, runtime = aws_client("sagemaker", server.url), aws_client("sagemaker-runtime", server.url)
    environments = {
        "bare": {},
        "rich": {"SLUICE_ANSWER": "sluice"},
        "script": {"SAGEMAKER_PROGRAM": "serve.py",
                   "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code"},
    }  # fmt: skip
    for name, environment in environments.items():
        data = repacked if name == "script" else artifacts["logreg"]
        sm.create_model(
            ModelName=name,
            PrimaryContainer={"Image": image, "ModelDataUrl": str(data),
                              "Environment": environment},
        )  # fmt: skip
        sm.create_endpoint_config(
            EndpointConfigName=name,
            ProductionVariants=[{"VariantName": "v", "ModelName": name,
                                 "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}],
        )  # fmt: skip
        sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    x, y = models.digits()
    body = json.dumps(x[:3].tolist())
    answers = {}
    for name in environments:
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
        )
        reply = runtime.invoke_endpoint(
            EndpointName=name, ContentType="application/json", Body=body
        )
        answers[name] = json.loads(reply["Body"].read())
    assert answers["bare"] == answers["script"] == list(y[:3])
    assert answers["rich"]["predictions"] == list(y[:3])
    assert len(answers["rich"]["probabilities"]) == 3
    with pytest.raises(sm.exceptions.ClientError, match="SAGEMAKER_PROGRAM names a script"):
        sm.create_model(
            ModelName="escape",
            PrimaryContainer={"Image": image, "ModelDataUrl": str(repacked),
                              "Environment": {"SAGEMAKER_PROGRAM": "../../etc/x.py"}},
        )  # fmt: skip
