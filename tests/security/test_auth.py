"""Authentication on every surface, against a real server with the default (auth on)."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials as AwsCredentials
from botocore.exceptions import ClientError

from sluice.client import Client
from sluice.errors import SluiceError
from sluice.security.credentials import FILE_NAME, Principal, read_file
from tests.conftest import RunningServer, free_port
from tests.e2e.helpers import digit_rows

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def secured(
    tmp_path_factory: pytest.TempPathFactory, artifacts: dict[str, Path]
) -> Iterator[RunningServer]:
    running = RunningServer(tmp_path_factory.mktemp("secured") / "home", auth=True)
    with Client(running.url, token=running.token) as admin:
        admin.create_model("m", str(artifacts["logreg"]))
        admin.create_endpoint_config("c", [{"name": "A", "model": "m"}])
        admin.create_endpoint("ep", "c", wait=True)
    yield running
    running.stop()


def admin_of(server: RunningServer) -> Principal:
    return next(p for p in read_file(server.home / FILE_NAME) if p.name == "admin")


def aws(server: RunningServer, service: str, key: str | None, secret: str | None) -> Any:
    return boto3.client(
        service,
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}),
    )


def code_of(call: Any, **kwargs: Any) -> tuple[str, int]:
    with pytest.raises(ClientError) as info:
        call(**kwargs)
    response = info.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def cli(home: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "sluice.cli.main", "credentials", *args, "--home", str(home)],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def exports(text: str) -> dict[str, str]:
    pairs = (line.strip().removeprefix("export ").partition("=") for line in text.splitlines())
    return {k: v for k, _, v in pairs if v}


def test_first_start_writes_an_admin_principal_only_its_owner_reads(
    secured: RunningServer,
) -> None:
    path = secured.home / FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    admin = admin_of(secured)
    assert admin.role.value == "admin" and admin.token and admin.aws_access_key_id
    assert secured.token == admin.token
    assert admin.token not in (secured.home / "server.log").read_text()


def test_every_surface_refuses_a_caller_without_credentials(secured: RunningServer) -> None:
    body = digit_rows(1)[0]
    url = secured.url
    for method, path, status, code in [
        ("POST", "/endpoints/ep/invocations", 403, "MissingAuthenticationTokenException"),
        ("GET", "/api/v1/models", 401, "Unauthorized"),
        ("GET", "/api/v1/openapi.json", 401, "Unauthorized"),
        ("GET", "/v2/models/ep", 401, "Unauthorized"),
        ("POST", "/v2/models/ep/infer", 401, "Unauthorized"),
        ("GET", "/metrics", 401, "Unauthorized"),
        ("GET", "/no/such/path", 401, "Unauthorized"),
    ]:
        r = httpx.request(method, url + path, content=body)
        assert r.status_code == status, (path, r.text)
        answer = r.json()
        assert code in (answer.get("error"), answer.get("ErrorCode")), (path, answer)
        if status == 401:
            assert r.headers["www-authenticate"].startswith("Bearer")
    r = httpx.post(url + "/", headers={"X-Amz-Target": "SageMaker.ListModels"}, content=b"{}")
    assert r.status_code == 403 and r.json()["__type"] == "MissingAuthenticationTokenException"
    # Probes stay open: they say whether the server is up, nothing more.
    assert httpx.get(url + "/healthz").status_code == 200
    assert httpx.get(url + "/v2/health/live").status_code == 200
    bad = {"Authorization": "Bearer slk_not-a-token-this-server-knows"}
    assert httpx.get(url + "/api/v1/models", headers=bad).status_code == 401
    unsigned = aws(secured, "sagemaker", "AKSLNOBODY", "x")
    assert code_of(unsigned.list_models) == ("UnrecognizedClientException", 403)


def test_the_admin_token_and_keys_work_everywhere(secured: RunningServer) -> None:
    admin = admin_of(secured)
    bearer = {"Authorization": f"Bearer {admin.token}"}
    body = digit_rows(1)[0]
    r = httpx.post(f"{secured.url}/endpoints/ep/invocations", content=body, headers=bearer)
    assert r.status_code == 200 and r.headers["x-amzn-invoked-production-variant"] == "A"
    assert httpx.get(f"{secured.url}/metrics", headers=bearer).status_code == 200
    assert httpx.get(f"{secured.url}/v2/models/ep", headers=bearer).json()["name"] == "ep"
    with Client(secured.url, token=admin.token) as client:
        assert [m.name for m in client.list_models()] == ["m"]
    sagemaker = aws(secured, "sagemaker", admin.aws_access_key_id, admin.aws_secret_access_key)
    assert sagemaker.describe_endpoint(EndpointName="ep")["EndpointStatus"] == "InService"
    runtime = aws(
        secured, "sagemaker-runtime", admin.aws_access_key_id, admin.aws_secret_access_key
    )
    answer = runtime.invoke_endpoint(EndpointName="ep", ContentType="application/json", Body=body)
    assert answer["InvokedProductionVariant"] == "A"
    wrong = aws(secured, "sagemaker-runtime", admin.aws_access_key_id, "wrong-secret")
    assert code_of(
        wrong.invoke_endpoint, EndpointName="ep", ContentType="application/json", Body=body
    ) == ("InvalidSignatureException", 403)


def test_a_sigv4_signature_admits_the_native_api_too(secured: RunningServer) -> None:
    admin = admin_of(secured)
    request = AWSRequest("GET", f"{secured.url}/api/v1/models")
    credentials = AwsCredentials(admin.aws_access_key_id, admin.aws_secret_access_key)
    SigV4Auth(credentials, "sluice", "us-east-1").add_auth(request)
    r = httpx.get(request.url, headers=dict(request.headers.items()))
    assert r.status_code == 200 and r.json()[0]["name"] == "m"
    tampered = dict(request.headers.items())
    r = httpx.get(f"{secured.url}/api/v1/endpoints", headers=tampered)
    assert r.status_code == 403 and r.json()["error"] == "InvalidSignatureException"


def test_an_invoke_principal_reaches_the_data_plane_only(secured: RunningServer) -> None:
    app = exports(cli(secured.home, "create", "app", "--role", "invoke"))
    try:
        token = app["SLUICE_TOKEN"]
        body = digit_rows(1)[0]
        bearer = {"Authorization": f"Bearer {token}"}
        deadline = time.monotonic() + 5
        while True:  # the server re-reads the file within a second
            r = httpx.post(f"{secured.url}/endpoints/ep/invocations", content=body, headers=bearer)
            if r.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert r.status_code == 200
        infer = {"inputs": [{"name": "x", "shape": [1, 64], "datatype": "FP64",
                             "data": json.loads(body)[0]}]}  # fmt: skip
        assert (
            httpx.post(f"{secured.url}/v2/models/ep/infer", json=infer, headers=bearer).status_code
            == 200
        )
        labels = httpx.post(
            f"{secured.url}/api/v1/endpoints/ep/ground-truth",
            json=[{"inference_id": "x-1", "label": 3}],
            headers=bearer,
        )
        assert labels.status_code == 200, labels.text
        with Client(secured.url, token=token) as client, pytest.raises(SluiceError) as info:
            client.create_model("evil", "file:///etc")
        assert info.value.code == "Forbidden" and "needs admin" in info.value.message
        r = httpx.delete(f"{secured.url}/api/v1/endpoints/ep", headers=bearer)
        assert r.status_code == 403
        sagemaker = aws(secured, "sagemaker", app["AWS_ACCESS_KEY_ID"],
                        app["AWS_SECRET_ACCESS_KEY"])  # fmt: skip
        assert code_of(sagemaker.list_models) == ("AccessDeniedException", 403)
        runtime = aws(secured, "sagemaker-runtime", app["AWS_ACCESS_KEY_ID"],
                      app["AWS_SECRET_ACCESS_KEY"])  # fmt: skip
        runtime.invoke_endpoint(EndpointName="ep", ContentType="application/json", Body=body)
        assert "app" in cli(secured.home, "list") and token not in cli(secured.home, "list")
    finally:
        cli(secured.home, "delete", "app")
    time.sleep(1.2)
    r = httpx.post(f"{secured.url}/endpoints/ep/invocations", content=b"[[0]]", headers=bearer)
    assert r.status_code == 403 and r.json()["ErrorCode"] == "UnrecognizedClientException"


def test_a_host_the_server_does_not_answer_to_is_refused(secured: RunningServer) -> None:
    admin = admin_of(secured)
    for host in ("attacker.example", "attacker.example:8080", "127.0.0.1.nip.io"):
        r = httpx.get(
            f"{secured.url}/api/v1/models",
            headers={"Host": host, "Authorization": f"Bearer {admin.token}"},
        )
        assert r.status_code == 400 and r.json()["error"] == "InvalidHost", host
    for host in ("localhost", f"localhost:{secured.port}", f"127.0.0.1:{secured.port}"):
        r = httpx.get(f"{secured.url}/healthz", headers={"Host": host})
        assert r.status_code == 200, host


def test_bodies_over_the_limit_are_refused_on_every_path(secured: RunningServer) -> None:
    bearer = {"Authorization": f"Bearer {admin_of(secured).token}"}
    huge = b"[" + b"1," * (8 * 1024 * 1024) + b"1]"
    for path in ("/v2/models/ep/infer", "/endpoints/ep/invocations"):
        r = httpx.post(secured.url + path, content=huge, headers=bearer)
        assert r.status_code == 413, path
    control = b" " * (17 * 1024 * 1024)
    r = httpx.post(f"{secured.url}/api/v1/models", content=control, headers=bearer)
    assert r.status_code == 413 and r.json()["error"] == "PayloadTooLarge"
    r = httpx.post(f"{secured.url}/", content=control, headers=bearer)
    assert r.status_code == 413 and r.json()["__type"] == "PayloadTooLarge"


def test_insecure_local_is_refused_off_loopback(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sluice.cli.main", "server", "--insecure-local",
         "--host", "0.0.0.0", "--port", str(free_port()), "--home", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert "loopback" in done.stderr + done.stdout
    assert not (tmp_path / FILE_NAME).exists()
