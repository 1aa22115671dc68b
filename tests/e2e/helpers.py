"""Load and inspection helpers for tests against a running server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests import models


@dataclass
class Reply:
    status: int
    variant: str
    body: bytes
    inference_id: str


def digit_rows(count: int) -> list[bytes]:
    x, _ = models.digits()
    return [json.dumps([x[i % len(x)].tolist()]).encode() for i in range(count)]


async def send_many(
    url: str,
    endpoint: str,
    bodies: Sequence[bytes],
    concurrency: int = 16,
    headers: dict[str, str] | None = None,
    key_header: str | None = None,
) -> list[Reply]:
    """POST every body once (ids "req-<i>"), `concurrency` at a time; keeps order."""
    replies: list[Reply | None] = [None] * len(bodies)
    next_index = iter(range(len(bodies)))
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:

        async def worker() -> None:
            for i in next_index:
                sent = {
                    "Content-Type": "application/json",
                    "X-Amzn-SageMaker-Inference-Id": f"req-{i}",
                    **(headers or {}),
                }
                if key_header:
                    sent[key_header] = f"user-{i % 97}"
                r = await http.post(
                    f"/endpoints/{endpoint}/invocations", content=bodies[i], headers=sent
                )
                replies[i] = Reply(
                    r.status_code,
                    r.headers.get("x-amzn-invoked-production-variant", ""),
                    r.content,
                    f"req-{i}",
                )

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return [r for r in replies if r is not None]


def metric(url: str, name: str, **labels: str) -> float:
    """Sum of the samples of one metric whose labels include `labels`."""
    text = httpx.get(f"{url}/metrics").text
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total
