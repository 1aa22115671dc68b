"""The SageMaker Python handler: `code/inference.py` with model_fn, input_fn, predict_fn, output_fn.

Each function is optional; missing ones fall back to the inference toolkit's defaults:
model_fn loads a scikit-learn model from the directory, input_fn decodes by content type,
predict_fn calls `model.predict`, output_fn encodes by Accept.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

from sluice import codecs
from sluice.codecs import Prediction
from sluice.errors import ModelError, SluiceError, ValidationError
from sluice.runtimes.base import Runtime
from sluice.runtimes.registry import PROGRAM, handler_script
from sluice.runtimes.sklearn import check_width, load_estimator


class HandlerRuntime(Runtime):
    name = "python"

    def load(self) -> None:
        self.module = self._import_handler()
        model_fn: Callable[[str], Any] = getattr(self.module, "model_fn", _default_model_fn)
        self.model = model_fn(str(self.model_dir))
        self.input_fn: Callable[[bytes, str], Any] = getattr(
            self.module, "input_fn", _default_input_fn
        )
        self.predict_fn: Callable[[Any, Any], Any] = getattr(
            self.module, "predict_fn", _default_predict_fn
        )
        self.output_fn: Callable[[Any, str], Any] | None = getattr(self.module, "output_fn", None)

    def _import_handler(self) -> ModuleType | None:
        code_dir = self.model_dir / "code"
        script = code_dir / handler_script(self.environment)
        if not script.is_file():
            if PROGRAM in self.environment:
                raise FileNotFoundError(f"{PROGRAM}: no {script.name} in the model's code")
            return None
        # As SageMaker's containers do: the handler may import helpers that sit beside it.
        sys.path.insert(0, str(code_dir))
        spec = importlib.util.spec_from_file_location("inference", script)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    def predict(self, rows: np.ndarray) -> Prediction:
        return {"predictions": self.predict_fn(rows, self.model)}

    def invoke(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        try:
            data = self.input_fn(body, content_type)
        except SluiceError:
            raise
        except Exception as exc:
            # Decoding is about the client's body: its failure is a 4xx, never the model's
            # 5xx (a client sending garbage must not trip an endpoint's rollback alarms).
            raise ValidationError(
                f"input_fn could not read the body: {type(exc).__name__}: {exc}", field="body"
            ) from exc
        return self._answer(data, accept)

    def answer_rows(self, rows: np.ndarray, accept: str) -> tuple[bytes, str]:
        """Rows read from a columnar file go to predict_fn as input_fn's data would."""
        return self._answer(rows, accept)

    def _answer(self, data: Any, accept: str) -> tuple[bytes, str]:
        """predict_fn, then output_fn (or the default encoding)."""
        try:
            prediction = self.predict_fn(data, self.model)
            if self.output_fn is None:
                return codecs.encode(_as_outputs(prediction), accept, self.bare)
            produced = self.output_fn(prediction, accept)
        except SluiceError:
            raise
        except Exception as exc:
            raise ModelError(f"{type(exc).__name__}: {exc}") from exc
        if isinstance(produced, tuple):
            out_body, out_type = produced
        else:
            out_body, out_type = produced, codecs.media_type(accept)
        if isinstance(out_body, str):
            out_body = out_body.encode()
        return bytes(out_body), str(out_type)


def _default_model_fn(model_dir: str) -> Any:
    from pathlib import Path

    return load_estimator(Path(model_dir))


def _default_input_fn(body: bytes, content_type: str) -> Any:
    return codecs.decode(body, content_type)


def _default_predict_fn(data: Any, model: Any) -> Any:
    if isinstance(data, np.ndarray):
        check_width(model, data)
    return model.predict(data)


def _as_outputs(prediction: Any) -> Prediction:
    if isinstance(prediction, dict) and "predictions" in prediction:
        return prediction
    return {"predictions": prediction}
