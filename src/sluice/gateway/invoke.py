"""The hot path: one inference request from route table to worker and back.

`Gateway.invoke` picks the variant, calls its worker, and, once the answer is ready,
records metrics, captures the pair and queues shadow copies; none of those can change
the production answer or its status.
"""

from __future__ import annotations

import random
import time
import uuid

from sluice.errors import ModelError, SluiceError, ValidationError
from sluice.gateway.capture import CaptureEvent, CaptureTarget, CaptureWriter
from sluice.gateway.fleet_stats import CLIENT_ERROR, MODEL_ERROR, OK, SERVER_ERROR
from sluice.gateway.instances import target_of
from sluice.gateway.routing import Router, RouteTable
from sluice.types import JSON, InvokeRequest, InvokeResult


class Gateway:
    def __init__(self, router: Router, capture: CaptureWriter) -> None:
        self.router = router
        self.capture = capture

    async def invoke(self, request: InvokeRequest) -> InvokeResult:
        started = time.perf_counter()
        table = self.router.get(request.endpoint)
        if table.asynchronous is not None:
            raise ValidationError(
                f"endpoint {request.endpoint!r} takes asynchronous invocations only "
                "(InvokeEndpointAsync); its config has an AsyncInferenceConfig",
                field="EndpointName",
            )
        sticky_key = request.headers.get(table.sticky_header) if table.sticky_header else None
        route = table.pick(request.target_variant, sticky_key)
        target = target_of(request, table.endpoint, route.backend)
        inference_id = request.inference_id or uuid.uuid4().hex
        capture = _sample_capture(table)
        model_started = time.perf_counter()
        error: SluiceError | None = None
        try:
            answer = await route.backend.invoke(
                request.body, request.content_type, request.accept, target
            )
            out_type, out_body, status = answer.content_type, answer.body, 200
        except SluiceError as exc:
            error = exc
            out_type, out_body, status = JSON, exc.message.encode(), exc.status
        finished = time.perf_counter()
        metrics = route.metrics
        metrics.invocations.inc()
        metrics.model_latency.observe(finished - model_started)
        if error is None:
            metrics.overhead_latency.observe(model_started - started)
            metrics.batch_size.observe(answer.batch_size)
            metrics.batch_queue.observe(answer.queued_s)
            route.stats.record(finished - model_started, model_started - started, OK)
        else:
            server_side = error.server_side
            (metrics.errors_5xx if server_side else metrics.errors_4xx).inc()
            outcome = SERVER_ERROR if server_side else CLIENT_ERROR
            if isinstance(error, ModelError):
                outcome = MODEL_ERROR
            route.stats.record(finished - model_started, None, outcome)
        if capture is not None:
            self.capture.add(
                CaptureEvent(
                    capture,
                    table.endpoint,
                    route.name,
                    inference_id,
                    time.time(),
                    request.content_type,
                    request.body,
                    out_type,
                    out_body,
                    (finished - model_started) * 1000,
                    status,
                    metrics,
                    request.target_model,
                )
            )
        if error is not None:
            raise error
        for shadow in table.shadows:
            if (shadow.source is None or shadow.source == route.name) and (
                shadow.sampling_percentage >= 100
                or random.random() * 100 < shadow.sampling_percentage
            ):
                shadow.sender.offer(request, inference_id, capture)
        return InvokeResult(route.name, out_body, out_type, inference_id, route.config)


def _sample_capture(table: RouteTable) -> CaptureTarget | None:
    capture = table.capture
    if capture is None:
        return None
    if capture.sampling_percentage >= 100 or random.random() * 100 < capture.sampling_percentage:
        return capture
    return None
