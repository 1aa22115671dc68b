"""The Open Inference Protocol (v2) on a real server, through tritonclient's HTTP client
unchanged, and through plain JSON requests for the bad cases."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from sluice.client import Client
from tests import models
from tests.conftest import RunningServer

pytestmark = pytest.mark.slow


@pytest.fixture
def endpoint(server: RunningServer, artifacts: dict[str, Path]) -> Iterator[str]:
    with Client(server.url) as c:
        c.create_model("logreg", str(artifacts["logreg"]))
        c.create_model("tree", str(artifacts["tree"]))
        c.create_endpoint_config(
            "cfg",
            [{"name": "A", "model": "logreg"}, {"name": "B", "model": "tree", "weight": 0}],
            [],
            {"enabled": True},
        )
        c.create_endpoint("digits", "cfg", wait=True, timeout=60)
    yield "digits"


def test_tritonclient_works_unchanged(server: RunningServer, endpoint: str) -> None:
    x, y = models.digits()
    client = triton.InferenceServerClient(server.url.removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(endpoint)
    assert client.get_server_metadata()["name"] == "sluice"
    metadata = client.get_model_metadata(endpoint)
    assert metadata["versions"] == ["A", "B"] and metadata["platform"] == "sklearn"

    batch = x[:16].astype(np.float32)
    tensor = triton.InferInput("input-0", list(batch.shape), "FP32")
    tensor.set_data_from_numpy(batch)  # binary tensor extension, the client's default
    result = client.infer(endpoint, [tensor], request_id="r-1")
    assert result.get_response()["model_version"] == "A"
    assert result.get_response()["id"] == "r-1"
    np.testing.assert_array_equal(result.as_numpy("predictions"), y[:16])

    tensor.set_data_from_numpy(batch, binary_data=False)  # plain JSON both ways
    wanted = [triton.InferRequestedOutput("predictions", binary_data=False)]
    result = client.infer(endpoint, [tensor], model_version="B", outputs=wanted)
    assert result.get_response()["model_version"] == "B"
    assert result.as_numpy("predictions").shape == (16,)

    with pytest.raises(InferenceServerException, match="does not exist"):
        client.get_model_metadata("nope")
    with pytest.raises(InferenceServerException, match="not a production variant"):
        client.infer(endpoint, [tensor], model_version="Z")
    client.close()


def test_bad_inference_requests(server: RunningServer, endpoint: str) -> None:
    url = f"{server.url}/v2/models/{endpoint}/infer"
    row = [0.0] * 64
    ok = httpx.post(
        url, json={"inputs": [{"name": "x", "shape": [1, 64], "datatype": "FP64", "data": row}]}
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["outputs"][0]["datatype"] == "INT64"
    for body, fragment in [
        ({"inputs": []}, "exactly one input"),
        ({"inputs": [{"name": "x", "shape": [1, 64], "datatype": "STRING", "data": row}]},
         "datatype must be one of"),
        ({"inputs": [{"name": "x", "shape": [2, 64], "datatype": "FP64", "data": row}]},
         "do not fill shape"),
        ({"inputs": [{"name": "x", "shape": [1, 64], "datatype": "FP64", "data": row}],
          "outputs": [{"name": "logits"}]}, "no output 'logits'"),
        ({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}]},
         "features"),
    ]:  # fmt: skip
        response = httpx.post(url, json=body)
        assert response.status_code in (400, 424), response.text
        assert fragment in response.json()["error"], response.text
    response = httpx.post(url, content=b"{oops")
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]
    good = {"inputs": [{"name": "x", "shape": [1, 64], "datatype": "FP64", "data": row}]}
    response = httpx.post(f"{server.url}/v2/models/nope/infer", json=good)
    assert response.status_code == 404 and "does not exist" in response.json()["error"]
