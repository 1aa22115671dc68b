"""SageMaker's control plane: `POST /` with `X-Amz-Target: SageMaker.<Operation>`.

The AWS JSON 1.1 protocol, top to bottom (the guard has checked the caller already):
find the operation, check the body against the service model, call the operation (once
per idempotency token: see `idempotency`), and answer with its members (timestamps as
epoch seconds) or with an AWS error (`{"__type", "message"}`; HTTP 400 for what the
caller can fix, 500 for our faults).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from datetime import datetime
from enum import Enum
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from sluice.compat.sagemaker.arns import Arns
from sluice.compat.sagemaker.idempotency import Idempotency
from sluice.compat.sagemaker.operations import Handler, Services, caller, load
from sluice.compat.sagemaker.shapes import LazyServiceModel, ValidationException
from sluice.compat.sagemaker.signing import access_key_of
from sluice.entities import ResourceKind
from sluice.errors import (
    AlreadyExists,
    InvalidState,
    NotFound,
    SluiceError,
    ValidationError,
    WorkerUnavailable,
)

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/x-amz-json-1.1"
TARGET_PREFIX = "SageMaker."


class ControlPlane:
    """`handle` is the Starlette endpoint for `POST /`."""

    def __init__(self, services: Services, idempotency: Idempotency) -> None:
        self.services = services
        self.idempotency = idempotency
        self.handlers: dict[str, Handler] = load()
        self.model = LazyServiceModel("sagemaker", self.handlers)

    async def handle(self, request: Request) -> Response:
        request_id = str(uuid.uuid4())
        name = ""
        try:
            body = await request.body()
            name = _operation(request.headers.get("x-amz-target", ""))
            handler = self.handlers.get(name)
            if handler is None:
                raise UnknownOperation(f"sluice does not serve the operation {name!r}")
            model = await self.model.get()
            members = model.decode_input(name, _json(body))
            caller.set(access_key_of(request.headers))
            token = model.idempotency_token(name)
            if token is not None and members.get(token):
                result = await self.idempotency.once(
                    name, token, members, lambda: self._run(handler, members)
                )
            else:
                result = await self._run(handler, members)
        except SluiceError as exc:
            loaded = self.model.loaded
            modelled = loaded.errors(name) if loaded and name in loaded.operations else set()
            code = _aws_code(exc, modelled)
            message = _aws_message(exc, self.services.arns)
            return _error(request_id, code, message, _STATUS.get(code, 400))
        except Exception:  # noqa: BLE001 - no traceback ever reaches a client
            log.exception("SageMaker operation %s failed", name or "?")
            return _error(
                request_id, "InternalFailure", "internal failure; see the server log", 500
            )
        return Response(
            json.dumps(result, separators=(",", ":")),
            headers={"x-amzn-RequestId": request_id},
            media_type=CONTENT_TYPE,
        )

    async def _run(self, handler: Handler, members: dict[str, Any]) -> dict[str, Any]:
        """The operation's answer, as it goes on the wire."""
        answer: dict[str, Any] = to_wire(await handler(self.services, members))
        return answer


_STATUS = {
    "InternalFailure": 500,
    "ServiceUnavailable": 503,
}


class UnknownOperation(SluiceError):
    code = "UnknownOperationException"
    status = 400


class SerializationException(SluiceError):
    code = "SerializationException"
    status = 400


def _operation(target: str) -> str:
    if not target.startswith(TARGET_PREFIX):
        raise UnknownOperation(
            f"X-Amz-Target must be SageMaker.<Operation>, not {target!r}"
            if target
            else "the X-Amz-Target header (SageMaker.<Operation>) is missing"
        )
    return target[len(TARGET_PREFIX) :]


def _json(body: bytes) -> Any:
    if not body.strip():
        return {}
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
        raise SerializationException(f"the request body is not valid JSON: {exc}") from None


def _aws_code(exc: SluiceError, modelled: set[str]) -> str:
    """The AWS error code for a sluice error, as SageMaker answers that operation.

    Where an operation models no ResourceNotFound, SageMaker reports a missing resource
    (and a name already taken) as a ValidationException; we do the same. Errors raised
    here (ValidationException, UnknownOperationException) carry
    their AWS code already."""
    if isinstance(exc, NotFound):
        return "ResourceNotFound" if "ResourceNotFound" in modelled else "ValidationException"
    if isinstance(exc, AlreadyExists):
        return "ResourceInUse" if "ResourceInUse" in modelled else "ValidationException"
    if isinstance(exc, InvalidState):
        for code in ("ConflictException", "ResourceInUse"):
            if code in modelled:
                return code
        return "ValidationException"
    if isinstance(exc, ValidationError) and not isinstance(exc, ValidationException):
        return "ValidationException"
    if isinstance(exc, WorkerUnavailable):
        return "ServiceUnavailable"
    return exc.code if exc.status < 500 else "InternalFailure"


_RESOURCES = {
    "model": (ResourceKind.MODEL, "model"),
    "endpoint config": (ResourceKind.ENDPOINT_CONFIG, "endpoint configuration"),
    "endpoint": (ResourceKind.ENDPOINT, "endpoint"),
}


def _aws_message(exc: SluiceError, arns: Arns) -> str:
    """SageMaker's own words for a missing resource or a name taken, else ours."""
    resource = exc.resource if isinstance(exc, NotFound | AlreadyExists) else None
    if resource is None or resource[0] not in _RESOURCES:
        return exc.message
    kind, label = _RESOURCES[resource[0]]
    arn = arns.of(kind, resource[1])
    if isinstance(exc, NotFound):
        return f'Could not find {label} "{arn}".'
    return f'Cannot create already existing {label} "{arn}".'


def _error(request_id: str, code: str, message: str, status: int) -> Response:
    return Response(
        json.dumps({"__type": code, "message": message}),
        status_code=status,
        headers={"x-amzn-RequestId": request_id, "x-amzn-ErrorType": code},
        media_type=CONTENT_TYPE,
    )


def to_wire(value: Any) -> Any:
    """Members as JSON: no null members, timestamps as epoch seconds, enums as values."""
    if isinstance(value, Mapping):
        return {k: to_wire(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [to_wire(v) for v in value]
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, Enum):
        return value.value
    return value
