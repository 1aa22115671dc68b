from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sluice.errors import ModelError, ValidationError
from sluice.runtimes import registry
from sluice.runtimes.handler import HandlerRuntime
from sluice.runtimes.sklearn import SklearnRuntime
from tests import models


def test_sklearn_predicts_with_probabilities(artifacts: dict[str, Path]) -> None:
    runtime = SklearnRuntime(artifacts["logreg"], {})
    runtime.load()
    x, y = models.digits()
    body, kind = runtime.invoke(json.dumps(x[:3].tolist()).encode(), "application/json", "")
    answer = json.loads(body)
    assert answer["predictions"] == y[:3].tolist()
    assert len(answer["probabilities"][0]) == 10
    assert abs(sum(answer["probabilities"][0]) - 1) < 1e-9


def test_sklearn_without_probabilities(artifacts: dict[str, Path]) -> None:
    runtime = SklearnRuntime(artifacts["logreg"], {"SLUICE_PREDICT_PROBA": "false"})
    runtime.load()
    x, _ = models.digits()
    body, _ = runtime.invoke(json.dumps(x[:1].tolist()).encode(), "application/json", "text/csv")
    assert body.strip().isdigit()


def test_sklearn_wrong_width_is_a_validation_error(artifacts: dict[str, Path]) -> None:
    runtime = SklearnRuntime(artifacts["logreg"], {})
    runtime.load()
    with pytest.raises(ValidationError, match="64 features, got 3"):
        runtime.invoke(b"[[1, 2, 3]]", "application/json", "application/json")


def test_sklearn_without_a_model_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no scikit-learn model file"):
        SklearnRuntime(tmp_path, {}).load()


def test_onnx_runtime_matches_sklearn(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    skl2onnx = pytest.importorskip("skl2onnx")
    from skl2onnx.common.data_types import FloatTensorType

    model = models.digits_logreg()
    onx = skl2onnx.convert_sklearn(model, initial_types=[("input", FloatTensorType([None, 64]))])
    (tmp_path / "model.onnx").write_bytes(onx.SerializeToString())
    assert registry.detect(tmp_path, {}) == "onnx"
    runtime = registry.runtime_class("onnx")(tmp_path, {})
    runtime.load()
    x, _ = models.digits()
    body, _ = runtime.invoke(json.dumps(x[:20].tolist()).encode(), "application/json", "")
    answer = json.loads(body)
    assert answer["predictions"] == model.predict(x[:20]).tolist()
    assert len(answer["probabilities"][0]) == 10
    with pytest.raises(ValidationError, match="64 features"):
        runtime.invoke(b"[[1]]", "application/json", "")


def test_handler_defaults_and_overrides(artifacts: dict[str, Path]) -> None:
    runtime = HandlerRuntime(artifacts["crashing"], {})
    runtime.load()
    x, y = models.digits()
    body, _ = runtime.invoke(json.dumps(x[:2].tolist()).encode(), "application/json", "")
    assert json.loads(body)["predictions"] == y[:2].tolist()
    with pytest.raises(ModelError, match="negative pixel values"):
        runtime.invoke(json.dumps([[-1.0] * 64]).encode(), "application/json", "")


def test_handler_output_fn(artifacts: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = HandlerRuntime(artifacts["echo"], {})
    monkeypatch.setenv("VARIANT_TAG", "blue")
    runtime.load()
    assert runtime.invoke(b"[1, 2, 3]", "application/json", "") == (
        b'{"tag": "blue", "rows": 3}',
        "application/json",
    )


def test_handler_without_script_uses_toolkit_defaults(artifacts: dict[str, Path]) -> None:
    runtime = HandlerRuntime(artifacts["logreg"], {})
    runtime.load()
    x, y = models.digits()
    body, _ = runtime.invoke(json.dumps(x[:1].tolist()).encode(), "application/json", "")
    assert json.loads(body) == {"predictions": y[:1].tolist()}


def test_detection_order(artifacts: dict[str, Path], tmp_path: Path) -> None:
    assert registry.detect(artifacts["logreg"], {}) == "sklearn"
    assert registry.detect(artifacts["crashing"], {}) == "python"
    assert registry.detect(artifacts["logreg"], {"SLUICE_RUNTIME": "python"}) == "python"
    assert (
        registry.detect(tmp_path, {}, image="123.dkr.ecr/sagemaker-scikit-learn:1.2") == "sklearn"
    )
    assert registry.detect(tmp_path, {}, image="pytorch-inference:2.1") == "python"
    with pytest.raises(ValidationError, match="cannot tell which runtime"):
        registry.detect(tmp_path, {})
    with pytest.raises(ValidationError, match="unknown runtime"):
        registry.canonical("tensorflow")


def test_many_requests_are_answered_together_as_each_would_be_alone(
    artifacts: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = SklearnRuntime(artifacts["logreg"], {})
    runtime.load()
    x, _ = models.digits()
    calls: list[int] = []
    predict = runtime.predict
    monkeypatch.setattr(runtime, "predict", lambda rows: calls.append(len(rows)) or predict(rows))
    requests = [
        (json.dumps(x[:2].tolist()).encode(), "application/json", "application/json"),
        (b"not json", "application/json", "application/json"),  # fails alone, at decoding
        (json.dumps(x[2:3].tolist()).encode(), "application/json", "text/csv"),
        (b"[[1, 2]]", "application/json", "application/json"),  # another width: alone
        (",".join(map(str, x[3])).encode(), "text/csv", "application/json"),
        (json.dumps(x[4:5].tolist()).encode(), "application/json", "image/png"),
    ]
    answers = runtime.invoke_many(requests)
    assert len(answers) == len(requests)
    assert sorted(calls) == [1, 4]  # the three alike (2 + 1 + 1 rows) in one call
    for request, answer in zip(requests, answers, strict=True):
        if isinstance(answer, Exception):
            with pytest.raises(type(answer)):
                runtime.invoke(*request)
            continue
        body, content_type = answer
        alone_body, alone_type = runtime.invoke(*request)
        assert content_type == alone_type
        if content_type == "application/json":
            got, alone = json.loads(body), json.loads(alone_body)
            assert got["predictions"] == alone["predictions"]
            np.testing.assert_allclose(got["probabilities"], alone["probabilities"], rtol=1e-12)
        else:
            assert body == alone_body
    assert isinstance(answers[1], ValidationError)
    assert isinstance(answers[3], ValidationError) and "64 features" in str(answers[3])
    assert "image/png" in str(answers[5])


def test_a_batch_the_model_refuses_is_tried_request_by_request(
    artifacts: dict[str, Path],
) -> None:
    runtime = SklearnRuntime(artifacts["logreg"], {})
    runtime.load()
    x, y = models.digits()
    good = json.dumps(x[:1].tolist()).encode()
    bad = json.dumps([[float("nan")] * 64]).encode()
    answers = runtime.invoke_many([(good, "application/json", ""), (bad, "application/json", "")])
    assert json.loads(answers[0][0])["predictions"] == y[:1].tolist()  # type: ignore[index]
    assert isinstance(answers[1], ValidationError)


def test_a_runtime_with_its_own_invoke_answers_each_request_alone(
    artifacts: dict[str, Path],
) -> None:
    runtime = HandlerRuntime(artifacts["crashing"], {})
    runtime.load()
    x, y = models.digits()
    answers = runtime.invoke_many(
        [
            (json.dumps(x[:2].tolist()).encode(), "application/json", ""),
            (json.dumps([[-1.0] * 64]).encode(), "application/json", ""),
        ]
    )
    assert json.loads(answers[0][0])["predictions"] == y[:2].tolist()  # type: ignore[index]
    assert isinstance(answers[1], ModelError)
