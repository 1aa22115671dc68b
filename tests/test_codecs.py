from __future__ import annotations

import io
import json

import numpy as np
import pytest

from sluice import codecs
from sluice.errors import UnsupportedContentType, ValidationError


def test_json_rows_and_single_row() -> None:
    assert codecs.decode(b"[[1, 2], [3, 4]]", "application/json").shape == (2, 2)
    assert codecs.decode(b"[1, 2, 3]", "application/json; charset=utf-8").shape == (1, 3)
    assert codecs.decode(b'{"instances": [[1, 2]]}', "application/json").tolist() == [[1, 2]]
    assert codecs.decode(b'{"inputs": [[5]]}', "application/json").tolist() == [[5]]


def test_csv_and_npy_and_jsonlines() -> None:
    assert codecs.decode(b"1,2\n3,4\n", "text/csv").tolist() == [[1, 2], [3, 4]]
    buffer = io.BytesIO()
    np.save(buffer, np.ones((2, 3)))
    assert codecs.decode(buffer.getvalue(), "application/x-npy").shape == (2, 3)
    assert codecs.decode(b"[1, 2]\n[3, 4]\n", "application/jsonlines").shape == (2, 2)


@pytest.mark.parametrize(
    ("body", "content_type", "fragment"),
    [
        (b"", "application/json", "empty"),
        (b"[[1, 2", "application/json", "not valid JSON"),
        (b"[[1, 2], [3]]", "application/json", "same length"),
        (b"7", "application/json", "scalar"),
        (b'{"rows": [[1]]}', "application/json", "instances"),
        (b"1,2\n3\n", "text/csv", "row 2 has 1 values"),
        (b"not numpy", "application/x-npy", "not a valid .npy"),
        (b"\xff\xfe", "text/csv", "UTF-8"),
    ],
)
def test_bad_bodies_name_the_problem(body: bytes, content_type: str, fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        codecs.decode(body, content_type)
    assert fragment in info.value.message
    assert info.value.field == "body"


def test_pickled_npy_is_refused() -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValidationError):
        codecs.decode(buffer.getvalue(), "application/x-npy")


def test_unsupported_types() -> None:
    with pytest.raises(UnsupportedContentType) as info:
        codecs.decode(b"<x/>", "text/xml")
    assert info.value.status == 415 and info.value.field == "Content-Type"
    with pytest.raises(UnsupportedContentType) as info:
        codecs.check_accept("image/png")
    assert info.value.field == "Accept"


def test_encode_each_accept() -> None:
    outputs = {"predictions": np.array([1, 2]), "probabilities": np.array([[0.1, 0.9], [1, 0]])}
    body, kind = codecs.encode(outputs, "*/*")
    assert kind == "application/json"
    assert json.loads(body) == {"predictions": [1, 2], "probabilities": [[0.1, 0.9], [1.0, 0.0]]}
    assert codecs.encode(outputs, "text/csv") == (b"1\n2\n", "text/csv")
    body, kind = codecs.encode(outputs, "application/x-npy")
    assert np.load(io.BytesIO(body)).tolist() == [1, 2]
    assert codecs.encode(outputs, "application/jsonlines")[0] == b"1\n2\n"
