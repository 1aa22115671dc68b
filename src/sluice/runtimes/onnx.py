"""ONNX models through onnxruntime (extra: sluice[onnx])."""

from __future__ import annotations

from typing import Any

import numpy as np

from sluice.codecs import Prediction
from sluice.errors import ValidationError
from sluice.runtimes.base import Runtime, find_one

NUMPY_TYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(string)": np.str_,
}


class OnnxRuntime(Runtime):
    """First output is "predictions"; a second (e.g. a classifier's) is "probabilities".

    Environment: `SLUICE_ONNX_THREADS` (default 1) sets intra-op threads per instance.
    """

    name = "onnx"

    def load(self) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise ImportError(
                "the onnx runtime needs the extra: pip install 'sluice[onnx]'"
            ) from exc
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(self.environment.get("SLUICE_ONNX_THREADS", "1"))
        path = find_one(self.model_dir, ("model.onnx", "*.onnx"), "ONNX model")
        self.session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        first = self.session.get_inputs()[0]
        self.input_name = first.name
        self.input_type = NUMPY_TYPES.get(first.type, np.float32)
        width = first.shape[1] if len(first.shape) > 1 else None
        self.width = width if isinstance(width, int) else None
        self.output_names = [o.name for o in self.session.get_outputs()]

    def predict(self, rows: np.ndarray) -> Prediction:
        if self.width is not None and rows.shape[1] != self.width:
            raise ValidationError(
                f"each row must have {self.width} features, got {rows.shape[1]}", field="body"
            )
        outputs = self.session.run(None, {self.input_name: rows.astype(self.input_type)})
        result: dict[str, Any] = {"predictions": outputs[0]}
        if len(outputs) > 1:
            result["probabilities"] = _probabilities(outputs[1])
        return result


def _probabilities(value: Any) -> Any:
    # skl2onnx's ZipMap gives one {class: probability} dict per row.
    if isinstance(value, list) and value and isinstance(value[0], dict):
        keys = sorted(value[0])
        return np.array([[row[k] for k in keys] for row in value])
    return value
