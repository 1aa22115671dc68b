"""The baseline: a bare Starlette + uvicorn app that runs the model inside the server process.

Same runtime code as a sluice worker (decode, predict, encode), no gateway, no worker process:
the fastest a single Python process can serve, and what the gateway is measured against.

    python benchmarks/inprocess_app.py --model-dir DIR --runtime sklearn --port 9000
"""

from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sluice.runtimes.registry import runtime_class


def build(model_dir: Path, runtime_name: str) -> Starlette:
    runtime = runtime_class(runtime_name)(model_dir, {})
    runtime.load()

    async def invocations(request: Request) -> Response:
        body, content_type = runtime.invoke(
            await request.body(),
            request.headers.get("content-type", "application/json"),
            request.headers.get("accept", "application/json"),
        )
        return Response(body, media_type=content_type)

    async def healthz(_: Request) -> Response:
        return Response(b"ok")

    return Starlette(
        routes=[Route("/invocations", invocations, methods=["POST"]), Route("/healthz", healthz)]
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--runtime", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        build(args.model_dir, args.runtime),
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
