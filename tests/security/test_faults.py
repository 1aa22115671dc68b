"""Faults contained, against a running server: hung, crashing and broken workers under
load, a server killed with -9, an endpoint deleted while creating, a restart mid-traffic,
and clients' bad input counted as theirs."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import boto3
import httpx
import psutil
import pytest
from botocore.config import Config

from sluice.client import Client
from tests import models
from tests.conftest import RunningServer
from tests.e2e.helpers import Load, metric, worker_processes

pytestmark = pytest.mark.slow

SLOW_LOAD = """
import json, os, time

def model_fn(model_dir):
    time.sleep(float(os.environ.get("LOAD_SECONDS", "0")))
    return None

def input_fn(body, content_type):
    return json.loads(body)

def predict_fn(data, model):
    return {"pid": os.getpid()}

def output_fn(prediction, accept):
    return json.dumps(prediction), "application/json"
"""

PLAIN = json.dumps({}).encode()


def workers_of(server: RunningServer) -> list[psutil.Process]:
    return worker_processes(server.process.pid)


def serve(client: Client, name: str, artifact: Path, instances: int = 2, **env: str) -> None:
    client.create_model(name, str(artifact), environment=env)
    client.create_endpoint_config(name, [{"name": "A", "model": name, "instances": instances}])
    client.create_endpoint(name, name, wait=True, timeout=120)


def test_faulty_workers_under_load_fail_only_their_own_requests(
    tmp_path: Path, artifacts: dict[str, Path]
) -> None:
    server = RunningServer(
        tmp_path / "home", {"SLUICE_INVOCATION_TIMEOUT_S": "2", "SLUICE_OUTLIER_FAILURES": "3"}
    )
    try:
        with Client(server.url) as client:
            # One request per call: with dynamic batching, requests that joined the hung
            # one's batch hang with it (see WorkerConnection), which is not what this
            # test is about.
            serve(client, "f", artifacts["faulty"], SLUICE_BATCH_MAX_SIZE="1")
        url = f"{server.url}/endpoints/f/invocations"
        headers = {"Content-Type": "application/json"}
        with Load(server.url, "f", [PLAIN], concurrency=8) as load:
            time.sleep(0.5)
            crash = httpx.post(url, content=b'{"action": "crash"}', headers=headers)
            assert crash.status_code == 424 and "exited while handling" in crash.text
            time.sleep(2.0)  # the crashed worker is back (slower on a busy machine)
            hang = httpx.post(url, content=b'{"action": "hang"}', headers=headers, timeout=10)
            assert hang.status_code == 424 and "did not answer within 2 s" in hang.text, hang.text
            time.sleep(1.0)
        replies = load.replies
        failed = load.failed()
        # A hung or crashed worker fails only the request it was running; those queued
        # behind it went to the other instance.
        assert len(replies) > 200 and not failed, [(r.status, r.body[:200]) for r in failed[:5]]
        assert metric(server.url, "sluice_worker_restarts_total") >= 2

        broken = int(httpx.post(url, content=b'{"action": "break"}', headers=headers).json()["pid"])
        with Load(server.url, "f", [PLAIN], concurrency=8) as load:
            time.sleep(2.0)
        failed = load.failed()
        # Ejected after 3 failures in a row, plus what it held then (at most the load's 8).
        assert len(failed) <= 3 + 8 and len(load.replies) > 200
        assert all(json.loads(r.body)["pid"] != broken for r in load.replies[-50:])
        assert broken not in [p.pid for p in workers_of(server)]
        deadline = time.monotonic() + 15  # the replacement starts after its restart backoff
        while len(workers_of(server)) < 2:
            assert time.monotonic() < deadline, workers_of(server)
            time.sleep(0.1)
    finally:
        server.stop()


def test_a_leaking_worker_is_held_to_its_memory_and_fails_only_its_own_requests(
    tmp_path: Path, artifacts: dict[str, Path]
) -> None:
    from tests.e2e.test_sagemaker_workflow import ROLE, clients, wait

    limit_mb = 1536
    server = RunningServer(
        tmp_path / "home", {"SLUICE_INSTANCE_MEMORY_MB": json.dumps({"ml.m5.large": limit_mb})}
    )
    try:
        sm, _ = clients(server.url)
        sm.create_model(
            ModelName="f",
            PrimaryContainer={"ModelDataUrl": artifacts["faulty"].as_uri()},
            ExecutionRoleArn=ROLE,
        )
        sm.create_endpoint_config(
            EndpointConfigName="f",
            ProductionVariants=[{"VariantName": "A", "ModelName": "f", "InitialInstanceCount": 2,
                                 "InstanceType": "ml.m5.large"}],
        )  # fmt: skip
        sm.create_endpoint(EndpointName="f", EndpointConfigName="f")
        wait(sm, "endpoint_in_service", "f")
        url = f"{server.url}/endpoints/f/invocations"
        headers = {"Content-Type": "application/json"}
        target = httpx.post(url, content=PLAIN, headers=headers).json()["pid"]
        leak = json.dumps({"action": "leak", "pid": target, "mb": 64}).encode()
        with Load(server.url, "f", [PLAIN], concurrency=8) as load:
            refused = None
            for _ in range(200):  # 64 MiB kept per request that reaches the target
                answer = httpx.post(url, content=leak, headers=headers, timeout=30)
                if answer.status_code != 200:
                    refused = answer
                    break
            assert refused is not None and refused.status_code == 424, "never hit the limit"
            assert "MemoryError" in refused.text
            held = psutil.Process(target).memory_info().vms
            time.sleep(0.5)
        assert held <= limit_mb * 2**20
        failed = load.failed()
        assert len(load.replies) > 100 and not failed, [(r.status, r.body[:200]) for r in failed]
    finally:
        server.stop()


def test_workers_die_with_a_server_killed_by_sigkill(
    tmp_path: Path, artifacts: dict[str, Path]
) -> None:
    home = tmp_path / "home"
    server = RunningServer(home)
    with Client(server.url) as client:
        serve(client, "k", artifacts["faulty"], instances=3)
    workers = workers_of(server)
    assert len(workers) == 3
    sockets = Path((home / "worker-sockets.path").read_text())
    server.stop(signal.SIGKILL)
    gone, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, alive
    assert sockets.is_dir()  # nothing could clean up after kill -9 ...
    server = RunningServer(home)
    try:
        assert not sockets.exists()  # ... but the next start removes it
        with Client(server.url) as client:
            assert client.wait_for_endpoint("k", 60).status == "InService"
    finally:
        server.stop()


def test_deleting_an_endpoint_while_it_is_creating_stops_its_workers(
    tmp_path: Path,
) -> None:
    artifact = models.write_handler(tmp_path / "slow-load", SLOW_LOAD, with_model=False)
    server = RunningServer(tmp_path / "home")
    try:
        with Client(server.url) as client:
            client.create_model("s", str(artifact), environment={"LOAD_SECONDS": "2"})
            client.create_endpoint_config("s", [{"name": "A", "model": "s", "instances": 2}])
            client.create_endpoint("s", "s")
            deadline = time.monotonic() + 10
            while len(workers_of(server)) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert client.get_endpoint("s").status == "Creating"
            loading = workers_of(server)
            assert len(loading) == 2
            client.delete_endpoint("s")
            gone, alive = psutil.wait_procs(loading, timeout=15)
            assert not alive
            time.sleep(2.5)  # past the load time: nothing started it again
            assert workers_of(server) == []
            assert "s" not in [e.name for e in client.list_endpoints()]
    finally:
        server.stop()


def test_after_a_restart_requests_are_retryable_until_the_endpoint_is_back(
    tmp_path: Path,
) -> None:
    artifact = models.write_handler(tmp_path / "slow-load", SLOW_LOAD, with_model=False)
    home = tmp_path / "home"
    server = RunningServer(home)
    with Client(server.url) as client:
        serve(client, "r", artifact, instances=1, LOAD_SECONDS="3")
    server.stop()
    server = RunningServer(home)
    try:
        r = httpx.post(f"{server.url}/endpoints/r/invocations", content=PLAIN,
                       headers={"Content-Type": "application/json"})  # fmt: skip
        assert r.status_code == 503, r.text
        assert r.headers["retry-after"] == "1"
        assert r.json()["ErrorCode"] == "ServiceUnavailable"
        health = httpx.get(f"{server.url}/healthz")
        assert health.status_code == 503 and health.json()["endpoints_restoring"] == ["r"]
        assert httpx.get(f"{server.url}/v2/health/ready").status_code == 503
        runtime = boto3.client(
            "sagemaker-runtime", endpoint_url=server.url, region_name="us-east-1",
            aws_access_key_id="k", aws_secret_access_key="s",
            config=Config(retries={"mode": "standard", "max_attempts": 10}),
        )  # fmt: skip
        answer = runtime.invoke_endpoint(
            EndpointName="r", ContentType="application/json", Body=PLAIN
        )
        assert answer["ResponseMetadata"]["RetryAttempts"] >= 1
        assert httpx.get(f"{server.url}/healthz").status_code == 200
    finally:
        server.stop()


def test_bad_client_input_counts_as_4xx_never_as_model_5xx(
    server: RunningServer, artifacts: dict[str, Path]
) -> None:
    with Client(server.url) as client:
        serve(client, "d", artifacts["logreg"], instances=1)
        serve(client, "h", artifacts["faulty"], instances=1)
    bad = [
        ("d", b"[[NaN" + b", 0" * 63 + b"]]"),
        ("d", b"[[1e999" + b", 0" * 63 + b"]]"),
        ("d", b'[["a", "b"]]'),
        ("d", b"[[1, 2, 3]]"),
        ("d", b"{not json"),
        ("h", b"{not json"),
    ]
    for endpoint, body in bad:
        r = httpx.post(f"{server.url}/endpoints/{endpoint}/invocations", content=body,
                       headers={"Content-Type": "application/json"})  # fmt: skip
        assert r.status_code == 400, (endpoint, body, r.text)
    errors = "sluice_invocation_errors_total"
    assert metric(server.url, errors, endpoint="d", **{"class": "4xx"}) == 5
    assert metric(server.url, errors, endpoint="d", **{"class": "5xx"}) == 0
    assert metric(server.url, errors, endpoint="h", **{"class": "4xx"}) == 1
    assert metric(server.url, errors, endpoint="h", **{"class": "5xx"}) == 0


def test_sigterm_finishes_in_flight_requests_and_closes_keep_alive(
    tmp_path: Path, artifacts: dict[str, Path]
) -> None:
    import asyncio

    server = RunningServer(tmp_path / "home")
    with Client(server.url) as client:
        serve(client, "t", artifacts["faulty"], instances=4)
    body = json.dumps({"action": "sleep", "seconds": 1.0}).encode()

    async def main() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            warm = await http.post("/endpoints/t/invocations", content=PLAIN)
            assert warm.headers.get("connection") != "close"  # a keep-alive connection
            calls = [
                asyncio.ensure_future(http.post("/endpoints/t/invocations", content=body))
                for _ in range(4)
            ]
            await asyncio.sleep(0.3)
            server.process.send_signal(signal.SIGTERM)
            return await asyncio.gather(*calls)

    replies = asyncio.run(main())
    assert [r.status_code for r in replies] == [200] * 4
    assert all(r.headers.get("connection") == "close" for r in replies)
    assert server.process.wait(30) in (0, -signal.SIGTERM)
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{server.url}/healthz", timeout=1)


def test_sigterm_ends_open_event_streams_at_once(tmp_path: Path) -> None:
    """A dashboard left open does not hold the stop up for the whole grace period."""
    server = RunningServer(tmp_path / "home", {"SLUICE_SHUTDOWN_GRACE_S": "20"})
    with httpx.stream("GET", f"{server.url}/api/v1/dashboard/events", timeout=30) as stream:
        lines = stream.iter_lines()
        assert next(lines).startswith("retry:")
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        for _ in lines:  # the stream ends (rather than being cut after 20 s)
            pass
    assert server.process.wait(30) in (0, -signal.SIGTERM)
    assert time.monotonic() - started < 8
