"""Data capture: sampled, buffered JSON Lines in SageMaker's capture format.

Records are written off the request path by a background task.

Files land under `{destination}/{endpoint}/{variant}/YYYY/MM/DD/HH/{mm-ss-mmm}-{uuid}.jsonl`.
Beyond SageMaker's fields, `eventMetadata` carries `latencyMs` (model round trip) and
`status` (200, or the error's HTTP status: failed invocations are captured too).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sluice.codecs import media_type
from sluice.gateway.metrics import VariantMetrics
from sluice.types import CSV, JSON, JSONLINES

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CaptureTarget:
    """Where and what one endpoint captures (from its config's data capture)."""

    root: Path
    sampling_percentage: int
    capture_input: bool
    capture_output: bool


@dataclass(slots=True)
class CaptureEvent:
    target: CaptureTarget
    endpoint: str
    variant: str
    inference_id: str
    time: float
    input_type: str
    input_body: bytes
    output_type: str
    output_body: bytes
    latency_ms: float
    status: int
    metrics: VariantMetrics


class CaptureWriter:
    """Holds events in memory and appends them to files every `flush_interval_s`."""

    def __init__(self, flush_interval_s: float = 1.0, buffer_records: int = 10_000) -> None:
        self.flush_interval_s = flush_interval_s
        self.buffer_records = buffer_records
        self.buffer: list[CaptureEvent] = []
        self.files: dict[tuple[Path, str, str, str], Path] = {}
        self.task: asyncio.Task[None] | None = None
        self.lock = asyncio.Lock()
        self.wake = asyncio.Event()

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name="capture writer")

    def add(self, event: CaptureEvent) -> None:
        if len(self.buffer) >= 2 * self.buffer_records:
            event.metrics.capture_dropped.inc()
            return
        self.buffer.append(event)
        if len(self.buffer) >= self.buffer_records:
            self.wake.set()

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.flush_interval_s)
            self.wake.clear()
            try:
                await self.flush()
            except Exception:  # noqa: BLE001 - keep capturing after a disk error
                log.exception("capture flush failed")

    async def flush(self, endpoint: str | None = None) -> None:
        """Write buffered events (only `endpoint`'s when given) to their files."""
        async with self.lock:
            if endpoint is None:
                events, self.buffer = self.buffer, []
            else:
                events = [e for e in self.buffer if e.endpoint == endpoint]
                self.buffer = [e for e in self.buffer if e.endpoint != endpoint]
            if events:
                await asyncio.to_thread(self._write, events)

    def _write(self, events: list[CaptureEvent]) -> None:
        groups: dict[Path, list[str]] = {}
        for event in events:
            groups.setdefault(self._file_for(event), []).append(to_record(event))
        for path, lines in groups.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as f:
                f.write("\n".join(lines) + "\n")
        for event in events:
            event.metrics.captured.inc()

    def _file_for(self, event: CaptureEvent) -> Path:
        stamp = time.gmtime(event.time)
        hour = time.strftime("%Y/%m/%d/%H", stamp)
        key = (event.target.root, event.endpoint, event.variant, hour)
        path = self.files.get(key)
        if path is None:
            millis = int(event.time * 1000) % 1000
            name = f"{time.strftime('%M-%S', stamp)}-{millis:03d}-{uuid.uuid4().hex[:8]}.jsonl"
            path = event.target.root / event.endpoint / event.variant / hour / name
            self.files[key] = path
        return path

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        await self.flush()


def to_record(event: CaptureEvent) -> str:
    capture: dict[str, object] = {}
    if event.target.capture_input:
        capture["endpointInput"] = _payload(event.input_type, event.input_body, "INPUT")
    if event.target.capture_output:
        capture["endpointOutput"] = _payload(event.output_type, event.output_body, "OUTPUT")
    when = datetime.fromtimestamp(event.time, UTC)
    return json.dumps(
        {
            "captureData": capture,
            "eventMetadata": {
                "eventId": str(uuid.uuid4()),
                "inferenceId": event.inference_id,
                "inferenceTime": when.strftime("%Y-%m-%dT%H:%M:%S.")
                + f"{when.microsecond // 1000:03d}Z",
                "latencyMs": round(event.latency_ms, 3),
                "status": event.status,
            },
            "eventVersion": "0",
        },
        separators=(",", ":"),
    )


def _payload(content_type: str, body: bytes, mode: str) -> dict[str, str]:
    kind = media_type(content_type)
    encoding = {JSON: "JSON", JSONLINES: "JSON", CSV: "CSV"}.get(kind, "BASE64")
    if encoding != "BASE64":
        try:
            data = body.decode("utf-8")
        except UnicodeDecodeError:
            encoding = "BASE64"
    if encoding == "BASE64":
        data = base64.b64encode(body).decode("ascii")
    return {"observedContentType": content_type, "mode": mode, "data": data, "encoding": encoding}
