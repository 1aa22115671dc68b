"""CloudWatch on the server's port, in two of the protocols botocore speaks to it: Smithy
RPC v2 CBOR, botocore's default (`POST /service/GraniteServiceVersion20100801/operation/<Op>`,
CBOR both ways), and AWS JSON 1.0 (`POST /` with `X-Amz-Target:
GraniteServiceVersion20100801.<Op>`), and the AWS query protocol of older botocore
(`POST /` with a form body; `query.py`).

Top to bottom: decode the body, check it against botocore's model of the operation, run
the operation off the event loop, answer in the request's protocol; errors carry the
shape name in `__type` and CloudWatch's query code in `x-amzn-query-error`, as botocore
reads them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.parse
import uuid
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import cbor2
from starlette.requests import Request
from starlette.responses import Response

from sluice.compat.cloudwatch import query
from sluice.compat.cloudwatch.alarms import CloudWatchAlarms
from sluice.compat.cloudwatch.metrics import (
    CloudWatchError,
    CloudWatchMetrics,
    InvalidParameterValue,
    MissingParameter,
)
from sluice.compat.sagemaker.shapes import LazyServiceModel, ValidationException

log = logging.getLogger(__name__)

TARGET = "GraniteServiceVersion20100801"
CBOR = "application/cbor"
JSON_1_0 = "application/x-amz-json-1.0"
MAX_UNZIPPED = 16 * 1024 * 1024


Operation = Callable[[dict[str, Any]], dict[str, Any]]


class CloudWatchApi:
    def __init__(self, metrics: CloudWatchMetrics, alarms: CloudWatchAlarms) -> None:
        self.operations: dict[str, Operation] = {
            "PutMetricData": metrics.put_metric_data,
            "GetMetricStatistics": metrics.get_metric_statistics,
            "ListMetrics": metrics.list_metrics,
            "GetMetricData": metrics.get_metric_data,
            "PutMetricAlarm": alarms.put_metric_alarm,
            "DescribeAlarms": alarms.describe_alarms,
            "DescribeAlarmsForMetric": alarms.describe_alarms_for_metric,
            "DescribeAlarmHistory": alarms.describe_alarm_history,
            "DeleteAlarms": alarms.delete_alarms,
            "SetAlarmState": alarms.set_alarm_state,
            "EnableAlarmActions": alarms.enable_alarm_actions,
            "DisableAlarmActions": alarms.disable_alarm_actions,
        }
        self.model = LazyServiceModel("cloudwatch", self.operations)

    async def handle_cbor(self, request: Request) -> Response:
        """Smithy RPC v2 CBOR."""
        name = request.path_params["operation"]
        try:
            body = await _body(request)
            params = cbor2.loads(body) if body else {}
        except CloudWatchError as exc:
            return _answer(_error(exc), CBOR)
        except (cbor2.CBORDecodeError, ValueError, TypeError) as exc:
            return _answer(_error(InvalidParameterValue(f"the body is not CBOR: {exc}")), CBOR)
        return _answer(await self._call(name, params), CBOR)

    async def handle_json(self, request: Request) -> Response:
        """AWS JSON 1.0 (`X-Amz-Target: GraniteServiceVersion20100801.<Op>`)."""
        name = request.headers.get("x-amz-target", "").removeprefix(f"{TARGET}.")
        try:
            body = await _body(request)
            params = json.loads(body) if body else {}
        except CloudWatchError as exc:
            return _answer(_error(exc), JSON_1_0)
        except ValueError as exc:
            return _answer(_error(InvalidParameterValue(f"the body is not JSON: {exc}")), JSON_1_0)
        return _answer(await self._call(name, params), JSON_1_0)

    async def handle_query(self, request: Request) -> Response:
        """The AWS query protocol (a form body with `Action` and `Version`)."""
        request_id = str(uuid.uuid4())
        try:
            body = await _body(request)
            form = dict(urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        except CloudWatchError as exc:
            return _xml_error(exc.query_code, exc.message, exc.status, request_id)
        except UnicodeDecodeError:
            return _xml_error("InvalidParameterValue", "the body is not UTF-8", 400, request_id)
        name = form.get("Action", "")
        if name in self.operations:
            try:
                params: Any = query.read(await self.model.get(), name, form)
            except (KeyError, ValueError) as exc:
                return _xml_error("InvalidParameterValue", str(exc), 400, request_id)
        else:
            params = {}
        status, members, code = await self._call(name, params)
        if status != 200:
            code = code or "InternalServiceError"
            return _xml_error(code, members["message"], status, request_id)
        text = query.write(await self.model.get(), name, members, request_id)
        return Response(text, media_type="text/xml", headers={"x-amzn-requestid": request_id})

    async def _call(self, name: str, params: Any) -> tuple[int, dict[str, Any], str | None]:
        """(status, members, query error code or None)."""
        operation = self.operations.get(name)
        try:
            if operation is None:
                raise InvalidParameterValue(
                    f"sluice does not serve the CloudWatch operation {name!r}"
                )
            model = await self.model.get()
            try:
                members = model.decode_input(name, params)
            except ValidationException as exc:
                if "must not be null" in exc.message:
                    raise MissingParameter(exc.message) from None
                raise InvalidParameterValue(exc.message) from None
            return 200, await asyncio.to_thread(operation, members), None
        except CloudWatchError as exc:
            return _error(exc)
        except Exception:  # noqa: BLE001 - no traceback ever reaches a client
            log.exception("CloudWatch %s failed", name)
            return (
                500,
                {"__type": "InternalServiceFault", "message": "internal error"},
                "InternalServiceError",
            )


def is_form(content_type: str) -> bool:
    """The query protocol's body."""
    return content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded"


async def _body(request: Request) -> bytes:
    """The request's body, unzipped when botocore compressed it (it gzips PutMetricData
    bodies over 10 KB), up to MAX_UNZIPPED bytes."""
    body = await request.body()
    encoding = request.headers.get("content-encoding", "").lower()
    if encoding in ("", "identity"):
        return body
    if encoding != "gzip":
        raise InvalidParameterValue(f"Content-Encoding {encoding!r} is not supported (gzip is)")
    unzip = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = unzip.decompress(body, MAX_UNZIPPED + 1)
    except zlib.error as exc:
        raise InvalidParameterValue(f"the body is not gzip: {exc}") from None
    if len(out) > MAX_UNZIPPED or unzip.unconsumed_tail:
        raise InvalidParameterValue(f"the body unzips to more than {MAX_UNZIPPED:,} bytes")
    return out


def _xml_error(code: str, message: str, status: int, request_id: str) -> Response:
    return Response(
        query.error(code, message, status < 500, request_id),
        status_code=status,
        media_type="text/xml",
        headers={"x-amzn-requestid": request_id},
    )


def _error(exc: CloudWatchError) -> tuple[int, dict[str, Any], str]:
    return (
        exc.status,
        {"__type": f"com.amazonaws.cloudwatch#{exc.code}", "message": exc.message},
        exc.query_code,
    )


def _answer(result: tuple[int, dict[str, Any], str | None], content_type: str) -> Response:
    status, members, query_code = result
    headers = {"x-amzn-requestid": str(uuid.uuid4())}
    if query_code is not None:
        headers["x-amzn-query-error"] = f"{query_code};{'Sender' if status < 500 else 'Receiver'}"
    if content_type == CBOR:
        headers["smithy-protocol"] = "rpc-v2-cbor"
        body = cbor2.dumps(members, datetime_as_timestamp=True, timezone=UTC)
    else:
        body = json.dumps(members, default=epoch_seconds).encode()
    return Response(body, status_code=status, media_type=content_type, headers=headers)


def epoch_seconds(value: Any) -> float:
    """json.dumps' default for AWS JSON protocols: datetimes as seconds since the epoch."""
    if isinstance(value, datetime):
        return value.timestamp()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
