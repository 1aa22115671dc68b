"""Models, endpoint configs and endpoints: the service that owns them and their live workers.

Creating an endpoint returns at once with status Creating; a task starts its variants'
workers and publishes its route table (InService) or records why it failed (Failed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine, Iterator, Mapping
from dataclasses import dataclass, field, replace

from sluice.backends.base import Backend, VariantInstances
from sluice.control.validation import check_header_name, check_name, check_range
from sluice.entities import (
    DataCapture,
    Endpoint,
    EndpointConfig,
    EndpointStatus,
    EndpointVariant,
    Model,
    VariantKind,
    VariantSpec,
)
from sluice.errors import InvalidState, SluiceError, ValidationError
from sluice.gateway.capture import CaptureTarget, CaptureWriter
from sluice.gateway.metrics import Metrics, VariantMetrics
from sluice.gateway.routing import Router, RouteTable, ShadowRoute, VariantRoute
from sluice.gateway.shadow import ShadowSender
from sluice.gateway.sticky import rebalance
from sluice.runtimes import registry
from sluice.settings import Settings
from sluice.store.artifacts import ArtifactStore, local_path
from sluice.store.repos import Repository

log = logging.getLogger(__name__)

MAX_INSTANCES = 64


@dataclass
class LiveVariant:
    instances: VariantInstances
    metrics: VariantMetrics
    sender: ShadowSender | None = None


@dataclass
class LiveEndpoint:
    config: EndpointConfig
    variants: dict[str, LiveVariant] = field(default_factory=dict)


class EndpointService:
    def __init__(
        self,
        repo: Repository,
        artifacts: ArtifactStore,
        backend: Backend,
        router: Router,
        capture: CaptureWriter,
        metrics: Metrics,
        settings: Settings,
    ) -> None:
        self.repo = repo
        self.artifacts = artifacts
        self.backend = backend
        self.router = router
        self.capture = capture
        self.metrics = metrics
        self.settings = settings
        self.live: dict[str, LiveEndpoint] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}

    # -- models

    async def create_model(
        self,
        name: str,
        artifact: str,
        runtime: str | None = None,
        image: str | None = None,
        environment: Mapping[str, str] | None = None,
    ) -> Model:
        check_name(name, "ModelName")
        env = {str(k): str(v) for k, v in (environment or {}).items()}
        model_dir = await asyncio.to_thread(self.artifacts.unpack, artifact)
        chosen = registry.canonical(runtime) if runtime else registry.detect(model_dir, env, image)
        return self.repo.add_model(Model(name, artifact, str(model_dir), chosen, image, env, None))  # type: ignore[arg-type]

    def get_model(self, name: str) -> Model:
        return self.repo.get_model(name)

    def list_models(self) -> list[Model]:
        return self.repo.list_models()

    def delete_model(self, name: str) -> None:
        self.repo.delete_model(name)

    # -- endpoint configs

    def create_endpoint_config(self, config: EndpointConfig) -> EndpointConfig:
        check_name(config.name, "EndpointConfigName")
        if not config.production:
            raise ValidationError(
                "an endpoint config needs at least one production variant",
                field="ProductionVariants",
            )
        seen: set[str] = set()
        for v in config.variants:
            check_name(v.name, "VariantName")
            if v.name in seen:
                raise ValidationError(f"variant name {v.name!r} is used twice", field="VariantName")
            seen.add(v.name)
            self.repo.get_model(v.model_name)
            check_range(v.initial_weight, "InitialVariantWeight", 0)
            check_range(v.instance_count, "InitialInstanceCount", 1, MAX_INSTANCES)
            check_range(v.sampling_percentage, "SamplingPercentage", 0, 100)
        if sum(v.initial_weight for v in config.production) <= 0:
            raise ValidationError(
                "at least one production variant needs a weight above 0",
                field="InitialVariantWeight",
            )
        if config.data_capture is not None:
            check_range(
                config.data_capture.sampling_percentage, "InitialSamplingPercentage", 0, 100
            )
            if config.data_capture.destination:
                local_path(config.data_capture.destination)
        sticky = config.sticky_header
        if sticky is not None:
            sticky = check_header_name(sticky, "StickyHeader")
        return self.repo.add_config(replace(config, sticky_header=sticky))

    def get_endpoint_config(self, name: str) -> EndpointConfig:
        return self.repo.get_config(name)

    def list_endpoint_configs(self) -> list[EndpointConfig]:
        return self.repo.list_configs()

    def delete_endpoint_config(self, name: str) -> None:
        # As SageMaker: a live endpoint keeps running on its config's recipe.
        self.repo.delete_config(name)

    # -- endpoints

    def get_endpoint(self, name: str) -> Endpoint:
        return self.repo.get_endpoint(name)

    def list_endpoints(self) -> list[Endpoint]:
        return self.repo.list_endpoints()

    async def create_endpoint(self, name: str, config_name: str) -> Endpoint:
        check_name(name, "EndpointName")
        config = self.repo.get_config(config_name)
        variants = [
            EndpointVariant(
                v.name,
                v.model_name,
                v.kind,
                0.0,
                v.initial_weight,
                0,
                v.instance_count,
                v.sampling_percentage,
                "Creating",
            )
            for v in config.variants
        ]
        endpoint = self.repo.add_endpoint(name, config_name, variants)
        self.router.withdraw(name, reason="it is being created")
        self._spawn(name, self._provision(name, config))
        return endpoint

    async def update_weights(self, name: str, weights: Mapping[str, float]) -> Endpoint:
        """Change production weights live; the new table replaces the old in one step."""
        endpoint = self.repo.get_endpoint(name)
        live = self.live.get(name)
        if endpoint.status is not EndpointStatus.IN_SERVICE or live is None:
            raise InvalidState(
                f"endpoint {name!r} is {endpoint.status.value}, not InService", field="EndpointName"
            )
        for variant, weight in weights.items():
            current = endpoint.variant(variant)
            if current is None or current.kind is not VariantKind.PRODUCTION:
                raise ValidationError(
                    f"{variant!r} is not a production variant of endpoint {name!r}",
                    field="VariantName",
                )
            check_range(weight, "DesiredWeight", 0)
        merged = {
            v.name: weights.get(v.name, v.current_weight)
            for v in endpoint.variants
            if v.kind is VariantKind.PRODUCTION
        }
        if sum(merged.values()) <= 0:
            raise ValidationError(
                "at least one production variant needs a weight above 0", field="DesiredWeight"
            )
        endpoint = self.repo.set_weights(name, weights)
        return self._publish(endpoint, live)

    async def delete_endpoint(self, name: str) -> None:
        endpoint = self.repo.get_endpoint(name)
        if endpoint.status is EndpointStatus.DELETING and name in self.tasks:
            raise InvalidState(f"endpoint {name!r} is already being deleted", field="EndpointName")
        self.repo.set_endpoint_status(name, EndpointStatus.DELETING)
        pending = self.tasks.pop(name, None)
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pending
        await self._retire(name)
        self.repo.delete_endpoint(name)
        self.router.withdraw(name)

    async def restore(self) -> None:
        """After a restart: bring back every endpoint that was serving, finish deletions."""
        for endpoint in self.repo.list_endpoints():
            if endpoint.status is EndpointStatus.DELETING:
                self.repo.delete_endpoint(endpoint.name)
            elif endpoint.status is not EndpointStatus.FAILED:
                if endpoint.status is not EndpointStatus.CREATING:
                    self.repo.set_endpoint_status(endpoint.name, EndpointStatus.SYSTEM_UPDATING)
                self.router.withdraw(endpoint.name, reason="it is starting after a restart")
                try:
                    config = self.repo.get_config(endpoint.config_name)
                except SluiceError as exc:
                    self.repo.set_endpoint_status(endpoint.name, EndpointStatus.FAILED, exc.message)
                    continue
                self._spawn(endpoint.name, self._provision(endpoint.name, config))

    async def wait_idle(self) -> None:
        """Wait until no endpoint is being created (for the CLI, the demo and tests)."""
        while self.tasks:
            await asyncio.gather(*self.tasks.values(), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self.tasks.values()):
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        await asyncio.gather(*(self._retire(name) for name in list(self.live)))

    def worker_usage(self) -> Iterator[tuple[str, str, list[int]]]:
        for name, live in list(self.live.items()):
            for variant, handle in live.variants.items():
                yield name, variant, handle.instances.pids

    # -- internals

    def _spawn(self, name: str, work: Coroutine[object, object, None]) -> None:
        task = asyncio.create_task(work, name=f"provision {name}")
        self.tasks[name] = task
        task.add_done_callback(
            lambda t: self.tasks.pop(name, None) if self.tasks.get(name) is t else None
        )

    async def _provision(self, name: str, config: EndpointConfig) -> None:
        live = LiveEndpoint(config)
        self.live[name] = live
        try:
            await asyncio.gather(*(self._start_variant(name, live, v) for v in config.variants))
        except asyncio.CancelledError:
            await self._retire(name, drain=False)
            raise
        except Exception as exc:  # noqa: BLE001 - any start failure fails the endpoint
            reason = exc.message if isinstance(exc, SluiceError) else f"{type(exc).__name__}: {exc}"
            log.error("endpoint %s failed: %s", name, reason)
            await self._retire(name, drain=False)
            self.repo.set_endpoint_status(name, EndpointStatus.FAILED, reason)
            self.router.withdraw(name, reason=f"it failed: {reason}")
            return
        endpoint = self.repo.set_endpoint_status(name, EndpointStatus.IN_SERVICE)
        self._publish(endpoint, live)
        log.info("endpoint %s is in service", name)

    async def _start_variant(self, endpoint: str, live: LiveEndpoint, spec: VariantSpec) -> None:
        model = self.repo.get_model(spec.model_name)
        metrics = self.metrics.for_variant(endpoint, spec.name)
        shadow = spec.kind is VariantKind.SHADOW
        instances = await self.backend.start_variant(
            f"{endpoint}/{spec.name}",
            model,
            spec.instance_count,
            metrics.restarts.inc,
            nice=self.settings.shadow_worker_nice if shadow else 0,
        )
        handle = LiveVariant(instances, metrics)
        live.variants[spec.name] = handle
        if shadow:
            handle.sender = ShadowSender(
                endpoint,
                spec.name,
                instances,
                metrics,
                self.capture,
                self.settings.shadow_queue_size,
                self.settings.shadow_concurrency_per_instance * spec.instance_count,
            )
            handle.sender.start()

    async def _retire(self, name: str, drain: bool = True) -> None:
        """Stop routing, let in-flight requests finish, flush capture, stop workers."""
        self.router.withdraw(name)
        live = self.live.pop(name, None)
        if live is None:
            return
        handles = list(live.variants.values())
        grace = self.settings.shutdown_grace_s if drain else 0.0
        if drain:
            await asyncio.gather(*(h.instances.drain(grace) for h in handles))
        await asyncio.gather(*(h.sender.stop(grace) for h in handles if h.sender))
        await self.capture.flush(name)
        await asyncio.gather(*(h.instances.stop() for h in handles))

    def _publish(self, endpoint: Endpoint, live: LiveEndpoint) -> Endpoint:
        """Swap in the endpoint's new route table (keeping sticky callers where they were)."""
        if live.config.sticky_header:
            layout = tuple(rebalance(endpoint.sticky_layout, endpoint.production_weights()))
            if layout != endpoint.sticky_layout:
                endpoint = self.repo.set_sticky_layout(endpoint.name, layout)
        self.router.publish(self._table(endpoint, live))
        return endpoint

    def _table(self, endpoint: Endpoint, live: LiveEndpoint) -> RouteTable:
        production: list[VariantRoute] = []
        shadows: list[ShadowRoute] = []
        for v in endpoint.variants:
            handle = live.variants[v.name]
            if v.kind is VariantKind.PRODUCTION:
                production.append(
                    VariantRoute(v.name, handle.instances, v.current_weight, handle.metrics)
                )
            elif handle.sender is not None:
                shadows.append(ShadowRoute(v.name, v.sampling_percentage, handle.sender))
        return RouteTable(
            endpoint.name,
            tuple(production),
            tuple(shadows),
            self._capture_target(live.config.data_capture),
            live.config.sticky_header,
            endpoint.sticky_layout,
        )

    def _capture_target(self, capture: DataCapture | None) -> CaptureTarget | None:
        if capture is None or not capture.enabled:
            return None
        root = local_path(capture.destination) if capture.destination else self.settings.capture_dir
        return CaptureTarget(
            root, capture.sampling_percentage, capture.capture_input, capture.capture_output
        )
