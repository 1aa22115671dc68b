"""Asynchronous inference through boto3: SageMaker's contract, output and failure objects,
SNS-format notifications to a real receiver, and sluice's status, cancel and priority."""

from __future__ import annotations

import json
import re
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from botocore.exceptions import ClientError

from tests.conftest import RunningServer
from tests.control.test_webhooks import Receiver
from tests.e2e.helpers import digit_rows, worker_processes
from tests.e2e.test_sagemaker_workflow import ROLE, clients, until, wait

pytestmark = pytest.mark.slow

OK_TOPIC = "arn:aws:sns:us-east-1:000000000000:async-ok"
ERROR_TOPIC = "arn:aws:sns:us-east-1:000000000000:async-errors"
UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.http.shutdown()


def topics_of(receiver: Receiver) -> str:
    return json.dumps(
        {
            OK_TOPIC: f"http://127.0.0.1:{receiver.port}/ok",
            ERROR_TOPIC: f"http://127.0.0.1:{receiver.port}/errors",
        }
    )


@pytest.fixture
def async_server(tmp_path: Path, receiver: Receiver) -> Iterator[RunningServer]:
    running = RunningServer(
        tmp_path / "home",
        {"SLUICE_SNS_TOPICS": topics_of(receiver), "SLUICE_ASYNC_RETRY_BACKOFF_S": "0.1"},
    )
    yield running
    running.stop()


def s3_file(server: RunningServer, uri: str) -> Path:
    """Where the server keeps an s3:// object without an S3 store (its local stand-in)."""
    return server.home / "s3" / uri.removeprefix("s3://")


def put_input(server: RunningServer, key: str, body: bytes) -> str:
    path = server.home / "s3" / "bucket" / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)
    return f"s3://bucket/{key}"


def async_endpoint(sm: Any, artifacts: dict[str, Path], name: str = "scorer") -> None:
    sm.create_model(
        ModelName=f"{name}-model",
        PrimaryContainer={"ModelDataUrl": f"file://{artifacts['logreg_tar']}"},
        ExecutionRoleArn=ROLE,
    )
    sm.create_endpoint_config(
        EndpointConfigName=f"{name}-config",
        ProductionVariants=[
            {
                "VariantName": "A",
                "ModelName": f"{name}-model",
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
        AsyncInferenceConfig={
            "ClientConfig": {"MaxConcurrentInvocationsPerInstance": 2},
            "OutputConfig": {
                "S3OutputPath": "s3://bucket/async-out",
                "S3FailurePath": "s3://bucket/async-failures",
                "NotificationConfig": {
                    "SuccessTopic": OK_TOPIC,
                    "ErrorTopic": ERROR_TOPIC,
                    "IncludeInferenceResponseIn": ["SUCCESS_NOTIFICATION_TOPIC"],
                },
            },
        },
    )
    described = sm.describe_endpoint_config(EndpointConfigName=f"{name}-config")
    output = described["AsyncInferenceConfig"]["OutputConfig"]
    assert output["S3OutputPath"] == "s3://bucket/async-out"
    assert output["NotificationConfig"]["SuccessTopic"] == OK_TOPIC
    sm.create_endpoint(EndpointName=name, EndpointConfigName=f"{name}-config")
    wait(sm, "endpoint_in_service", name)


def messages(receiver: Receiver, path: str) -> list[dict[str, Any]]:
    """The SageMaker messages the receiver got on `path`, unwrapped from SNS envelopes."""
    out = []
    for headers, body in list(receiver.requests):
        envelope = json.loads(body)
        if envelope["TopicArn"] == (OK_TOPIC if path == "ok" else ERROR_TOPIC):
            assert envelope["Type"] == "Notification" and headers["x-sluice-signature"]
            out.append(json.loads(envelope["Message"]))
    return out


def test_async_requests_are_answered_into_objects_and_notified(
    async_server: RunningServer, receiver: Receiver, artifacts: dict[str, Path]
) -> None:
    sm, runtime = clients(async_server.url)
    async_endpoint(sm, artifacts)
    rows = digit_rows(3)
    location = put_input(
        async_server, "in/three.json", b"[" + b",".join(r[1:-1] for r in rows) + b"]"
    )

    reply = runtime.invoke_endpoint_async(
        EndpointName="scorer",
        InputLocation=location,
        ContentType="application/json",
        Accept="application/json",
        InferenceId="first-request",
    )
    assert reply["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert reply["InferenceId"] == "first-request"
    assert re.fullmatch(rf"s3://bucket/async-out/{UUID}\.out", reply["OutputLocation"])
    assert re.fullmatch(rf"s3://bucket/async-failures/{UUID}-error\.out", reply["FailureLocation"])

    output = s3_file(async_server, reply["OutputLocation"])
    until(output.exists, timeout=30)
    answer = json.loads(output.read_bytes())
    direct = [json.loads(runtime_row) for runtime_row in rows]
    assert len(answer["predictions"]) == len(direct) == 3
    assert not s3_file(async_server, reply["FailureLocation"]).exists()

    (ok,) = until(lambda: messages(receiver, "ok"), timeout=30)
    assert ok["invocationStatus"] == "Completed" and ok["inferenceId"] == "first-request"
    assert ok["eventSource"] == "aws:sagemaker" and ok["eventName"] == "InferenceResult"
    assert ok["requestParameters"] == {
        "contentType": "application/json",
        "endpointName": "scorer",
        "inputLocation": location,
    }
    assert ok["responseParameters"]["outputLocation"] == reply["OutputLocation"]
    assert json.loads(ok["responseBody"]["content"]) == answer

    # The same inference id again is the same request: nothing runs twice.
    again = runtime.invoke_endpoint_async(
        EndpointName="scorer", InputLocation=location, InferenceId="first-request"
    )
    assert again["OutputLocation"] == reply["OutputLocation"]
    status = httpx.get(
        f"{async_server.url}/api/v1/endpoints/scorer/async-invocations/first-request"
    ).json()
    assert status["status"] == "Succeeded" and status["attempts"] == 1
    assert status["output_location"] == reply["OutputLocation"]

    # A real-time call to an async endpoint is refused by name.
    with pytest.raises(ClientError) as refused:
        runtime.invoke_endpoint(EndpointName="scorer", Body=rows[0], ContentType="application/json")
    assert "InvokeEndpointAsync" in refused.value.response["Error"]["Message"]


def test_failures_land_in_the_failure_path_with_their_reason(
    async_server: RunningServer, receiver: Receiver, artifacts: dict[str, Path]
) -> None:
    sm, runtime = clients(async_server.url)
    async_endpoint(sm, artifacts)
    bad = put_input(async_server, "in/bad.json", b'{"not": "rows"')
    broken = runtime.invoke_endpoint_async(
        EndpointName="scorer", InputLocation=bad, ContentType="application/json"
    )
    missing = runtime.invoke_endpoint_async(
        EndpointName="scorer", InputLocation="s3://bucket/in/nothing-here.json"
    )
    for reply, reason in ((broken, "JSON"), (missing, "does not exist")):
        failure = s3_file(async_server, reply["FailureLocation"])
        until(failure.exists, timeout=30)
        assert reason in failure.read_text()
        assert not s3_file(async_server, reply["OutputLocation"]).exists()
    errors = until(lambda: len(messages(receiver, "errors")) == 2 and messages(receiver, "errors"))
    assert {m["inferenceId"] for m in errors} == {broken["InferenceId"], missing["InferenceId"]}
    assert all(m["invocationStatus"] == "Failed" for m in errors)
    status = httpx.get(
        f"{async_server.url}/api/v1/endpoints/scorer/async-invocations/{broken['InferenceId']}"
    ).json()
    assert status["status"] == "Failed" and "JSON" in status["failure_reason"]

    # Inputs the server may not read, and bad headers, are refused when submitted.
    for location in ("file:///etc/passwd", "https://example.com/x.json"):
        with pytest.raises(ClientError) as refused:
            runtime.invoke_endpoint_async(EndpointName="scorer", InputLocation=location)
        assert refused.value.response["Error"]["Code"] == "ValidationError"
    # boto3 checks ranges itself; a plain HTTP client gets the server's own answer.
    url = f"{async_server.url}/endpoints/scorer/async-invocations"
    for header, value in (
        ("X-Amzn-SageMaker-RequestTTLSeconds", "5"),
        ("X-Amzn-SageMaker-InvocationTimeoutSeconds", "soon"),
        ("X-Amzn-SageMaker-Inference-Id", "x" * 65),
    ):
        answer = httpx.post(url, headers={"X-Amzn-SageMaker-InputLocation": bad, header: value})
        assert answer.status_code == 400 and answer.headers["x-amzn-errortype"] == "ValidationError"
    answer = httpx.post(url)
    assert answer.status_code == 400 and "InputLocation" in answer.json()["Message"]
    answer = httpx.post(url, headers={"X-Amzn-SageMaker-InputLocation": bad}, content=b"{}")
    assert answer.status_code == 400 and "takes no body" in answer.json()["Message"]


def test_async_config_is_checked_when_created(async_server: RunningServer) -> None:
    sm, _ = clients(async_server.url)
    variants = [{"VariantName": "A", "ModelName": "m", "InitialInstanceCount": 1,
                 "InstanceType": "ml.m5.large"}]  # fmt: skip
    for output, field in (
        (
            {
                "S3OutputPath": "s3://bucket/out",
                "NotificationConfig": {
                    "SuccessTopic": "arn:aws:sns:us-east-1:000000000000:unknown"
                },
            },
            "sns_topics",
        ),  # noqa: E501
        ({"S3OutputPath": "file:///etc"}, "outside"),
        ({"S3OutputPath": "https://example.com/out"}, "s3:// or file://"),
    ):
        with pytest.raises(ClientError) as refused:
            sm.create_endpoint_config(
                EndpointConfigName="bad",
                ProductionVariants=variants,
                AsyncInferenceConfig={"OutputConfig": output},
            )
        assert field in refused.value.response["Error"]["Message"]


def test_backlog_metrics_and_queue_position(
    async_server: RunningServer, artifacts: dict[str, Path]
) -> None:
    sm, runtime = clients(async_server.url)
    async_endpoint(sm, artifacts)
    location = put_input(async_server, "in/one.json", digit_rows(1)[0])
    replies = [
        runtime.invoke_endpoint_async(
            EndpointName="scorer", InputLocation=location, ContentType="application/json"
        )  # fmt: skip
        for _ in range(20)
    ]
    for reply in replies:
        until(s3_file(async_server, reply["OutputLocation"]).exists, timeout=60)
    scrape = httpx.get(f"{async_server.url}/metrics").text
    assert re.search(
        r'sluice_async_invocations_total\{endpoint="scorer",outcome="succeeded",variant="A"\} 20',
        scrape,
    )
    time.sleep(1.5)
    scrape = httpx.get(f"{async_server.url}/metrics").text
    assert 'sluice_async_backlog_size{endpoint="scorer"} 0.0' in scrape


def test_a_killed_server_loses_nothing_and_writes_each_output_once(
    tmp_path: Path, artifacts: dict[str, Path]
) -> None:
    env = {"SLUICE_ASYNC_LEASE_S": "2"}
    server = RunningServer(tmp_path / "home", env)
    try:
        sm, runtime = clients(server.url)
        sm.create_model(
            ModelName="m",
            PrimaryContainer={
                # 10 ms a request on two instances: the queue outlives the enqueueing.
                "ModelDataUrl": artifacts["slow"].as_uri(),
                "Environment": {"SLOW_SECONDS": "0.01"},
            },
            ExecutionRoleArn=ROLE,
        )
        sm.create_endpoint_config(
            EndpointConfigName="c",
            ProductionVariants=[
                {
                    "VariantName": "A",
                    "ModelName": "m",
                    "InitialInstanceCount": 2,
                    "InstanceType": "ml.m5.large",
                }
            ],  # fmt: skip
            AsyncInferenceConfig={"OutputConfig": {"S3OutputPath": "s3://bucket/out"}},
        )
        sm.create_endpoint(EndpointName="bulk", EndpointConfigName="c")
        wait(sm, "endpoint_in_service", "bulk")
        location = put_input(server, "in/row.json", digit_rows(1)[0])

        def enqueue(i: int) -> str:
            return str(runtime.invoke_endpoint_async(
                EndpointName="bulk", InputLocation=location, ContentType="application/json",
                InferenceId=f"req-{i}",
            )["OutputLocation"])  # fmt: skip

        with ThreadPoolExecutor(16) as pool:
            outputs = set(pool.map(enqueue, range(1000)))
        assert len(outputs) == 1000
        out_dir = server.home / "s3" / "bucket" / "out"
        until(lambda: out_dir.exists() and len(list(out_dir.glob("*.out"))) >= 50, timeout=60)
        server.stop(signal.SIGKILL)
        done_before = len(list(out_dir.glob("*.out")))
        assert done_before < 1000, "the queue drained before the kill; nothing was tested"
    finally:
        server.stop()
    restarted = RunningServer(tmp_path / "home", env)
    try:
        until(lambda: len(list(out_dir.glob("*.out"))) == 1000, timeout=120)
        written = {f"s3://bucket/out/{path.name}" for path in out_dir.glob("*.out")}
        assert written == outputs
        assert not list(out_dir.glob(".*.part"))
        for path in out_dir.glob("*.out"):
            assert len(json.loads(path.read_bytes())["predictions"]) == 1
        statuses = {
            httpx.get(f"{restarted.url}/api/v1/endpoints/bulk/async-invocations/req-{i}").json()[
                "status"
            ]
            for i in range(0, 1000, 37)
        }
        assert statuses == {"Succeeded"}
    finally:
        restarted.stop()


def test_status_priority_cancel_and_invocation_timeout(
    async_server: RunningServer, artifacts: dict[str, Path]
) -> None:
    sm, runtime = clients(async_server.url)
    api = httpx.Client(base_url=f"{async_server.url}/api/v1", timeout=30)
    created = api.post(
        "/models",
        json={"name": "slow", "artifact": str(artifacts["slow"]),
              "environment": {"SLOW_SECONDS": "0.6"}},
    )  # fmt: skip
    assert created.status_code == 201, created.text
    sm.create_endpoint_config(
        EndpointConfigName="slow-config",
        ProductionVariants=[
            {
                "VariantName": "A",
                "ModelName": "slow",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
            }
        ],  # fmt: skip
        AsyncInferenceConfig={
            "ClientConfig": {"MaxConcurrentInvocationsPerInstance": 1},
            "OutputConfig": {"S3OutputPath": "s3://bucket/slow-out"},
        },
    )
    sm.create_endpoint(EndpointName="slow", EndpointConfigName="slow-config")
    wait(sm, "endpoint_in_service", "slow")
    location = put_input(async_server, "in/slow.json", digit_rows(1)[0])

    def submit(inference_id: str, **extra: object) -> dict[str, Any]:
        body = {"input_location": location, "content_type": "application/json",
                "inference_id": inference_id, **extra}  # fmt: skip
        answer = api.post("/endpoints/slow/async-invocations", json=body)
        assert answer.status_code == 202, answer.text
        return answer.json()

    submit("first")
    state = "/endpoints/slow/async-invocations/first"
    until(lambda: api.get(state).json()["status"] in ("Running", "Succeeded"))
    waiting = [submit(f"w{i}") for i in range(3)]
    urgent = submit("urgent", priority=10)
    assert urgent["status"] == "Queued" and urgent["position"] == 0
    assert [w["position"] for w in waiting] == [0, 1, 2]  # each behind the ones before it
    cancelled = api.delete("/endpoints/slow/async-invocations/w2")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "Cancelled"

    def finished(inference_id: str) -> dict[str, Any] | None:
        state = api.get(f"/endpoints/slow/async-invocations/{inference_id}").json()
        return state if state["status"] not in ("Queued", "Running") else None

    done = {name: until(lambda n=name: finished(n), timeout=60)
            for name in ("first", "urgent", "w0", "w1")}  # fmt: skip
    assert all(state["status"] == "Succeeded" for state in done.values())
    assert done["urgent"]["finished_at"] < done["w0"]["finished_at"] < done["w1"]["finished_at"]
    assert api.get("/endpoints/slow/async-invocations/w2").json()["status"] == "Cancelled"
    assert not s3_file(async_server, waiting[2]["output_location"]).exists()
    again = api.delete("/endpoints/slow/async-invocations/first")
    assert again.status_code == 400 and "only a queued request" in again.text
    assert api.get("/endpoints/slow/async-invocations/nobody").status_code == 404

    # Past InvocationTimeoutSeconds the worker is replaced and the request fails with why.
    created = api.post(
        "/models",
        json={"name": "slower", "artifact": str(artifacts["slow"]),
              "environment": {"SLOW_SECONDS": "5"}},
    )  # fmt: skip
    assert created.status_code == 201, created.text
    sm.create_endpoint_config(
        EndpointConfigName="slower-config",
        ProductionVariants=[
            {
                "VariantName": "A",
                "ModelName": "slower",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
            }
        ],  # fmt: skip
        AsyncInferenceConfig={"OutputConfig": {"S3OutputPath": "s3://bucket/slower-out"}},
    )
    sm.create_endpoint(EndpointName="slower", EndpointConfigName="slower-config")
    wait(sm, "endpoint_in_service", "slower")
    runtime.invoke_endpoint_async(
        EndpointName="slower", InputLocation=location, ContentType="application/json",
        InvocationTimeoutSeconds=1, InferenceId="too-slow",
    )  # fmt: skip

    def timed_out() -> dict[str, Any] | None:
        state = api.get("/endpoints/slower/async-invocations/too-slow").json()
        return state if state["status"] not in ("Queued", "Running") else None

    state = until(timed_out, timeout=30)
    assert state["status"] == "Failed" and "within 1 s" in state["failure_reason"]


def test_the_cli_queues_waits_and_prints_the_answer(
    async_server: RunningServer, artifacts: dict[str, Path], tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from sluice.cli.main import cli

    sm, _ = clients(async_server.url)
    async_endpoint(sm, artifacts)
    body = tmp_path / "request.json"  # on the client's side: uploaded by the CLI
    body.write_bytes(digit_rows(1)[0])
    base = ["--url", async_server.url, "invoke", "scorer", "--async", "--input", str(body)]
    waited = CliRunner().invoke(cli, [*base, "--wait", "--inference-id", "cli-1"])
    assert waited.exit_code == 0, waited.output
    assert "cli-1: Succeeded" in waited.output
    assert len(json.loads(waited.output.splitlines()[-1])["predictions"]) == 1
    queued = CliRunner().invoke(cli, [*base, "--priority", "3"])
    assert queued.exit_code == 0, queued.output
    assert json.loads(queued.output)["priority"] == 3
    refused = CliRunner().invoke(cli, ["--url", async_server.url, "invoke", "scorer", "--wait"])
    assert refused.exit_code != 0 and "--async" in refused.output


def workers_of(server: RunningServer) -> list[psutil.Process]:
    return worker_processes(server.process.pid)


def current_instances(sm: Any, name: str) -> int:
    return int(
        sm.describe_endpoint(EndpointName=name)["ProductionVariants"][0]["CurrentInstanceCount"]
    )


def test_an_idle_endpoint_stops_its_instances_and_a_request_wakes_them(
    tmp_path: Path, receiver: Receiver, artifacts: dict[str, Path]
) -> None:
    server = RunningServer(
        tmp_path / "home",
        {
            "SLUICE_SNS_TOPICS": topics_of(receiver),
            "SLUICE_ASYNC_IDLE_STOP_S": "1",
            "SLUICE_ASYNC_SCALE_TO_ZERO": "true",
        },
    )
    try:
        sm, runtime = clients(server.url)
        async_endpoint(sm, artifacts)
        assert until(lambda: current_instances(sm, "scorer") == 0, timeout=15)
        assert until(lambda: not workers_of(server), timeout=10)
        assert sm.describe_endpoint(EndpointName="scorer")["EndpointStatus"] == "InService"

        # A request wakes the endpoint's instance, is answered, and the instance rests again.
        location = put_input(server, "in/one.json", digit_rows(1)[0])
        answer = runtime.invoke_endpoint_async(
            EndpointName="scorer", InputLocation=location, ContentType="application/json"
        )
        output = s3_file(server, answer["OutputLocation"])
        assert until(output.exists, timeout=30)
        assert len(json.loads(output.read_text())["predictions"]) == 1
        assert until(lambda: current_instances(sm, "scorer") == 0, timeout=15)
        assert until(lambda: not workers_of(server), timeout=10)

        # On the native API a variant may be configured with no instance at all.
        api = httpx.Client(base_url=f"{server.url}/api/v1", timeout=30)
        api.post(
            "/endpoint-configs",
            json={
                "name": "cold",
                "variants": [{"name": "A", "model": "scorer-model", "instances": 0}],
                "async_inference": {"output_path": "s3://bucket/cold-out"},
            },
        ).raise_for_status()
        api.post("/endpoints", json={"name": "cold", "config": "cold"}).raise_for_status()
        wait(sm, "endpoint_in_service", "cold")
        assert current_instances(sm, "cold") == 0 and not workers_of(server)
        ids = [
            runtime.invoke_endpoint_async(
                EndpointName="cold", InputLocation=location, ContentType="application/json"
            )["InferenceId"]
            for _ in range(3)
        ]
        for inference_id in ids:
            status = api.get(f"/endpoints/cold/async-invocations/{inference_id}")
            assert status.status_code == 200
        assert until(
            lambda: all(
                api.get(f"/endpoints/cold/async-invocations/{i}").json()["status"] == "Succeeded"
                for i in ids
            ),
            timeout=30,
        )
        # A real-time endpoint still needs an instance.
        refused = api.post(
            "/endpoint-configs",
            json={
                "name": "rt0",
                "variants": [{"name": "A", "model": "scorer-model", "instances": 0}],
            },
        )
        assert refused.status_code == 400 and "InitialInstanceCount" in refused.text
    finally:
        server.stop()
