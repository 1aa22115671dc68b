"""A multi-container variant: an inference pipeline (Serial) or containers named per request
(Direct), with each container's invocations and latency in the metrics."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from prometheus_client import Counter, Histogram

from sluice.errors import ValidationError
from sluice.gateway.fleet_stats import Tallies
from sluice.gateway.instances import TARGET_CONTAINER, WrappedInstances
from sluice.runtimes.container_manifest import DIRECT, SERIAL
from sluice.workers.client import Answer, ModelTarget

if TYPE_CHECKING:
    from sluice.backends.base import VariantInstances


class ContainerInstances(WrappedInstances):
    def __init__(
        self,
        pool: VariantInstances,
        mode: str,
        hostnames: Sequence[str],
        metrics: dict[str, tuple[Counter, Histogram]],
        tallies: Tallies,
    ) -> None:
        """`metrics`: each container's invocations and latency, by hostname; `tallies`
        gets each call's ContainerLatency for the metric history."""
        super().__init__(pool)
        self.tallies = tallies
        self.mode = mode
        self.takes = TARGET_CONTAINER if mode == DIRECT else None
        self.hostnames = tuple(hostnames)
        self.targets = {h: ModelTarget(h, h, "", everywhere=True) for h in hostnames}
        self.metrics = metrics

    async def invoke(
        self, body: bytes, content_type: str, accept: str, target: str | None = None
    ) -> Answer:
        if self.mode == SERIAL:
            answer = await self.pool.invoke(body, content_type, accept)
            for hostname, seconds in zip(self.hostnames, answer.steps or (), strict=False):
                self._count(hostname, seconds)
            return answer
        if target is None:
            raise ValidationError(
                "the request is missing TargetContainerHostname: this endpoint's containers "
                f"are invoked directly ({', '.join(self.hostnames)})",
                field=TARGET_CONTAINER,
            )
        container = self.targets.get(target)
        if container is None:
            raise ValidationError(
                f"TargetContainerHostname {target[:80]!r} names no container of this endpoint "
                f"({', '.join(self.hostnames)})",
                field=TARGET_CONTAINER,
            )
        started = time.perf_counter()
        answer = await self.pool.invoke_model(container, body, content_type, accept)
        self._count(target, time.perf_counter() - started)
        return answer

    def _count(self, hostname: str, seconds: float) -> None:
        invocations, latency = self.metrics[hostname]
        invocations.inc()
        latency.observe(seconds)
        self.tallies.add("ContainerLatency", seconds * 1e6, "Microseconds", ContainerName=hostname)
