"""Route tables: which variant answers a request. Tables are frozen; the router swaps them."""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from sluice.errors import NotFound, ValidationError, WorkerUnavailable
from sluice.gateway.capture import CaptureTarget
from sluice.gateway.metrics import VariantMetrics
from sluice.gateway.sticky import Segment, key_point, owner
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
    sticky_layout: tuple[Segment, ...] = ()
    """Segments of the key space per variant (see gateway/sticky.py)."""
    by_name: dict[str, VariantRoute] = field(init=False)
    cumulative: list[float] = field(init=False)
    sticky_starts: list[float] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {v.name: v for v in self.variants})
        object.__setattr__(self, "sticky_starts", [s[0] for s in self.sticky_layout])
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
        if sticky_key is not None and self.sticky_layout:
            return self.by_name[
                owner(self.sticky_layout, self.sticky_starts, key_point(sticky_key))
            ]
        if len(self.variants) == 1:
            return self.variants[0]
        index = bisect.bisect_right(self.cumulative, random.random() * total)
        return self.variants[min(index, len(self.variants) - 1)]


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
                raise ValidationError(
                    f"endpoint {endpoint!r} is not in service: {reason}", field="EndpointName"
                )
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
