"""The Open Inference Protocol (KServe v2, Triton, MLServer) over HTTP, on the endpoints.

A "model" is an endpoint and its "versions" are the endpoint's production variants:
`POST /v2/models/{endpoint}/infer` is routed like any request (weights, capture, shadows),
`/v2/models/{endpoint}/versions/{variant}/infer` targets a variant. The input tensor goes
to the worker as an .npy array and each output the model gives (predictions,
probabilities, ...) comes back as a tensor. Triton's binary tensor extension is spoken
too, since its clients use it by default: a JSON header of `Inference-Header-Content-Length`
bytes, then the raw tensors.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Callable
from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sluice import __version__
from sluice.control.endpoints import EndpointService
from sluice.entities import EndpointStatus, VariantKind
from sluice.errors import NotFound, SluiceError, ValidationError
from sluice.gateway.invoke import Gateway
from sluice.types import JSON, NPY, InvokeRequest

HEADER_LENGTH = "inference-header-content-length"
DATATYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(bool), "UINT8": np.dtype(np.uint8), "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32), "UINT64": np.dtype(np.uint64), "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16), "INT32": np.dtype(np.int32), "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16), "FP32": np.dtype(np.float32), "FP64": np.dtype(np.float64),
}  # fmt: skip
NAMES = {dtype: name for name, dtype in DATATYPES.items()}


def routes(gateway: Gateway, endpoints: EndpointService) -> list[Route]:
    """The /v2 routes over the gateway (inference) and the endpoint service (metadata)."""

    async def live(_: Request) -> Response:
        return JSONResponse({"live": True})

    async def ready(_: Request) -> Response:
        ready = gateway.router.ready
        return JSONResponse({"ready": ready}, status_code=200 if ready else 503)

    async def server_metadata(_: Request) -> Response:
        return JSONResponse({"name": "sluice", "version": __version__, "extensions": []})

    async def model_metadata(request: Request) -> Response:
        endpoint = endpoints.get_endpoint(request.path_params["name"])
        variants = [v for v in endpoint.variants if v.kind is VariantKind.PRODUCTION]
        version = request.path_params.get("version")
        if version is not None and version not in {v.name for v in variants}:
            raise NotFound(f"endpoint {endpoint.name!r} has no variant {version!r}")
        return JSONResponse(
            {
                "name": endpoint.name,
                "versions": [v.name for v in variants],
                "platform": ",".join(
                    sorted({endpoints.get_model(v.model_name).runtime for v in variants})
                ),
                "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [-1, -1]}],
                "outputs": [{"name": "predictions", "datatype": "FP64", "shape": [-1]}],
            }
        )

    async def model_ready(request: Request) -> Response:
        endpoint = endpoints.get_endpoint(request.path_params["name"])
        if endpoint.status is not EndpointStatus.IN_SERVICE:
            return JSONResponse({"name": endpoint.name, "ready": False}, status_code=400)
        return JSONResponse({"name": endpoint.name, "ready": True})

    async def infer(request: Request) -> Response:
        body = await request.body()
        header, tensors = _split(body, request.headers.get(HEADER_LENGTH))
        array = _input(header, tensors)
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        result = await gateway.invoke(
            InvokeRequest(
                endpoint=request.path_params["name"],
                body=buffer.getvalue(),
                content_type=NPY,
                accept=JSON,
                target_variant=request.path_params.get("version"),
                inference_id=str(header["id"]) if header.get("id") else None,
            )
        )
        outputs = _outputs(json.loads(result.body), header)
        name = request.path_params["name"]
        return _answer(name, result.variant, header.get("id"), outputs, header)

    def guarded(handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
        async def run(request: Request) -> Response:
            try:
                response: Response = await handler(request)
                return response
            except SluiceError as exc:
                status = 404 if isinstance(exc, NotFound) else exc.status
                retry = exc.retry_after_s
                headers = {"Retry-After": str(retry)} if retry is not None else None
                return JSONResponse({"error": exc.message}, status_code=status, headers=headers)

        return run

    return [
        Route("/v2", guarded(server_metadata)),
        Route("/v2/health/live", guarded(live)),
        Route("/v2/health/ready", guarded(ready)),
        Route("/v2/models/{name}", guarded(model_metadata)),
        Route("/v2/models/{name}/versions/{version}", guarded(model_metadata)),
        Route("/v2/models/{name}/ready", guarded(model_ready)),
        Route("/v2/models/{name}/versions/{version}/ready", guarded(model_ready)),
        Route("/v2/models/{name}/infer", guarded(infer), methods=["POST"]),
        Route("/v2/models/{name}/versions/{version}/infer", guarded(infer), methods=["POST"]),
    ]


def _split(body: bytes, header_length: str | None) -> tuple[dict[str, Any], bytes]:
    """The JSON inference header and the binary tensor data after it (if any)."""
    size = len(body)
    if header_length is not None:
        if not header_length.isdigit() or int(header_length) > len(body):
            raise ValidationError(
                "Inference-Header-Content-Length must be a byte count within the body",
                field="Inference-Header-Content-Length",
            )
        size = int(header_length)
    try:
        header = json.loads(body[:size])
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep
        raise ValidationError(f"the inference request is not valid JSON: {exc}") from None
    if not isinstance(header, dict):
        raise ValidationError("the inference request must be a JSON object")
    return header, body[size:]


def _input(header: dict[str, Any], tensors: bytes) -> np.ndarray[Any, Any]:
    inputs = header.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise ValidationError("give exactly one input tensor (rows of features)", field="inputs")
    tensor = inputs[0]
    name = tensor.get("name", "input-0")
    dtype = DATATYPES.get(tensor.get("datatype", ""))
    if dtype is None:
        raise ValidationError(
            f"input {name!r}: datatype must be one of {', '.join(DATATYPES)}",
            field="inputs.datatype",
        )
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise ValidationError(f"input {name!r}: shape must be a list of sizes", field="shape")
    count = int(np.prod(shape)) if shape else 1
    size = (tensor.get("parameters") or {}).get("binary_data_size")
    if size is not None:
        if size != count * dtype.itemsize or size > len(tensors):
            raise ValidationError(
                f"input {name!r}: binary_data_size {size} does not fit shape {shape} of "
                f"{tensor['datatype']}",
                field="binary_data_size",
            )
        flat = np.frombuffer(tensors[:size], dtype=dtype.newbyteorder("<"))
    else:
        try:
            flat = np.asarray(tensor.get("data"), dtype=dtype).reshape(-1)
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"input {name!r}: {exc}", field="data") from None
        if flat.size != count:
            raise ValidationError(
                f"input {name!r}: {flat.size} values do not fill shape {shape}", field="data"
            )
    array = flat.reshape(shape)
    return array.reshape(1, -1) if array.ndim == 1 else array


def _outputs(answer: dict[str, Any], header: dict[str, Any]) -> dict[str, np.ndarray[Any, Any]]:
    outputs = {name: np.asarray(value) for name, value in answer.items()}
    wanted = [str(o.get("name")) for o in header.get("outputs") or () if isinstance(o, dict)]
    missing = [name for name in wanted if name not in outputs]
    if missing:
        raise ValidationError(
            f"the model has no output {missing[0]!r}; it gives {', '.join(outputs)}",
            field="outputs",
        )
    return {name: outputs[name] for name in wanted} if wanted else outputs


def _answer(
    endpoint: str,
    variant: str,
    request_id: Any,
    outputs: dict[str, np.ndarray[Any, Any]],
    header: dict[str, Any],
) -> Response:
    binary_all = bool((header.get("parameters") or {}).get("binary_data_output"))
    binary = {
        o["name"]
        for o in header.get("outputs") or ()
        if isinstance(o, dict) and (o.get("parameters") or {}).get("binary_data")
    }
    doc: dict[str, Any] = {"model_name": endpoint, "model_version": variant, "outputs": []}
    if request_id is not None:
        doc["id"] = request_id
    blobs: list[bytes] = []
    for name, value in outputs.items():
        datatype, raw = _tensor(value)
        tensor: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(value.shape)}
        if binary_all or name in binary:
            tensor["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            tensor["data"] = value.reshape(-1).tolist()
        doc["outputs"].append(tensor)
    text = json.dumps(doc, separators=(",", ":")).encode()
    if not blobs:
        return Response(text, media_type=JSON)
    return Response(
        text + b"".join(blobs),
        media_type="application/octet-stream",
        headers={"Inference-Header-Content-Length": str(len(text))},
    )


def _tensor(value: np.ndarray[Any, Any]) -> tuple[str, bytes]:
    """The tensor's datatype and its bytes in the binary extension's layout."""
    if value.dtype.kind in "USO":
        parts = [str(v).encode() for v in value.reshape(-1)]
        return "BYTES", b"".join(struct.pack("<I", len(p)) + p for p in parts)
    datatype = NAMES.get(value.dtype)
    if datatype is None:
        value = value.astype(np.float64)
        datatype = "FP64"
    return datatype, value.astype(value.dtype.newbyteorder("<")).tobytes()
