"""Bad input through a real server: clear 4xx/424 answers, no traceback, nothing lost."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from sluice.client import Client
from tests import models
from tests.conftest import RunningServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def live(
    tmp_path_factory: pytest.TempPathFactory, artifacts: dict[str, Path]
) -> Iterator[RunningServer]:
    running = RunningServer(
        tmp_path_factory.mktemp("errors") / "home", {"SLUICE_MAX_PAYLOAD_BYTES": "100000"}
    )
    with Client(running.url) as client:
        client.create_model("logreg", str(artifacts["logreg_tar"]))
        client.create_model("crashing", str(artifacts["crashing"]))
        client.create_endpoint_config(
            "cfg",
            [{"name": "A", "model": "logreg"}, {"name": "C", "model": "crashing", "weight": 0}],
        )
        client.create_endpoint("ep", "cfg", wait=True, timeout=60)
    yield running
    running.stop()


def _post(
    server: RunningServer,
    body: bytes,
    content_type: str = "application/json",
    path: str = "/endpoints/ep/invocations",
    **headers: str,
) -> httpx.Response:
    return httpx.post(
        server.url + path,
        content=body,
        headers={"Content-Type": content_type, **headers},
        timeout=30,
    )


@pytest.mark.parametrize(
    ("body", "content_type", "status", "fragment"),
    [
        (b"[[0.0, 1.0", "application/json", 400, "not valid JSON"),
        (b"[[1, 2, 3]]", "application/json", 400, "64 features, got 3"),
        (b"[[1, 2], [3]]", "application/json", 400, "same length"),
        (b"", "application/json", 400, "empty"),
        (b"1,2\n3", "text/csv", 400, "row 2"),
        (b"<digits/>", "application/xml", 415, "not supported"),
        (b"x" * 100_001, "application/json", 413, "max_payload_bytes"),
    ],
)
def test_bad_requests_get_clear_errors(
    live: RunningServer, body: bytes, content_type: str, status: int, fragment: str
) -> None:
    response = _post(live, body, content_type)
    assert response.status_code == status
    doc = response.json()
    assert fragment in doc["Message"]
    assert response.headers["x-amzn-errortype"] == doc["ErrorCode"]
    assert "Traceback" not in response.text


def test_unknown_names(live: RunningServer) -> None:
    response = _post(live, b"[[1]]", path="/endpoints/nope/invocations")
    assert response.status_code == 400
    assert response.json() == {
        "ErrorCode": "ValidationError",
        "Message": "Endpoint nope of account 000000000000 not found.",
        "Field": "EndpointName",
    }
    response = _post(live, b"[[1]]", **{"X-Amzn-SageMaker-Target-Variant": "Z"})
    assert response.status_code == 400
    assert response.json()["Field"] == "X-Amzn-SageMaker-Target-Variant"
    response = _post(live, b"[[1]]", **{"X-Amzn-SageMaker-Inference-Id": "x" * 65})
    assert response.status_code == 400


def test_a_model_that_raises_is_a_model_error(live: RunningServer) -> None:
    response = _post(
        live, json.dumps([[-1.0] * 64]).encode(), **{"X-Amzn-SageMaker-Target-Variant": "C"}
    )
    assert response.status_code == 424
    doc = response.json()
    assert doc["ErrorCode"] == "ModelError" and doc["OriginalStatusCode"] == 500
    assert "negative pixel values are not digits" in doc["OriginalMessage"]
    assert "Traceback" not in response.text


def test_other_content_types_and_accept(live: RunningServer) -> None:
    x, y = models.digits()
    buffer = io.BytesIO()
    np.save(buffer, x[:3])
    response = _post(live, buffer.getvalue(), "application/x-npy", Accept="text/csv")
    assert response.status_code == 200 and response.headers["content-type"] == "text/csv"
    assert response.text.split() == [str(v) for v in y[:3]]
    csv = "\n".join(",".join(str(v) for v in row) for row in x[:2]).encode()
    response = _post(live, csv, "text/csv", Accept="application/x-npy")
    assert np.load(io.BytesIO(response.content)).tolist() == y[:2].tolist()
    response = _post(live, b"[[0]]", Accept="image/png")
    assert response.status_code == 415


def test_errors_lose_nothing_already_accepted(live: RunningServer) -> None:
    row = json.dumps([models.digits()[0][0].tolist()]).encode()
    for _ in range(3):
        assert _post(live, b"[[", "application/json").status_code == 400
        assert _post(live, row).status_code == 200
    with Client(live.url) as client:
        assert client.get_endpoint("ep").status == "InService"


def test_native_api_errors_name_the_field(live: RunningServer) -> None:
    api = live.url + "/api/v1"
    cases = [
        ("POST", "/models", {"name": "-bad", "artifact": "/x"}, 400, "ModelName"),
        ("POST", "/models", {"name": "m", "artifact": "/does/not/exist"}, 400, "artifact"),
        ("POST", "/models", {"name": "logreg", "artifact": "/x"}, 409, "name"),  # name first
        ("POST", "/models", {"name": "m"}, 400, "artifact"),
        (
            "POST",
            "/endpoint-configs",
            {"name": "c2", "variants": [{"name": "A", "model": "nope"}]},
            404,
            "name",
        ),
        (
            "POST",
            "/endpoint-configs",
            {
                "name": "c2",
                "variants": [{"name": "A", "model": "logreg"}, {"name": "A", "model": "logreg"}],
            },
            400,
            "VariantName",
        ),
        (
            "POST",
            "/endpoint-configs",
            {"name": "c2", "variants": [{"name": "A", "model": "logreg", "weight": 0}]},
            400,
            "InitialVariantWeight",
        ),
        (
            "POST",
            "/endpoint-configs",
            {"name": "cfg", "variants": [{"name": "A", "model": "logreg"}]},
            409,
            "name",
        ),
        ("POST", "/endpoints", {"name": "ep", "config": "cfg"}, 409, "name"),
        ("GET", "/endpoints/missing", None, 404, "name"),
        ("PUT", "/endpoints/ep/weights", {"weights": {"Z": 1}}, 400, "VariantName"),
        ("PUT", "/endpoints/ep/weights", {"weights": {"A": -1}}, 400, "DesiredWeight"),
        ("PUT", "/endpoints/ep/weights", {"weights": {"A": 0}}, 400, "DesiredWeight"),
    ]
    for method, path, body, status, field in cases:
        response = httpx.request(method, api + path, json=body)
        assert response.status_code == status, (path, body, response.text)
        assert response.json()["field"] == field, (path, body, response.text)
    spec = httpx.get(api + "/openapi.json").json()
    assert "/endpoints/{name}/weights" in spec["paths"]
