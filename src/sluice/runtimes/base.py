"""The Runtime contract every model runtime implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import numpy as np

from sluice import codecs
from sluice.codecs import Prediction
from sluice.errors import ModelError, SluiceError


class Runtime(ABC):
    """Loads one model from a directory and answers requests for it.

    A runtime lives inside a worker process. `load` runs once; `invoke` runs per request
    (or per batch) and must raise `ValidationError` for bad input and let anything the
    model raises escape (the worker turns it into a ModelError).

    Args:
        model_dir: the unpacked artifact (model files at the top, optional `code/`).
        environment: the model's environment variables (strings).
    """

    name: ClassVar[str]

    def __init__(self, model_dir: Path, environment: Mapping[str, str]) -> None:
        self.model_dir = model_dir
        self.environment = dict(environment)

    @abstractmethod
    def load(self) -> None:
        """Load the model; raise with a readable message when it cannot be loaded."""

    @abstractmethod
    def predict(self, rows: np.ndarray) -> Prediction:
        """Run the model on a 2-D array of rows; return named outputs ("predictions" first)."""

    def invoke(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        """Decode, predict and encode one request. Returns (body, content type)."""
        rows = codecs.decode(body, content_type)
        codecs.check_accept(accept)
        try:
            outputs = self.predict(rows)
        except SluiceError:
            raise
        except Exception as exc:
            raise ModelError(f"{type(exc).__name__}: {exc}") from exc
        return codecs.encode(outputs, accept)


def find_one(model_dir: Path, patterns: tuple[str, ...], what: str) -> Path:
    """The single model file matching the first pattern that matches anything."""
    for pattern in patterns:
        found = sorted(p for p in model_dir.glob(pattern) if p.is_file())
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            names = ", ".join(p.name for p in found)
            raise FileNotFoundError(f"several {what} files in the artifact ({names}); keep one")
    raise FileNotFoundError(
        f"no {what} file in the artifact (looked for {', '.join(patterns)} in {model_dir.name})"
    )
