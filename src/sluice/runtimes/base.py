"""The Runtime contract every model runtime implements."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from sluice import codecs
from sluice.codecs import Prediction
from sluice.errors import ModelError, SluiceError
from sluice.runtimes.registry import SAGEMAKER_FORM

log = logging.getLogger("sluice.worker")
FAILED_JOINS_LIMIT = 3


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
        self.failed_joins = 0
        """Joined calls in a row that failed while their requests alone succeeded."""
        self.bare = self.environment.get("SLUICE_ANSWER", "").lower() == SAGEMAKER_FORM
        """Answer JSON as SageMaker's framework containers do: the predictions alone."""
        self.step_seconds: list[float] | None = None
        """For a runtime made of steps (an inference pipeline): how long each step of its
        last call took."""

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
        return codecs.encode(self._predict_checked(rows), accept, self.bare)

    def invoke_many(
        self, requests: Sequence[tuple[bytes, str, str]]
    ) -> list[tuple[bytes, str] | Exception]:
        """Answer several (body, content type, accept) requests: for each, its answer or
        what `invoke` would have raised. With the standard decode, predict, encode (a
        runtime that keeps `invoke` as it is here), the rows of requests alike in type and
        width go to the model in one `predict` call and the outputs are split back (one
        output row per input row); if that call fails, each request is tried alone, so
        one bad input fails only itself."""
        if len(requests) == 1:
            return [_attempt(self.invoke, *requests[0])]
        if type(self).invoke is not Runtime.invoke or self.failed_joins >= FAILED_JOINS_LIMIT:
            return [_attempt(self.invoke, *request) for request in requests]
        answers: list[tuple[bytes, str] | Exception | None] = [None] * len(requests)
        alike: dict[tuple[str, tuple[int, ...]], list[tuple[int, np.ndarray, str]]] = {}
        for i, (body, content_type, accept) in enumerate(requests):
            try:
                rows = codecs.decode(body, content_type)
                codecs.check_accept(accept)
            except Exception as exc:  # noqa: BLE001 - the request's own failure
                answers[i] = exc
                continue
            alike.setdefault((rows.dtype.str, rows.shape[1:]), []).append((i, rows, accept))
        for group in alike.values():
            parts = self._predict_together([rows for _, rows, _ in group])
            for k, (i, rows, accept) in enumerate(group):
                if parts is None:
                    answers[i] = _attempt(self.answer_rows, rows, accept)
                else:
                    answers[i] = _attempt(codecs.encode, parts[k], accept, self.bare)
            if len(group) > 1:
                self._count_join(parts is not None, [answers[i] for i, _, _ in group])
        return [a for a in answers if a is not None]

    def _count_join(
        self, joined: bool, answers: list[tuple[bytes, str] | Exception | None]
    ) -> None:
        """A model whose joined calls keep failing while each request alone succeeds (a
        fixed batch dimension, a model that is not row by row) is no longer joined."""
        if joined:
            self.failed_joins = 0
        elif not any(isinstance(a, Exception) for a in answers):
            self.failed_joins += 1
            if self.failed_joins == FAILED_JOINS_LIMIT:
                log.warning(
                    "the model failed %d batches in a row whose requests it answered one by "
                    "one; it is no longer sent batches",
                    FAILED_JOINS_LIMIT,
                )

    def answer_rows(self, rows: np.ndarray, accept: str) -> tuple[bytes, str]:
        """Predict rows already decoded (a columnar file's) and encode the outputs in
        `accept`. Returns (body, content type)."""
        return codecs.encode(self._predict_checked(rows), accept, self.bare)

    def _predict_checked(self, rows: np.ndarray) -> Prediction:
        """`predict`, with anything but sluice's own errors reported as a ModelError."""
        try:
            return self.predict(rows)
        except SluiceError:
            raise
        except Exception as exc:
            raise ModelError(f"{type(exc).__name__}: {exc}") from exc

    def _predict_together(self, batches: list[np.ndarray]) -> list[Prediction] | None:
        """One `predict` over the rows of every batch, split back per batch; None when the
        call fails or an output does not have one row per input row."""
        if len(batches) == 1:
            return None
        try:
            outputs = self.predict(np.concatenate(batches))
        except Exception:  # noqa: BLE001 - each batch is then tried alone
            return None
        sizes = [len(b) for b in batches]
        total = sum(sizes)
        cuts = np.cumsum(sizes)[:-1]
        split: dict[str, list[np.ndarray]] = {}
        for name, value in outputs.items():
            array = np.asarray(value)
            if array.ndim == 0 or len(array) != total:
                return None
            split[name] = np.split(array, cuts)
        return [{name: parts[k] for name, parts in split.items()} for k in range(len(batches))]


def _attempt(answer: Callable[..., tuple[bytes, str]], *args: Any) -> tuple[bytes, str] | Exception:
    """`answer(*args)`, or what it raised."""
    try:
        return answer(*args)
    except Exception as exc:  # noqa: BLE001 - handed back as this request's failure
        return exc


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
