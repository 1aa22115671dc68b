"""Route tables: which variant answers a request. A table is frozen; the router swaps whole tables."""

from __future__ import annotations

import bisect
import hashlib
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from sluice.errors import NotFound, ValidationError, WorkerUnavailable
from sluice.gateway.capture import CaptureTarget
from sluice.gateway.metrics import VariantMetrics
from sluice.workers.client import Answer

if TYPE_CHECKING:
    from sluice.gateway.shadow import ShadowSender


class VariantBackend(Protocol):
    """Anything that runs a variant's model: a local worker pool, a Ray deployment."""

    async def invoke(self, body: bytes, content_type: str, accept: str) -> Answer: ...


@dataclass(frozen=True, slots=True)
class VariantRoute:
    name: str
    backend: VariantBackend
    weight: float
    metrics: VariantMetrics


@dataclass(frozen=True, slots=True)
class ShadowRoute:
    name: str
    sampling_percentage: int
    sender: ShadowSender


@dataclass(frozen=True)
class RouteTable:
    """One endpoint's live routing: production variants by weight, shadows, capture."""

    endpoint: str
    variants: tuple[VariantRoute, ...]
    shadows: tuple[ShadowRoute, ...] = ()
    capture: CaptureTarget | None = None
    sticky_header: str | None = None
    by_name: dict[str, VariantRoute] = field(init=False)
    cumulative: list[float] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {v.name: v for v in self.variants})
        totals, running = [], 0.0
        for v in self.variants:
            running += max(v.weight, 0.0)
            totals.append(running)
        object.__setattr__(self, "cumulative", totals)

    @property
    def total_weight(self) -> float:
        return self.cumulative[-1] if self.cumulative else 0.0

    def pick(self, target: str | None = None, sticky_key: str | None = None) -> VariantRoute:
        """The variant for one request: the target if named, else by key or at random by weight."""
        if target is not None:
            route = self.by_name.get(target)
            if route is None:
                raise ValidationError(
                    f"variant {target!r} is not a production variant of endpoint "
                    f"{self.endpoint!r} (known: {', '.join(self.by_name)})",
                    field="X-Amzn-SageMaker-Target-Variant",
                )
            return route
        total = self.total_weight
        if total <= 0:
            raise WorkerUnavailable(f"endpoint {self.endpoint!r} has no variant with weight > 0")
        if sticky_key is not None:
            return rendezvous(self.variants, sticky_key)
        if len(self.variants) == 1:
            return self.variants[0]
        index = bisect.bisect_right(self.cumulative, random.random() * total)
        return self.variants[min(index, len(self.variants) - 1)]


def rendezvous(variants: Sequence[VariantRoute], key: str) -> VariantRoute:
    """Weighted rendezvous hashing: a key keeps its variant, and a weight change moves only
    the keys that must move (to or from the variant whose weight changed)."""
    best, best_score = variants[0], -1.0
    encoded = key.encode()
    for v in variants:
        if v.weight <= 0:
            continue
        digest = hashlib.blake2b(v.name.encode() + b"\0" + encoded, digest_size=8).digest()
        unit = (int.from_bytes(digest, "big") + 0.5) / 2.0**64
        score = v.weight / -math.log(unit)
        if score > best_score:
            best, best_score = v, score
    return best


class Router:
    """Endpoint name to its live table. Swapping a table is one assignment: no request sees half."""

    def __init__(self) -> None:
        self.tables: dict[str, RouteTable] = {}
        self.not_serving: dict[str, str] = {}

    def get(self, endpoint: str) -> RouteTable:
        table = self.tables.get(endpoint)
        if table is None:
            reason = self.not_serving.get(endpoint)
            if reason:
                raise ValidationError(f"endpoint {endpoint!r} is not in service: {reason}",
                                      field="EndpointName")
            raise NotFound(f"endpoint {endpoint!r} does not exist", field="EndpointName")
        return table

    def publish(self, table: RouteTable) -> None:
        self.not_serving.pop(table.endpoint, None)
        self.tables[table.endpoint] = table

    def withdraw(self, endpoint: str, reason: str | None = None) -> RouteTable | None:
        if reason:
            self.not_serving[endpoint] = reason
        else:
            self.not_serving.pop(endpoint, None)
        return self.tables.pop(endpoint, None)
