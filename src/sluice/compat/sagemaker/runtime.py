"""SageMaker runtime: `POST /endpoints/{name}/invocations` as a raw ASGI handler.

Headers become an InvokeRequest, `Gateway.invoke` answers it, and the result or error is
shaped the way boto3's `sagemaker-runtime` client expects: rest-json errors with
`x-amzn-ErrorType`, and only the codes the runtime's service model defines, so boto3
raises the same exception classes as against AWS (ValidationError 400, ModelError 424,
ServiceUnavailable 503, InternalFailure 500).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from sluice.compat.sagemaker.arns import Arns
from sluice.control.async_inference import (
    DEFAULT_TIMEOUT_S,
    DEFAULT_TTL_S,
    AsyncInference,
    AsyncRequest,
)
from sluice.errors import (
    ModelError,
    ModelNotReady,
    NotFound,
    PayloadTooLarge,
    SluiceError,
    ValidationError,
    WorkerUnavailable,
)
from sluice.gateway.invoke import Gateway
from sluice.types import JSON, InvokeRequest

log = logging.getLogger(__name__)

PREFIX = "/endpoints/"
SUFFIX = "/invocations"
ASYNC_SUFFIX = "/async-invocations"
Scope = dict[str, Any]

TARGET_VARIANT = b"x-amzn-sagemaker-target-variant"
INFERENCE_ID = b"x-amzn-sagemaker-inference-id"
CUSTOM_ATTRIBUTES = b"x-amzn-sagemaker-custom-attributes"
ENDPOINT_CONFIG = b"x-sluice-endpoint-config"
"""Names the endpoint config whose fleet answered: during an update, blue's or green's."""
TARGET_MODEL = b"x-amzn-sagemaker-target-model"
TARGET_CONTAINER = b"x-amzn-sagemaker-target-container-hostname"
NOT_SERVED = {
    b"x-amzn-sagemaker-inference-component": (
        "InferenceComponentName: inference components are not served yet"
    ),
    b"x-amzn-sagemaker-session-id": "SessionId: stateful sessions are not served",
    b"x-amzn-sagemaker-enable-explanations": "EnableExplanations: no endpoint has an explainer",
}
"""Runtime headers for features sluice does not have: refused by name, never ignored."""


def endpoint_of(path: str) -> str | None:
    """The endpoint name if `path` is an invocations path (real-time or async), else None."""
    if path.startswith(PREFIX):
        if path.endswith(SUFFIX):
            name = path[len(PREFIX) : -len(SUFFIX)]
        elif path.endswith(ASYNC_SUFFIX):
            name = path[len(PREFIX) : -len(ASYNC_SUFFIX)]
        else:
            return None
        if name and "/" not in name:
            return name
    return None


class RuntimeHandler:
    def __init__(
        self,
        gateway: Gateway,
        max_payload_bytes: int,
        arns: Arns,
        asynchronous: AsyncInference | None = None,
    ) -> None:
        self.gateway = gateway
        self.max_payload_bytes = max_payload_bytes
        self.arns = arns
        self.asynchronous = asynchronous

    async def __call__(self, scope: Scope, receive: Any, send: Any, endpoint: str) -> None:
        try:
            if scope["method"] != "POST":
                raise ValidationError("invocations take POST", field="method")
            if scope["path"].endswith(ASYNC_SUFFIX):
                await self._invoke_async(scope, receive, send, endpoint)
                return
            request = self._parse_headers(scope, endpoint)
            request.body = await self._read_body(scope, receive)
            result = await self.gateway.invoke(request)
        except SluiceError as exc:
            await self._send_error(send, exc, endpoint)
            return
        except Exception:  # noqa: BLE001 - no traceback ever reaches a client
            log.exception("invocation of %s failed", endpoint)
            await self._send_error(
                send, SluiceError("internal failure; see the server log"), endpoint
            )
            return
        headers = [
            (b"content-type", result.content_type.encode()),
            (b"content-length", str(len(result.body)).encode()),
            (b"x-amzn-invoked-production-variant", result.variant.encode()),
            (ENDPOINT_CONFIG, result.endpoint_config.encode()),
        ]
        if result.custom_attributes:
            headers.append((CUSTOM_ATTRIBUTES, result.custom_attributes.encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": result.body})

    async def _invoke_async(self, scope: Scope, receive: Any, send: Any, endpoint: str) -> None:
        """InvokeEndpointAsync: queue the request, answer 202 with where the answer will be."""
        if self.asynchronous is None:
            raise ValidationError("asynchronous inference is not served", field="EndpointName")
        if await self._read_body(scope, receive):
            raise ValidationError(
                "InvokeEndpointAsync takes no body: the input is at InputLocation",
                field="Body",
            )
        headers = {
            name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]
        }
        input_location = headers.get("x-amzn-sagemaker-inputlocation")
        if not input_location:
            raise ValidationError(
                "X-Amzn-SageMaker-InputLocation is required", field="X-Amzn-SageMaker-InputLocation"
            )
        inference_id = headers.get("x-amzn-sagemaker-inference-id")
        accepted = await self.asynchronous.submit(
            AsyncRequest(
                endpoint,
                input_location,
                headers.get("x-amzn-sagemaker-content-type") or "application/octet-stream",
                headers.get("x-amzn-sagemaker-accept") or "*/*",
                headers.get("x-amzn-sagemaker-custom-attributes"),
                _inference_id(inference_id) if inference_id is not None else None,
                _seconds(headers, "x-amzn-sagemaker-requestttlseconds", DEFAULT_TTL_S),
                _seconds(headers, "x-amzn-sagemaker-invocationtimeoutseconds", DEFAULT_TIMEOUT_S),
                _seconds(headers, "x-sluice-priority", 0),
            ),
        )
        payload = json.dumps({"InferenceId": accepted.inference_id}).encode()
        out = [
            (b"content-type", JSON.encode()),
            (b"content-length", str(len(payload)).encode()),
            (b"x-amzn-sagemaker-outputlocation", accepted.output_location.encode()),
        ]
        if accepted.failure_location:
            out.append((b"x-amzn-sagemaker-failurelocation", accepted.failure_location.encode()))
        await send({"type": "http.response.start", "status": 202, "headers": out})
        await send({"type": "http.response.body", "body": payload})

    def _parse_headers(self, scope: Scope, endpoint: str) -> InvokeRequest:
        request = InvokeRequest(endpoint=endpoint, body=b"")
        extra: dict[str, str] = {}
        for raw_name, raw_value in scope["headers"]:
            if raw_name == b"content-type":
                request.content_type = raw_value.decode("latin-1")
            elif raw_name == b"accept":
                request.accept = raw_value.decode("latin-1")
            elif raw_name == b"content-length":
                if int(raw_value) > self.max_payload_bytes:
                    raise self._too_large()
            elif raw_name == TARGET_VARIANT:
                request.target_variant = raw_value.decode("latin-1")
            elif raw_name == TARGET_MODEL:
                request.target_model = raw_value.decode("latin-1")
            elif raw_name == TARGET_CONTAINER:
                request.target_container = raw_value.decode("latin-1")
            elif raw_name == INFERENCE_ID:
                request.inference_id = _inference_id(raw_value.decode("latin-1"))
            elif raw_name == CUSTOM_ATTRIBUTES:
                request.custom_attributes = raw_value.decode("latin-1")
            elif raw_name in NOT_SERVED:
                raise ValidationError(NOT_SERVED[raw_name], field=raw_name.decode())
            else:
                extra[raw_name.decode("latin-1")] = raw_value.decode("latin-1")
        request.headers = extra
        return request

    async def _read_body(self, scope: Scope, receive: Any) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > self.max_payload_bytes:
                    raise self._too_large()
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _send_error(self, send: Any, exc: SluiceError, endpoint: str) -> None:
        if exc.status >= 500 and not isinstance(exc, ModelError):
            log.warning("invocation failed: %s", exc.message)
        code, status, body = self._error(exc, endpoint)
        payload = json.dumps(body).encode()
        headers = [
            (b"content-type", JSON.encode()),
            (b"content-length", str(len(payload)).encode()),
            (b"x-amzn-errortype", code.encode()),
        ]
        if exc.retry_after_s is not None:
            headers.append((b"retry-after", str(exc.retry_after_s).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    def _error(self, exc: SluiceError, endpoint: str) -> tuple[str, int, dict[str, Any]]:
        """The runtime model's code, status and body for an error."""
        if isinstance(exc, ModelError):
            log_stream = (
                f"arn:aws:logs:{self.arns.region}:{self.arns.account}:log-group:"
                f"/aws/sagemaker/Endpoints/{endpoint}"
            )
            message = (
                f"Received server error ({exc.original_status}) from primary with message "
                f'"{exc.message}". See the sluice server log for details.'
            )
            return "ModelError", 424, {
                "ErrorCode": "ModelError",
                "Message": message,
                "OriginalStatusCode": exc.original_status,
                "OriginalMessage": exc.message,
                "LogStreamArn": log_stream,
            }  # fmt: skip
        if isinstance(exc, NotFound):
            code, status = "ValidationError", 400
            message = f"Endpoint {endpoint} of account {self.arns.account} not found."
        elif isinstance(exc, ValidationError):
            # 413 and 415 stay as they are for HTTP clients; boto3 goes by the code.
            code, status, message = "ValidationError", exc.status, exc.message
        elif isinstance(exc, WorkerUnavailable):
            code, status, message = "ServiceUnavailable", 503, exc.message
        elif isinstance(exc, ModelNotReady):
            code, status, message = exc.code, exc.status, exc.message
        else:
            code, status, message = "InternalFailure", 500, exc.message
        body: dict[str, Any] = {"ErrorCode": code, "Message": message}
        if exc.field:
            body["Field"] = exc.field
        return code, status, body

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"request body is over {self.max_payload_bytes} bytes (setting max_payload_bytes)",
            field="Body",
        )


def _seconds(headers: dict[str, str], name: str, default: int) -> int:
    raw = headers.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValidationError(
            f"{name} must be a whole number, not {raw[:40]!r}", field=name
        ) from None


def _inference_id(value: str) -> str:
    if not 1 <= len(value) <= 64 or not value.isprintable():
        raise ValidationError(
            "X-Amzn-SageMaker-Inference-Id must be 1 to 64 printable characters",
            field="X-Amzn-SageMaker-Inference-Id",
        )
    return value
