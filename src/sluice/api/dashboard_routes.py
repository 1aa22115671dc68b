"""The dashboard's read models under /api/v1/dashboard: the overview of every endpoint,
one endpoint's series per variant, and a stream of live figures (server-sent events).

Everything else the pages show (deployments, experiments, the registry, monitoring, jobs)
comes from the native API's own routes; these are the views no single route gives.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from sluice.control.alarms import AlarmService, stored_datapoint
from sluice.control.endpoints import EndpointService
from sluice.control.metric_history import (
    INSTANCE_NAMESPACE,
    NAMESPACE,
    SLUICE_NAMESPACE,
    MetricHistory,
    Recent,
)
from sluice.control.transforms import TransformService
from sluice.entities import AlarmState, TransformStatus
from sluice.gateway.fleet_stats import Window, merge, percentile
from sluice.store.metric_repo import MetricRepository, series
from sluice.waiting import wait_at_most

LIVE_EVERY_S = 2.0
"""How often the event stream sends the live figures."""
SERIES: tuple[tuple[str, str, str, str], ...] = (
    # (key in the answer, namespace, metric, statistic)
    ("invocations", NAMESPACE, "Invocations", "Sum"),
    ("errors_4xx", NAMESPACE, "Invocation4XXErrors", "Sum"),
    ("errors_5xx", NAMESPACE, "Invocation5XXErrors", "Sum"),
    ("p50_ms", NAMESPACE, "ModelLatency", "p50"),
    ("p99_ms", NAMESPACE, "ModelLatency", "p99"),
    ("cpu_percent", INSTANCE_NAMESPACE, "CPUUtilization", "Average"),
    ("memory_percent", INSTANCE_NAMESPACE, "MemoryUtilization", "Average"),
    ("instances", SLUICE_NAMESPACE, "InstanceCount", "Maximum"),
)


def dashboard_router(
    service: EndpointService,
    alarms: AlarmService,
    history: MetricHistory,
    metric_repo: MetricRepository,
    transforms: TransformService,
    errors: Mapping[int | str, dict[str, Any]],
    stopping: asyncio.Event,
) -> APIRouter:
    """`stopping` is set as the server begins to stop: event streams end then, rather than
    hold the stop up for its whole grace period."""
    router = APIRouter(prefix="/dashboard", tags=["dashboard"], responses=dict(errors))

    @router.get("/overview")
    def overview() -> dict[str, Any]:
        """Every endpoint with its status, variants, last 10 s (requests per second, error
        rate, p99) and the last half hour of p99 and requests; alarms in ALARM; transform
        jobs running or failed; each async endpoint's backlog."""
        endpoints = []
        for endpoint in service.list_endpoints():
            recent = {
                variant: list(samples)
                for (name, variant), samples in history.recent.items()
                if name == endpoint.name
            }
            endpoints.append(
                {
                    "name": endpoint.name,
                    "status": endpoint.status.value,
                    "config": endpoint.config_name,
                    "failure_reason": endpoint.failure_reason,
                    "variants": [
                        {
                            "name": v.name,
                            "kind": v.kind.value,
                            "weight": v.current_weight,
                            "instances": v.current_instance_count,
                        }
                        for v in endpoint.variants
                    ],
                    **_summary(recent),
                }
            )
        in_alarm = [
            {"name": a.name, "endpoint": a.endpoint, "reason": a.state_reason}
            for a in alarms.find()
            if a.state is AlarmState.ALARM
        ]
        jobs = [
            {"name": j.name, "status": j.status.value, "failure_reason": j.failure_reason}
            for j in transforms.list()
            if j.status in (TransformStatus.IN_PROGRESS, TransformStatus.FAILED)
        ]
        backlogs = [
            {"endpoint": name, "backlog": backlog, "oldest_age_s": age, "instances": instances}
            for name, (backlog, age, instances) in sorted(history.backlogs.items())
        ]
        return {
            "endpoints": endpoints,
            "alarms_in_alarm": in_alarm,
            "jobs": jobs,
            "async_backlogs": backlogs,
        }

    @router.get("/endpoints/{name}/series")
    def endpoint_series(name: str, minutes: int = Query(30, ge=1, le=24 * 60)) -> dict[str, Any]:
        """Each production variant's figures per period over the last `minutes`, on one
        time axis (10 s periods up to 3 hours, then 1 minute): requests, 4xx, 5xx, p50 and
        p99 model latency (ms), CPU and memory (percent per instance), instances."""
        endpoint = service.get_endpoint(name)
        period = 10 if minutes <= 180 else 60
        end = datetime.fromtimestamp(time.time() // period * period + period, UTC)
        start = end - timedelta(minutes=minutes)
        times = [start.timestamp() + i * period for i in range(minutes * 60 // period)]
        variants: dict[str, dict[str, list[float | None]]] = {}
        for variant in endpoint.variants:
            dimensions = {"EndpointName": name, "VariantName": variant.name}
            found: dict[str, list[float | None]] = {}
            for key, namespace, metric, statistic in SERIES:
                percentiles = [float(statistic[1:])] if statistic.startswith("p") else []
                points = metric_repo.datapoints(
                    series(namespace, metric, dimensions), start, end, period, percentiles
                )
                by_time = {p.at.timestamp(): stored_datapoint(p, statistic) for p in points}
                scale = 1e-3 if metric == "ModelLatency" else 1.0  # microseconds to ms
                found[key] = [None if (v := by_time.get(t)) is None else v * scale for t in times]
            variants[variant.name] = found
        return {"period_s": period, "times": times, "variants": variants}

    @router.get("/events")
    async def events(request: Request) -> StreamingResponse:
        """Server-sent events: every 2 s, `live` with each endpoint's requests per second,
        error rate and p99 over those 2 s, per variant (from the gateway's running totals)."""

        async def stream() -> AsyncIterator[bytes]:
            last: dict[tuple[str, str, str], Window] = {}
            yield b"retry: 3000\n\n"
            while not stopping.is_set() and not await request.is_disconnected():
                figures, last = live_figures(service, last)
                yield f"event: live\ndata: {json.dumps(figures)}\n\n".encode()
                await wait_at_most(stopping, LIVE_EVERY_S)

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    return router


def _summary(recent: Mapping[str, list[Recent]]) -> dict[str, Any]:
    """The endpoint's last period and its half-hour sparkline, variants together."""
    by_time: dict[float, list[Recent]] = {}
    for samples in recent.values():
        for sample in samples:
            by_time.setdefault(sample.at, []).append(sample)
    spark = [
        [
            at,
            sum(s.invocations for s in group) / 10,
            max((s.p99_ms for s in group if s.p99_ms is not None), default=None),
        ]
        for at, group in sorted(by_time.items())
    ]
    latest = by_time[max(by_time)] if by_time else []
    answered = sum(s.invocations for s in latest)
    failed = sum(s.errors_4xx + s.errors_5xx for s in latest)
    return {
        "rps": answered / 10,
        "error_rate": failed / answered if answered else None,
        "p99_ms": spark[-1][2] if spark else None,
        "spark": spark,
    }


def live_figures(
    service: EndpointService, last: dict[tuple[str, str, str], Window]
) -> tuple[dict[str, Any], dict[tuple[str, str, str], Window]]:
    now: dict[tuple[str, str, str], Window] = {}
    figures: dict[str, Any] = {}
    for endpoint in list(service.live):
        by_variant: dict[str, list[Window]] = {}
        for (config, variant), total in service.fleet_stats(endpoint, shadows=True).items():
            key = (endpoint, config, variant)
            now[key] = total
            if key in last:
                by_variant.setdefault(variant, []).append(total - last[key])
        variants = {}
        for variant, windows in by_variant.items():
            window = merge(windows)
            p99 = percentile(window.model_bins, 99)
            variants[variant] = {
                "rps": window.invocations / LIVE_EVERY_S,
                "errors": window.errors,
                "p99_ms": None if p99 is None else p99 * 1000,
            }
        figures[endpoint] = variants
    return {"at": time.time(), "endpoints": figures}, now
