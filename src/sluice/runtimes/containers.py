"""Several containers in one worker (a multi-container endpoint), called in series or directly.

The model directory holds `containers.json`, written by the server: the execution mode
and, per container, its hostname, unpacked directory, runtime and environment. Every
container is loaded when the worker starts.

- Serial (an inference pipeline): each container's answer is the next one's request, its
  content type the next one's content type. The last container answers in the client's
  Accept; the ones before it in their `SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT` (as SageMaker's
  containers are told to), else JSON. A batch of requests goes through each step
  together; a request that fails at a step is answered with that step's error.
- Direct: a request names its container (TargetContainerHostname) and only it answers.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sluice.codecs import Prediction
from sluice.errors import ValidationError
from sluice.runtimes.base import Runtime
from sluice.runtimes.container_manifest import DIRECT, MANIFEST
from sluice.types import JSON


@dataclass
class Container:
    hostname: str
    runtime: Runtime
    accept: str
    """What it answers in when it is not the last of a pipeline."""


class ContainersRuntime(Runtime):
    name = "containers"

    def load(self) -> None:
        from sluice.runtimes.registry import runtime_class

        manifest = json.loads((self.model_dir / MANIFEST).read_text())
        self.mode: str = manifest["mode"]
        root = self.model_dir.resolve().parent.parent  # the artifact store
        self.containers: list[Container] = []
        for entry in manifest["containers"]:
            directory = Path(entry["directory"]).resolve()
            if not directory.is_relative_to(root):
                raise ValueError(f"container {entry['hostname']} is outside the artifact store")
            environment = entry["environment"]
            runtime = runtime_class(entry["runtime"])(directory, environment)
            runtime.load()
            accept = environment.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT") or JSON
            self.containers.append(Container(entry["hostname"], runtime, accept))
        self.by_hostname = {c.hostname: c for c in self.containers}

    def predict(self, rows: np.ndarray) -> Prediction:
        raise NotImplementedError  # a pipeline answers in bytes: see answer_rows

    def invoke(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        answer = self.invoke_many([(body, content_type, accept)])[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def invoke_many(
        self, requests: Sequence[tuple[bytes, str, str]]
    ) -> list[tuple[bytes, str] | Exception]:
        if self.mode == DIRECT:
            return [self._direct_only() for _ in requests]
        answers: list[tuple[bytes, str] | Exception] = [
            (body, content_type) for body, content_type, _ in requests
        ]
        return self._through(0, answers, [accept for _, _, accept in requests])

    def answer_rows(self, rows: np.ndarray, accept: str) -> tuple[bytes, str]:
        """Rows read from a columnar file (batch transform): the first container predicts
        them, and its answer goes down the pipeline as a request."""
        if self.mode == DIRECT:
            raise self._direct_only()
        first = self.containers[0]
        started = time.perf_counter()
        answer = first.runtime.answer_rows(rows, first.accept)
        seconds = time.perf_counter() - started
        (result,) = self._through(1, [answer], [accept])
        self.step_seconds = [seconds, *(self.step_seconds or ())]
        if isinstance(result, Exception):
            raise result
        return result

    def _through(
        self, start: int, answers: list[tuple[bytes, str] | Exception], accepts: Sequence[str]
    ) -> list[tuple[bytes, str] | Exception]:
        """The pipeline from container `start` on: each (body, content type) still going
        is the next container's request; the last answers in its request's `accepts`."""
        steps: list[float] = []
        last = len(self.containers) - 1
        for index in range(start, last + 1):
            container = self.containers[index]
            going = [i for i, a in enumerate(answers) if not isinstance(a, Exception)]
            if not going:
                break
            calls = []
            for i in going:
                body, content_type = answers[i]  # type: ignore[misc]
                calls.append(
                    (body, content_type, accepts[i] if index == last else container.accept)
                )
            started = time.perf_counter()
            results = container.runtime.invoke_many(calls)
            steps.append(time.perf_counter() - started)
            for i, result in zip(going, results, strict=True):
                answers[i] = result
        self.step_seconds = steps
        return answers

    def _direct_only(self) -> ValidationError:
        names = ", ".join(self.by_hostname)
        return ValidationError(
            "this endpoint's containers are invoked directly: name one with "
            f"TargetContainerHostname ({names})",
            field="TargetContainerHostname",
        )

    def invoke_target(
        self, runtime: str, hostname: str, requests: Sequence[tuple[bytes, str, str]]
    ) -> tuple[list[tuple[bytes, str] | Exception], None]:
        """Answer requests with the container they name (Direct mode)."""
        container = self.by_hostname.get(hostname)
        if self.mode != DIRECT or container is None:
            raise ValidationError(
                f"no container {hostname!r} to invoke directly", field="TargetContainerHostname"
            )
        return container.runtime.invoke_many(requests), None
