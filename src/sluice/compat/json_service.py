"""An AWS service spoken in the JSON 1.1 protocol (`POST /`, `X-Amz-Target:
<prefix>.<Operation>`), top to bottom: find the operation, read the JSON body, check it
against botocore's model of the service, run the operation off the event loop, answer
JSON or an error `{"__type", <message>}` in the service's own words.

Application Auto Scaling and CloudWatch Logs are served this way (SageMaker's control
plane has its own, with idempotency tokens and SageMaker's error mapping).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from sluice.compat.cloudwatch.api import epoch_seconds
from sluice.compat.sagemaker.shapes import LazyServiceModel, ValidationException

log = logging.getLogger(__name__)

JSON_1_1 = "application/x-amz-json-1.1"

Operation = Callable[[dict[str, Any]], dict[str, Any]]


class ServiceError(Exception):
    """An error answered in the service's words: its `__type`, a message, a status."""

    def __init__(self, kind: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.kind, self.message, self.status = kind, message, status


@dataclass(frozen=True)
class Wording:
    """How a service words its errors."""

    title: str
    """The service's name in messages (`CloudWatch Logs`)."""
    invalid: str
    """The `__type` of a request that does not fit the model."""
    message_key: str
    """`message` or `Message`: the services differ."""
    internal: tuple[str, str]
    """The `__type` and message of a fault of the server's."""


class JsonService:
    def __init__(
        self,
        botocore_name: str,
        target: str,
        operations: dict[str, Operation],
        wording: Wording,
        run: Callable[[Operation, dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        """`run`: calls an operation, turning sluice's errors into the service's (by
        default, the operation is called as it is)."""
        self.target = target
        self.operations = operations
        self.wording = wording
        self.run = run or (lambda operation, members: operation(members))
        self.model = LazyServiceModel(botocore_name, operations)

    async def handle(self, request: Request) -> Response:
        """The Starlette endpoint."""
        words = self.wording
        name = request.headers.get("x-amz-target", "").removeprefix(f"{self.target}.")
        try:
            operation = self.operations.get(name)
            if operation is None:
                raise ServiceError(
                    "UnknownOperationException",
                    f"sluice does not serve the {words.title} operation {name!r}",
                )
            body = await request.body()
            try:
                params = json.loads(body) if body else {}
            except ValueError as exc:
                raise ServiceError("SerializationException", f"not JSON: {exc}") from None
            model = await self.model.get()
            try:
                members = model.decode_input(name, params)
            except ValidationException as exc:
                raise ServiceError(words.invalid, exc.message) from None
            return _answer(200, await asyncio.to_thread(self.run, operation, members))
        except ServiceError as exc:
            return _answer(exc.status, {"__type": exc.kind, words.message_key: exc.message})
        except Exception:  # noqa: BLE001 - no traceback ever reaches a client
            log.exception("%s %s failed", words.title, name)
            kind, message = words.internal
            return _answer(500, {"__type": kind, words.message_key: message})


def _answer(status: int, body: dict[str, Any]) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":"), default=epoch_seconds),
        status_code=status,
        media_type=JSON_1_1,
        headers={"x-amzn-ErrorType": body["__type"]} if status >= 400 else None,
    )
