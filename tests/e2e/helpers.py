"""Load and inspection helpers for tests against a running server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import psutil
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


@dataclass
class Timed:
    at: float
    status: int
    config: str
    body: bytes


class Load:
    """Continuous requests from a thread (its own event loop) until `stop()`; every reply kept.

    `bodies` are sent round-robin by `concurrency` workers; each reply records when it
    arrived, its status and the endpoint config of the fleet that answered.
    """

    def __init__(
        self,
        url: str,
        endpoint: str,
        bodies: Sequence[bytes],
        concurrency: int = 8,
        pause_s: float = 0.0,
    ) -> None:
        import threading

        self.url, self.endpoint, self.bodies = url, endpoint, bodies
        self.concurrency = concurrency
        self.pause_s = pause_s
        """Each worker waits this long after each reply (a paced load)."""
        self.replies: list[Timed] = []
        self.running = True
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def __enter__(self) -> Load:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> list[Timed]:
        self.running = False
        self.thread.join(60)
        return self.replies

    async def _run(self) -> None:
        import itertools
        import time

        counter = itertools.count()
        async with httpx.AsyncClient(base_url=self.url, timeout=60) as http:

            async def worker() -> None:
                while self.running:
                    body = self.bodies[next(counter) % len(self.bodies)]
                    try:
                        r = await http.post(
                            f"/endpoints/{self.endpoint}/invocations",
                            content=body,
                            headers={"Content-Type": "application/json"},
                        )
                        reply = Timed(
                            time.time(),
                            r.status_code,
                            r.headers.get("x-sluice-endpoint-config", ""),
                            r.content,
                        )
                    except httpx.HTTPError as exc:
                        reply = Timed(time.time(), 0, "", str(exc).encode())
                    self.replies.append(reply)
                    if self.pause_s:
                        await asyncio.sleep(self.pause_s)

            await asyncio.gather(*(worker() for _ in range(self.concurrency)))

    def between(self, start: float, end: float) -> list[Timed]:
        return [r for r in self.replies if start <= r.at < end]

    def failed(self) -> list[Timed]:
        return [r for r in self.replies if r.status != 200]


def canary(percent: int, wait: int, **extra: object) -> dict[str, object]:
    """A DeploymentConfig document: a CAPACITY_PERCENT canary."""
    return {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "CANARY",
                "WaitIntervalInSeconds": wait,
                "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": percent},
            },
            **extra,
        }
    }


def worker_processes(server_pid: int) -> list[psutil.Process]:
    """A server's workers: started afresh (their command runs sluice.workers.main) or
    forked by its worker template (they go by the name sluice-worker)."""
    from sluice.workers.zygote import WORKER_NAME

    try:
        children = psutil.Process(server_pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    found = []
    for child in children:
        try:
            if child.name() == WORKER_NAME or "sluice.workers.main" in child.cmdline():
                found.append(child)
        except psutil.Error:
            continue  # gone meanwhile
    return found


def sluice_children() -> list[psutil.Process]:
    """This process's descendants that run sluice (servers, workers), not other helpers
    the tests started (a PostgreSQL cluster, an S3 server)."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            command = child.cmdline()
            if any(part.startswith("sluice.") or part.endswith("/sluice") for part in command):
                found.append(child)
        except psutil.Error:
            continue  # gone meanwhile
    return found


def aws_client(kind: str, url: str, **options: Any) -> Any:
    """A boto3 client of `kind` for the server at `url`, from a session of its own (which
    reads AWS_DATA_PATH afresh), with test keys and no retries."""
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        kind,
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 1}),
        **options,
    )
