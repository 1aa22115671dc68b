"""Two gateways on one PostgreSQL database: an endpoint created on one is served by both,
a weight change on one is seen by the other within a second, a deletion on the other
stops it on both, when the gateway holding the controller lease is killed the other
takes the lease over, and a job whose gateway died is finished by the leader."""

from __future__ import annotations

import json
import shutil
import signal
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sluice.backends.local import SOCKET_DIR_NOTE, remove_stale
from sluice.client import Client
from sluice.store.db import Database
from sluice.store.lease_repo import LeaseRepository
from tests import models
from tests.conftest import PostgresServer, RunningServer
from tests.e2e.helpers import aws_client, canary
from tests.e2e.test_sagemaker_workflow import ROLE, clients, until

pytestmark = pytest.mark.slow

ROW = json.dumps([models.digits()[0][0].tolist()])
TERM_S = 2.0


@pytest.fixture
def database_url(postgres: PostgresServer) -> str:
    return postgres.new_database()


@pytest.fixture
def gateways(database_url: str, tmp_path: Path) -> Iterator[list[RunningServer]]:
    env = {
        "SLUICE_DATABASE_URL": database_url,
        "SLUICE_SHARED_DATABASE": "true",
        "SLUICE_LEASE_TERM_S": str(TERM_S),
        "SLUICE_DEPLOYMENT_RESTART_POLICY": "resume",
    }
    first = RunningServer(tmp_path / "first", env)
    second = RunningServer(tmp_path / "second", env)
    try:
        yield [first, second]
    finally:
        for server in (second, first):
            server.stop()
            # A gateway killed with -9 left its workers' socket folder (its next start
            # would remove it).
            remove_stale(server.home / SOCKET_DIR_NOTE)


ANSWERED: Counter[tuple[str, str]] = Counter()
"""Requests answered, by endpoint and variant, over both gateways."""


def _served_by(runtime: Any, endpoint: str) -> str | None:
    """The variant that answered one request, or None if the gateway does not serve it."""
    try:
        answer = runtime.invoke_endpoint(
            EndpointName=endpoint, ContentType="application/json", Body=ROW
        )
    except runtime.exceptions.ClientError:
        return None
    variant = str(answer["InvokedProductionVariant"])
    ANSWERED[endpoint, variant] += 1
    return variant


def _invocations(url: str, endpoint: str, variant: str) -> float:
    """CloudWatch's Invocations of a variant over the last minutes, as one gateway reads it."""
    cw = aws_client("cloudwatch", url)
    answer = cw.get_metric_statistics(
        Namespace="AWS/SageMaker",
        MetricName="Invocations",
        Dimensions=[
            {"Name": "EndpointName", "Value": endpoint},
            {"Name": "VariantName", "Value": variant},
        ],
        StartTime=datetime.now(UTC) - timedelta(minutes=10),
        EndTime=datetime.now(UTC) + timedelta(minutes=1),
        Period=60,
        Statistics=["Sum"],
    )
    return float(sum(p["Sum"] for p in answer["Datapoints"]))


def _holder(url: str) -> str | None:
    database = Database(url)
    try:
        lease = LeaseRepository(database).get("controller")
        return None if lease is None or lease.expires_at.timestamp() < time.time() else lease.holder
    finally:
        database.close()


def test_two_gateways_serve_and_follow_each_other(
    gateways: list[RunningServer], database_url: str, artifacts: dict[str, Path]
) -> None:
    first, second = gateways
    ANSWERED.clear()
    sm_first, rt_first = clients(first.url)
    sm_second, rt_second = clients(second.url)
    for name in ("one", "two"):
        sm_first.create_model(
            ModelName=name,
            PrimaryContainer={"ModelDataUrl": f"file://{artifacts['logreg_tar']}"},
            ExecutionRoleArn=ROLE,
        )
    sm_first.create_endpoint_config(
        EndpointConfigName="cfg",
        ProductionVariants=[
            {"VariantName": "A", "ModelName": "one", "InitialVariantWeight": 1.0,
             "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"},
            {"VariantName": "B", "ModelName": "two", "InitialVariantWeight": 0.0,
             "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"},
        ],
    )  # fmt: skip
    for endpoint in ("digits", "other"):
        sm_first.create_endpoint(EndpointName=endpoint, EndpointConfigName="cfg")
        sm_first.get_waiter("endpoint_in_service").wait(
            EndpointName=endpoint, WaiterConfig={"Delay": 0.5, "MaxAttempts": 120}
        )
    assert _served_by(rt_first, "digits") == "A"
    until(lambda: _served_by(rt_second, "digits") == "A", timeout=30)

    # A weight change on the first gateway reaches the second within a second.
    sm_first.update_endpoint_weights_and_capacities(
        EndpointName="digits",
        DesiredWeightsAndCapacities=[
            {"VariantName": "A", "DesiredWeight": 0.0},
            {"VariantName": "B", "DesiredWeight": 1.0},
        ],
    )
    changed = time.monotonic()
    while _served_by(rt_second, "digits") != "B":
        assert time.monotonic() - changed < 1.0, "the second gateway kept the old weights"
    assert {_served_by(rt_second, "digits") for _ in range(20)} == {"B"}
    assert {_served_by(rt_first, "digits") for _ in range(20)} == {"B"}

    # Each gateway records its own traffic; the history merges them: either one reads the
    # requests both answered (written every 10 s).
    for _ in range(7):
        _served_by(rt_first, "digits")
    both = ANSWERED["digits", "B"]
    until(lambda: _invocations(second.url, "digits", "B") >= both, timeout=40)
    assert _invocations(second.url, "digits", "B") == both
    assert _invocations(first.url, "digits", "B") == both

    # A deletion on the second gateway: the first stops serving it within a second.
    until(lambda: _served_by(rt_first, "other") == "A", timeout=30)
    sm_second.delete_endpoint(EndpointName="other")
    deleted = time.monotonic()
    while _served_by(rt_first, "other") is not None:
        assert time.monotonic() - deleted < 1.0, "the first gateway still serves it"

    # One gateway holds the controller lease; killed, the other takes it over.
    holder = _holder(database_url)
    assert holder is not None
    leader, survivor = (first, second) if f":{first.process.pid}:" in holder else (second, first)
    assert f":{leader.process.pid}:" in holder
    leader.stop(signal.SIGKILL)
    until(
        lambda: (h := _holder(database_url)) is not None and f":{survivor.process.pid}:" in h,
        timeout=TERM_S * 4,
    )
    _, rt_survivor = clients(survivor.url)
    assert {_served_by(rt_survivor, "digits") for _ in range(10)} == {"B"}


def test_a_guarded_update_is_finished_by_the_survivor_when_its_driver_is_killed(
    gateways: list[RunningServer], database_url: str, artifacts: dict[str, Path]
) -> None:
    first, second = gateways
    sm, _ = clients(first.url)
    for name, tag in (("one", "blue"), ("two", "green")):
        sm.create_model(
            ModelName=name,
            PrimaryContainer={
                "ModelDataUrl": artifacts["echo"].as_uri(),
                "Environment": {"VARIANT_TAG": tag},
            },
            ExecutionRoleArn=ROLE,
        )
    for config, model in (("v1", "one"), ("v2", "two")):
        sm.create_endpoint_config(
            EndpointConfigName=config,
            ProductionVariants=[{"VariantName": "A", "ModelName": model,
                                 "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}],
        )  # fmt: skip
    sm.create_endpoint(EndpointName="digits", EndpointConfigName="v1")
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName="digits", WaiterConfig={"Delay": 0.5, "MaxAttempts": 120}
    )
    holder = until(lambda: _holder(database_url), timeout=10)
    leader, follower = (first, second) if f":{first.process.pid}:" in holder else (second, first)
    _, rt_follower = clients(follower.url)
    until(lambda: _served_by(rt_follower, "digits") == "A", timeout=30)
    assert {_tag(rt_follower) for _ in range(10)} == {"blue"}

    # Sent to the follower: handed to the leader, which drives it (a canary baking 12 s);
    # the follower splits its own traffic as the leader does.
    with Client(follower.url) as client:
        started = client.update_endpoint("digits", "v2", canary(50, 12))
        until(lambda: client.get_deployment(started.id).steps, timeout=30)
        events = [e.message for e in client.get_deployment(started.id).events]
        assert any("handed to the gateway holding the controller lease" in m for m in events)
        until(lambda: {_tag(rt_follower) for _ in range(40)} == {"blue", "green"}, timeout=30)

        leader.stop(signal.SIGKILL)  # mid-bake: the follower adopts and resumes it
        finished = client.wait_for_deployment(started.id, timeout=120)
        assert finished.state == "Completed", finished.reason
        messages = [e.message for e in finished.events]
        assert any("the gateway driving it stopped; resuming at step 1" in m for m in messages)
        assert client.get_endpoint("digits").config == "v2"
    # The survivor serves the new config.
    sm_follower, rt_follower = clients(follower.url)
    described = sm_follower.describe_endpoint(EndpointName="digits")
    assert (described["EndpointStatus"], described["EndpointConfigName"]) == ("InService", "v2")
    assert {_tag(rt_follower) for _ in range(20)} == {"green"}


def _tag(runtime: Any) -> str:
    answer = runtime.invoke_endpoint(
        EndpointName="digits", ContentType="application/json", Body="[[1]]"
    )
    return str(json.loads(answer["Body"].read())["tag"])


def test_a_gateway_unpacks_a_model_whose_folder_only_another_had(
    gateways: list[RunningServer], artifacts: dict[str, Path]
) -> None:
    first, second = gateways
    sm_first, rt_first = clients(first.url)
    sm_first.create_model(
        ModelName="one",
        PrimaryContainer={"ModelDataUrl": f"file://{artifacts['logreg_tar']}"},
        ExecutionRoleArn=ROLE,
    )
    (folder,) = (first.home / "models").iterdir()  # the model's unpacked folder
    shutil.rmtree(folder)  # as on a machine that never had it
    sm_second, rt_second = clients(second.url)
    sm_second.create_endpoint_config(
        EndpointConfigName="cfg",
        ProductionVariants=[{"VariantName": "A", "ModelName": "one",
                             "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}],
    )  # fmt: skip
    sm_second.create_endpoint(EndpointName="digits", EndpointConfigName="cfg")
    sm_second.get_waiter("endpoint_in_service").wait(
        EndpointName="digits", WaiterConfig={"Delay": 0.5, "MaxAttempts": 120}
    )
    assert _served_by(rt_second, "digits") == "A"
    assert any((second.home / "models").iterdir())  # unpacked in its own home
    until(lambda: _served_by(rt_first, "digits") == "A", timeout=30)
    assert folder.is_dir()  # the first unpacked it again


def test_a_job_whose_gateway_died_is_finished_by_the_leader(
    gateways: list[RunningServer], database_url: str
) -> None:
    holder = until(lambda: _holder(database_url), timeout=10)
    first, second = gateways
    leader, follower = (first, second) if f":{first.process.pid}:" in holder else (second, first)
    for server in gateways:  # each gateway's stand-in for S3 (one S3 store in production)
        (server.home / "s3" / "data").mkdir(parents=True)
    script = "import time; time.sleep(2); open('/opt/ml/processing/out/done.txt', 'w').write('ok')"
    sm = aws_client("sagemaker", follower.url)
    sm.create_processing_job(
        ProcessingJobName="left",
        RoleArn=ROLE,
        ProcessingResources={
            "ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large",
                              "VolumeSizeInGB": 5}
        },
        AppSpecification={
            "ImageUri": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1",
            "ContainerEntrypoint": ["python3", "-c", script],
        },
        ProcessingOutputConfig={
            "Outputs": [{"OutputName": "out", "S3Output": {
                "S3Uri": "s3://data/out", "LocalPath": "/opt/ml/processing/out",
                "S3UploadMode": "EndOfJob"}}]
        },
    )  # fmt: skip
    log = follower.home / "jobs" / "processing" / "left" / "output.log"
    until(lambda: log.exists() and "mount namespace" in log.read_text(), timeout=20)
    # The follower dies mid-job (its job with it); the leader, which did not change,
    # takes the job up within a lease term and runs it to its end.
    follower.stop(signal.SIGKILL)
    sm = aws_client("sagemaker", leader.url)
    until(
        lambda: (
            sm.describe_processing_job(ProcessingJobName="left")["ProcessingJobStatus"]
            == "Completed"
        ),
        timeout=30,
    )
    assert (leader.home / "s3" / "data" / "out" / "done.txt").read_text() == "ok"
