"""Route tables: which variant answers a request. Tables are frozen; the router swaps them."""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from sluice.entities import AsyncConfig
from sluice.errors import NotFound, Restoring, ValidationError, WorkerUnavailable
from sluice.gateway.capture import CaptureTarget
from sluice.gateway.fleet_stats import FleetStats
from sluice.gateway.metrics import VariantMetrics
from sluice.gateway.sticky import Segment, key_point, owner
from sluice.workers.client import Answer
from sluice.workers.file_request import FileRequest

if TYPE_CHECKING:
    from sluice.gateway.shadow import ShadowSender


class VariantBackend(Protocol):
    """Anything that runs a variant's model: a local worker pool, a Ray deployment."""

    takes: str | None
    """What a request may name (see `sluice.gateway.instances`)."""

    async def invoke(
        self, body: bytes, content_type: str, accept: str, target: str | None = None
    ) -> Answer: ...

    async def invoke_file(self, request: FileRequest, timeout: float) -> str: ...

    @property
    def instance_count(self) -> int: ...


@dataclass(frozen=True, slots=True)
class VariantRoute:
    """One fleet of a production variant: the instances built from one endpoint config.

    Outside an update each variant has one fleet. During an update a variant has a blue
    fleet (old config) and a green one (new config), each with its share of the variant.
    """

    name: str
    backend: VariantBackend
    weight: float
    """This fleet's share of the endpoint's traffic (relative to the other routes)."""
    metrics: VariantMetrics
    config: str = ""
    """The endpoint config this fleet was built from."""
    share: float = 1.0
    """This fleet's share of its variant's traffic (for target-variant and sticky picks)."""
    stats: FleetStats = field(default_factory=FleetStats)


@dataclass(frozen=True, slots=True)
class ShadowRoute:
    name: str
    sampling_percentage: int
    sender: ShadowSender
    source: str | None = None
    """Copy only requests this production variant answered (None: every request)."""


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
    asynchronous: AsyncConfig | None = None
    """Set for an endpoint that takes only asynchronous invocations."""
    by_name: dict[str, tuple[VariantRoute, ...]] = field(init=False)
    cumulative: list[float] = field(init=False)
    sticky_starts: list[float] = field(init=False)

    def __post_init__(self) -> None:
        by_name: dict[str, tuple[VariantRoute, ...]] = {}
        for v in self.variants:
            by_name[v.name] = (*by_name.get(v.name, ()), v)
        object.__setattr__(self, "by_name", by_name)
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
            fleets = self.by_name.get(target)
            if fleets is None:
                raise ValidationError(
                    f"variant {target!r} is not a production variant of endpoint "
                    f"{self.endpoint!r} (known: {', '.join(self.by_name)})",
                    field="X-Amzn-SageMaker-Target-Variant",
                )
            return fleets[0] if len(fleets) == 1 else _by_share(fleets, random.random())
        total = self.total_weight
        if total <= 0:
            raise WorkerUnavailable(f"endpoint {self.endpoint!r} has no variant with weight > 0")
        if sticky_key is not None and self.sticky_layout:
            fleets = self.by_name[
                owner(self.sticky_layout, self.sticky_starts, key_point(sticky_key))
            ]
            # A second, independent point keeps a caller on one fleet while the green share
            # grows: callers only ever move from blue to green, never back and forth.
            return fleets[0] if len(fleets) == 1 else _by_share(fleets, key_point("~" + sticky_key))
        if len(self.variants) == 1:
            return self.variants[0]
        index = bisect.bisect_right(self.cumulative, random.random() * total)
        return self.variants[min(index, len(self.variants) - 1)]


def _by_share(fleets: tuple[VariantRoute, ...], point: float) -> VariantRoute:
    """The fleet of a variant that owns `point` in [0, 1), laid out by their shares."""
    total = sum(f.share for f in fleets)
    if total <= 0:
        return fleets[0]
    mark = point * total
    for fleet in fleets:
        mark -= fleet.share
        if mark < 0:
            return fleet
    return fleets[-1]


class Router:
    """Endpoint name to its live table. Swapping a table is one assignment: no request sees half."""

    def __init__(self) -> None:
        self.tables: dict[str, RouteTable] = {}
        self.not_serving: dict[str, str] = {}
        self.restoring: set[str] = set()
        """Endpoints coming back after a restart: requests to them are worth retrying."""

    def get(self, endpoint: str) -> RouteTable:
        table = self.tables.get(endpoint)
        if table is None:
            reason = self.not_serving.get(endpoint)
            if endpoint in self.restoring:
                raise Restoring(
                    f"endpoint {endpoint!r} is starting after a restart of the server; "
                    "retry shortly"
                )
            if reason:
                raise ValidationError(
                    f"endpoint {endpoint!r} is not in service: {reason}", field="EndpointName"
                )
            raise NotFound(f"endpoint {endpoint!r} does not exist", field="EndpointName")
        return table

    @property
    def ready(self) -> bool:
        """Every endpoint the server had before a restart is back (or has failed)."""
        return not self.restoring

    def publish(self, table: RouteTable) -> None:
        self.not_serving.pop(table.endpoint, None)
        self.restoring.discard(table.endpoint)
        self.tables[table.endpoint] = table

    def withdraw(
        self, endpoint: str, reason: str | None = None, restoring: bool = False
    ) -> RouteTable | None:
        """Take an endpoint out of service; `restoring`: it is coming back after a restart."""
        if restoring:
            self.restoring.add(endpoint)
        else:
            self.restoring.discard(endpoint)
        if reason:
            self.not_serving[endpoint] = reason
        else:
            self.not_serving.pop(endpoint, None)
        return self.tables.pop(endpoint, None)
