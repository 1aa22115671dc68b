"""The ASGI app on the server's one port.

Every HTTP request first passes the guard (host, body size, credentials, role). The
inference path (`/endpoints/{name}/invocations`) is dispatched first, straight to the
runtime handler; everything else (SageMaker's control plane, CloudWatch and Application
Auto Scaling on `POST /`, CloudWatch's CBOR protocol under /service, the Open Inference
Protocol under /v2, the native API, /metrics, /healthz) goes through Starlette.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from sluice.compat.autoscaling.api import TARGET as AUTOSCALING
from sluice.compat.autoscaling.api import AutoscalingApi
from sluice.compat.cloudwatch.api import TARGET as CLOUDWATCH
from sluice.compat.cloudwatch.api import CloudWatchApi, is_form
from sluice.compat.logs import TARGET as LOGS
from sluice.compat.logs import LogsApi
from sluice.compat.sagemaker.control import ControlPlane
from sluice.compat.sagemaker.runtime import RuntimeHandler, endpoint_of
from sluice.gateway.metrics import Metrics
from sluice.gateway.routing import Router
from sluice.security.guard import Guard

Lifespan = Callable[[Starlette], AbstractAsyncContextManager[None]]


class SluiceApp:
    def __init__(self, guard: Guard, runtime: RuntimeHandler, rest: Starlette) -> None:
        self.guard = guard
        self.runtime = runtime
        self.rest = rest

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            receive = await self.guard.admit(scope, receive, send)
            if receive is None:
                return
            endpoint = endpoint_of(scope["path"])
            if endpoint is not None:
                await self.runtime(scope, receive, send, endpoint)
                return
        await self.rest(scope, receive, send)


def build_app(
    guard: Guard,
    runtime: RuntimeHandler,
    control: ControlPlane,
    cloudwatch: CloudWatchApi,
    autoscaling: AutoscalingApi,
    logs: LogsApi,
    open_inference: list[Route],
    api: Any,
    dashboard: list[BaseRoute],
    router: Router,
    metrics: Metrics,
    lifespan: Callable[[Starlette], AsyncIterator[None]] | Lifespan,
) -> SluiceApp:
    async def healthz(_: Request) -> JSONResponse:
        """200 once every endpoint the server had before a restart is back; 503 before,
        naming those still starting (a load balancer keeps traffic away meanwhile)."""
        restoring = sorted(router.restoring)
        return JSONResponse(
            {
                "status": "ok" if not restoring else "starting",
                "ready": not restoring,
                "endpoints_in_service": len(router.tables),
                "endpoints_restoring": restoring,
            },
            status_code=200 if not restoring else 503,
        )

    async def prometheus(_: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def post_root(request: Request) -> Response:
        """SageMaker's control plane, CloudWatch (AWS JSON 1.0), Application Auto Scaling or
        CloudWatch Logs by X-Amz-Target, or CloudWatch's query protocol (a form body, no
        target)."""
        target = request.headers.get("x-amz-target", "")
        if target.startswith(f"{CLOUDWATCH}."):
            return await cloudwatch.handle_json(request)
        if target.startswith(f"{AUTOSCALING}."):
            return await autoscaling.handle(request)
        if target.startswith(f"{LOGS}."):
            return await logs.handle(request)
        if not target and is_form(request.headers.get("content-type", "")):
            return await cloudwatch.handle_query(request)
        return await control.handle(request)

    rest = Starlette(
        routes=[
            Route("/", post_root, methods=["POST"]),
            Route(
                f"/service/{CLOUDWATCH}/operation/{{operation}}",
                cloudwatch.handle_cbor,
                methods=["POST"],
            ),
            Route("/healthz", healthz),
            Route("/metrics", prometheus),
            *open_inference,
            Mount("/api/v1", app=api),
            *dashboard,
        ],
        lifespan=lifespan,  # type: ignore[arg-type]
    )
    return SluiceApp(guard, runtime, rest)
