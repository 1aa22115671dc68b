"""Live fleets of an endpoint and the route table built from them.

A fleet is the running variants of one endpoint config. An endpoint in service has one
fleet (blue). During an update it also has a green fleet, built from the new config, and
each production variant's traffic is split between its blue and green fleets by the green
share of the current step. The route table is a pure function of that state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sluice.backends.base import VariantInstances
from sluice.entities import (
    AsyncConfig,
    DataCapture,
    Endpoint,
    EndpointConfig,
    VariantKind,
    VariantSpec,
)
from sluice.gateway.capture import CaptureTarget
from sluice.gateway.fleet_stats import FleetStats, Tallies
from sluice.gateway.metrics import VariantMetrics
from sluice.gateway.routing import RouteTable, ShadowRoute, VariantRoute
from sluice.gateway.shadow import ShadowSender
from sluice.store.objects import ObjectStore


@dataclass
class LiveVariant:
    spec: VariantSpec
    instances: VariantInstances
    metrics: VariantMetrics
    stats: FleetStats = field(default_factory=FleetStats)
    tallies: Tallies = field(default_factory=Tallies)
    """Figures beyond its requests' (its instances' wrapper adds to them)."""
    sender: ShadowSender | None = None


@dataclass
class Fleet:
    """The running variants of one endpoint config."""

    config: EndpointConfig
    variants: dict[str, LiveVariant] = field(default_factory=dict)

    @property
    def production(self) -> dict[str, LiveVariant]:
        return {n: v for n, v in self.variants.items() if v.spec.kind is VariantKind.PRODUCTION}

    def instance_counts(self) -> dict[str, int]:
        return {n: len(v.instances.pids) for n, v in self.variants.items()}


@dataclass
class LiveEndpoint:
    blue: Fleet
    green: Fleet | None = None
    green_shares: dict[str, float] = field(default_factory=dict)
    """Per production variant: the share of its traffic on the green fleet (0 to 1)."""

    @property
    def fleets(self) -> list[Fleet]:
        return [self.blue] if self.green is None else [self.blue, self.green]

    @property
    def on_green(self) -> bool:
        """All production traffic is on the green fleet."""
        return self.green is not None and all(
            self.green_shares.get(n, 0.0) >= 1.0 for n in self.green.production
        )


def route_table(
    endpoint: Endpoint, live: LiveEndpoint, capture_root: Path, objects: ObjectStore
) -> RouteTable:
    """The table that serves `live` as it stands: blue and green fleets by their shares.

    A variant's weight is the endpoint's current weight for it (the new config's weight for
    a variant only the new config has); a fleet gets that weight times its share.
    """
    weights = endpoint.production_weights()
    routes: list[VariantRoute] = []
    for fleet, green in ((live.blue, False), (live.green, True)):
        if fleet is None:
            continue
        for name, handle in fleet.production.items():
            share = _share(live, name, green)
            if share <= 0:
                continue
            weight = weights.get(name, handle.spec.initial_weight)
            routes.append(
                VariantRoute(
                    name,
                    handle.instances,
                    weight * share,
                    handle.metrics,
                    fleet.config.name,
                    share,
                    handle.stats,
                )
            )
    # Shadows and capture follow the fleet that answers: blue's until all traffic is green.
    serving = live.green if live.green is not None and live.on_green else live.blue
    sampling = {v.name: v.sampling_percentage for v in endpoint.variants}
    shadows = tuple(
        ShadowRoute(
            name,
            sampling.get(name, handle.spec.sampling_percentage),
            handle.sender,
            handle.spec.source_variant,
        )
        for name, handle in serving.variants.items()
        if handle.sender is not None
    )
    return RouteTable(
        endpoint.name,
        tuple(routes),
        shadows,
        capture_target(serving.config.data_capture, capture_root, objects),
        serving.config.sticky_header,
        endpoint.sticky_layout,
        AsyncConfig.from_details(serving.config.details),
    )


def _share(live: LiveEndpoint, variant: str, green: bool) -> float:
    if live.green is None:
        return 1.0
    on_green = min(max(live.green_shares.get(variant, 0.0), 0.0), 1.0)
    if green:
        return on_green
    # A variant the new config drops moves with the endpoint's overall progress.
    if variant not in live.green.production:
        on_green = min(live.green_shares.values(), default=0.0)
    return 1.0 - on_green


def capture_target(
    capture: DataCapture | None, default_root: Path, objects: ObjectStore
) -> CaptureTarget | None:
    if capture is None or not capture.enabled:
        return None
    destination = capture.destination
    return CaptureTarget(
        objects.local(destination, "DestinationS3Uri") if destination else default_root,
        capture.sampling_percentage,
        capture.capture_input,
        capture.capture_output,
        objects.remote(destination, "DestinationS3Uri") if destination else None,
    )
