"""scikit-learn models stored with joblib or pickle."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from sluice.codecs import Prediction
from sluice.errors import ValidationError
from sluice.runtimes.base import Runtime, find_one

MODEL_FILES = ("model.joblib", "model.pkl", "model.pickle", "*.joblib", "*.pkl", "*.pickle")


def load_estimator(model_dir: Path) -> Any:
    import joblib  # joblib reads plain pickles too

    path = find_one(model_dir, MODEL_FILES, "scikit-learn model")
    try:
        return joblib.load(path)
    except Exception as exc:
        raise ValueError(
            f"cannot load {path.name} with joblib/pickle: {type(exc).__name__}: {exc}"
        ) from exc


def check_width(model: Any, rows: np.ndarray) -> None:
    expected = getattr(model, "n_features_in_", None)
    if expected is not None and rows.shape[1] != expected:
        raise ValidationError(
            f"each row must have {expected} features, got {rows.shape[1]}", field="body"
        )


class SklearnRuntime(Runtime):
    """`predict`, plus `predict_proba` when the estimator has it.

    Environment: `SLUICE_PREDICT_PROBA=false` leaves probabilities out of the answer (the
    default in SageMaker's answer form, which holds the predictions alone).
    """

    name = "sklearn"

    def load(self) -> None:
        self.model = load_estimator(self.model_dir)
        if not hasattr(self.model, "predict"):
            raise TypeError(f"{type(self.model).__name__} has no predict method")
        # SageMaker's container calls predict alone; sluice's answer adds probabilities.
        default = "false" if self.bare else "true"
        wants_proba = self.environment.get("SLUICE_PREDICT_PROBA", default).lower() != "false"
        self.with_proba = wants_proba and hasattr(self.model, "predict_proba")

    def predict(self, rows: np.ndarray) -> Prediction:
        check_width(self.model, rows)
        try:
            return self._predict(rows)
        except ValueError as exc:
            # scikit-learn's input checks (NaN, infinities, types): the client's input.
            raise ValidationError(f"the model refused the input: {exc}", field="body") from None

    def _predict(self, rows: np.ndarray) -> Prediction:
        if self.with_proba:
            proba = self.model.predict_proba(rows)
            classes = self.model.classes_
            return {"predictions": classes[np.argmax(proba, axis=1)], "probabilities": proba}
        return {"predictions": self.model.predict(rows)}
