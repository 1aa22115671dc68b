"""Replay: a window of captured production requests sent through a candidate model as a
batch, its answers captured as if it had been a shadow, then compared by the same report.

The candidate runs in real worker processes (the runtimes and IPC a live variant uses), so
its latencies compare with the captured ones. Nothing touches a live endpoint: the input
is capture files, the output is capture files beside them (or anywhere).
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import msgspec

from sluice.backends.local import LocalBackend
from sluice.entities import Model
from sluice.errors import SluiceError
from sluice.gateway.capture import CaptureEvent, CaptureTarget, CaptureWriter
from sluice.gateway.metrics import Metrics
from sluice.reports.compare import Extras, ReportOptions, Source, shadow_report
from sluice.reports.records import CaptureRecord, Payload, capture_records
from sluice.runtimes import registry
from sluice.settings import Settings
from sluice.store.artifacts import ArtifactStore
from sluice.store.objects import ObjectStore

FLUSH_EVERY = 5000


@dataclass(frozen=True)
class ReplayResult:
    requests: int
    errors: int
    skipped: int
    """Captured records without an input payload (captured with output only)."""
    seconds: float
    folder: Path
    """Where the candidate's capture was written."""
    cpu_seconds: float
    memory_bytes: float


async def replay(
    source: Source,
    baseline: str,
    artifact: str,
    out_root: Path,
    candidate: str = "replay",
    runtime: str | None = None,
    instances: int = 1,
    concurrency: int = 4,
) -> ReplayResult:
    """Send `baseline`'s captured requests in the source window through `artifact`."""
    started = time.perf_counter()
    settings = Settings()
    with tempfile.TemporaryDirectory(prefix="sluice-replay-") as scratch:
        model_dir = ArtifactStore(Path(scratch), ObjectStore.from_settings(settings)).unpack(
            artifact
        )
        chosen = registry.choose(runtime, model_dir, {})
        model = Model(candidate, artifact, str(model_dir), chosen, None, {}, None)  # type: ignore[arg-type]
        backend = LocalBackend(settings)
        pool = await backend.start_variant(f"replay/{candidate}", model, instances, lambda: None)
        writer = CaptureWriter(buffer_records=FLUSH_EVERY)
        target = CaptureTarget(out_root, 100, True, True)
        metrics = Metrics().for_variant(source.endpoint, candidate)
        counts = {"requests": 0, "errors": 0, "skipped": 0}
        gate = asyncio.Semaphore(concurrency)

        async def send(record: CaptureRecord) -> None:
            async with gate:
                if not record.capture_data.endpoint_input:
                    counts["skipped"] += 1
                    return
                request = msgspec.json.decode(record.capture_data.endpoint_input, type=Payload)
                body = request.raw()
                answered = record.capture_data.endpoint_output
                accept = answered.observed_content_type if answered else "application/json"
                clock = time.perf_counter()
                try:
                    answer = await pool.invoke(body, request.observed_content_type, accept)
                    out_type, out_body, status = answer.content_type, answer.body, 200
                except SluiceError as exc:
                    out_type, out_body = "application/json", exc.message.encode()
                    status = exc.status
                    counts["errors"] += 1
                latency_ms = (time.perf_counter() - clock) * 1000
                counts["requests"] += 1
                writer.add(
                    CaptureEvent(
                        target,
                        source.endpoint,
                        candidate,
                        record.key,
                        record.time(),
                        request.observed_content_type,
                        body,
                        out_type,
                        out_body,
                        latency_ms,
                        status,
                        metrics,
                    )
                )

        try:
            for block in capture_records(source.variant_folder(baseline), source.start, source.end):
                await asyncio.gather(*(send(r) for r in block))
                if len(writer.buffer) >= FLUSH_EVERY:
                    await writer.flush()
            usage = pool.usage().values()
            cpu = round(sum(c for c, _ in usage), 3)
            memory = sum(rss for _, rss in usage)
        finally:
            await writer.flush()
            await pool.stop()
            await backend.close()
    return ReplayResult(
        counts["requests"],
        counts["errors"],
        counts["skipped"],
        round(time.perf_counter() - started, 3),
        out_root / source.endpoint / candidate,
        cpu,
        memory,
    )


def replay_report(
    source: Source,
    baseline: str,
    artifact: str,
    out_root: Path,
    candidate: str = "replay",
    runtime: str | None = None,
    instances: int = 1,
    concurrency: int = 4,
    options: ReportOptions | None = None,
) -> dict[str, Any]:
    """Replay, then the shadow report of the candidate against `baseline` on that window."""
    result = asyncio.run(
        replay(source, baseline, artifact, out_root, candidate, runtime, instances, concurrency)
    )
    paired = replace(source, folders={**source.folders, candidate: result.folder})
    report = shadow_report(
        paired,
        baseline,
        [candidate],
        options or ReportOptions(),
        Extras({candidate: result.cpu_seconds}, {candidate: result.memory_bytes}),
        f"Replay of {source.endpoint}/{baseline} through {Path(artifact).name}",
    )
    report["variants"][candidate]["role"] = "replay"
    report["replay"] = {
        "artifact": artifact,
        "requests": result.requests,
        "errors": result.errors,
        "skipped_without_input": result.skipped,
        "seconds": result.seconds,
        "capture": str(result.folder),
    }
    return report
