"""The control planes never answer 5xx to what a client sends: schemathesis against the
native API's OpenAPI document, and the bad inputs fuzzing found, on both planes."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import RunningServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    running = RunningServer(tmp_path_factory.mktemp("fuzz") / "home", auth=True)
    yield running
    running.stop()


def test_schemathesis_finds_no_server_error(server: RunningServer, tmp_path: Path) -> None:
    """Every operation, with the coverage phase's edge cases (huge numbers, NUL bytes,
    long strings, wrong types) and a bounded number of random examples each."""
    st = Path(sys.executable).with_name("st")
    done = subprocess.run(
        [str(st), "run", f"{server.url}/api/v1/openapi.json", "--url", f"{server.url}/api/v1",
         "--checks", "not_a_server_error", "--max-examples", "10", "--seed", "1",
         "--header", f"Authorization: Bearer {server.token}", "--no-color"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "generated" in done.stdout


def test_the_inputs_fuzzing_found_are_client_errors(server: RunningServer) -> None:
    bearer = {"Authorization": f"Bearer {server.token}"}
    huge = "9" * 30
    for path in (
        f"/api/v1/deployments/{huge}",
        f"/api/v1/monitoring-executions/{huge}/report.json",
        f"/api/v1/model-package-groups/g/packages/{huge}",
        "/api/v1/alarms/a/history?limit=" + huge,
        "/api/v1/models/a%00b",
    ):
        r = httpx.get(server.url + path, headers=bearer)
        assert 400 <= r.status_code < 500, (path, r.status_code, r.text)
    job = {"kind": "DataQuality", "endpoint": "e", "baseline": "a\u0000b"}  # a NUL in a path
    schedule = {"name": "s", "schedule": "rate(1 hour)", "job": job}
    r = httpx.post(f"{server.url}/api/v1/monitoring-schedules", json=schedule, headers=bearer)
    assert r.status_code == 400 and r.json()["field"] == "job.baseline", r.text
    deep = b"[" * 100_000 + b"]" * 100_000
    r = httpx.post(f"{server.url}/api/v1/models", content=deep, headers=bearer)
    assert r.status_code == 400
    sagemaker = {**bearer, "X-Amz-Target": "SageMaker.ListModels"}
    r = httpx.post(f"{server.url}/", content=deep, headers=sagemaker)
    assert r.status_code == 400 and r.json()["__type"] == "SerializationException"
    for body in ('{"ModelName": "a\\u0000b"}', '{"ModelName": "' + "a" * 100_000 + '"}'):
        r = httpx.post(f"{server.url}/", content=body,
                       headers={**bearer, "X-Amz-Target": "SageMaker.DescribeModel"})  # fmt: skip
        assert r.status_code == 400 and r.json()["__type"] == "ValidationException"
