"""With an S3 store configured, a SageMaker script's s3:// URIs are S3's own: model data is
read from a real S3-compatible server and capture files are uploaded to it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.conftest import RunningServer, S3Server
from tests.e2e.helpers import digit_rows
from tests.e2e.test_sagemaker_workflow import ROLE, clients, until, wait

pytestmark = pytest.mark.slow


@pytest.fixture
def s3_sluice(tmp_path: Path, s3_server: S3Server) -> Iterator[RunningServer]:
    env = {"SLUICE_S3": json.dumps(s3_server.options), "SLUICE_CAPTURE_UPLOAD_INTERVAL_S": "0.5"}
    running = RunningServer(tmp_path / "home", env)
    yield running
    running.stop()


def test_model_data_and_capture_live_in_s3(
    s3_sluice: RunningServer, s3_server: S3Server, artifacts: dict[str, Path]
) -> None:
    s3 = s3_server.client()
    bucket = f"ml-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    s3.upload_file(str(artifacts["logreg_tar"]), bucket, "models/logreg.tar.gz")
    sm, runtime = clients(s3_sluice.url)

    with pytest.raises(ClientError) as missing:
        sm.create_model(
            ModelName="ghost",
            PrimaryContainer={"ModelDataUrl": f"s3://{bucket}/models/ghost.tar.gz"},
            ExecutionRoleArn=ROLE,
        )
    assert missing.value.response["Error"]["Code"] == "ValidationException"
    assert "does not exist in S3" in missing.value.response["Error"]["Message"]

    sm.create_model(
        ModelName="logreg",
        PrimaryContainer={"ModelDataUrl": f"s3://{bucket}/models/logreg.tar.gz"},
        ExecutionRoleArn=ROLE,
    )
    sm.create_endpoint_config(
        EndpointConfigName="captured",
        ProductionVariants=[
            {
                "VariantName": "A",
                "ModelName": "logreg",
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
        DataCaptureConfig={
            "InitialSamplingPercentage": 100,
            "DestinationS3Uri": f"s3://{bucket}/capture",
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        },
    )
    sm.create_endpoint(EndpointName="digits", EndpointConfigName="captured")
    wait(sm, "endpoint_in_service", "digits")
    for i, body in enumerate(digit_rows(5)):
        runtime.invoke_endpoint(
            EndpointName="digits", ContentType="application/json", Body=body, InferenceId=f"s3-{i}"
        )

    def captured_ids() -> set[str]:
        listing = s3.list_objects_v2(Bucket=bucket, Prefix="capture/digits/A/")
        ids = set()
        for item in listing.get("Contents", []):
            lines = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read().splitlines()
            ids |= {json.loads(line)["eventMetadata"]["inferenceId"] for line in lines}
        return ids

    assert until(lambda: captured_ids() == {f"s3-{i}" for i in range(5)}, timeout=30)
    config = sm.describe_endpoint_config(EndpointConfigName="captured")
    assert config["DataCaptureConfig"]["DestinationS3Uri"] == f"s3://{bucket}/capture"
    sm.delete_endpoint(EndpointName="digits")
    wait(sm, "endpoint_deleted", "digits")
