"""Models, endpoint configs and endpoints: the service that owns them and their live workers.

Creating an endpoint returns at once with status Creating; a task starts its variants'
workers and publishes its route table (InService) or records why it failed (Failed).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Collection, Coroutine, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sluice.backends.base import Backend
from sluice.control.fleets import Fleet, LiveEndpoint, LiveVariant, route_table
from sluice.control.validation import (
    check_environment,
    check_header_name,
    check_name,
    check_range,
)
from sluice.entities import (
    AsyncConfig,
    Endpoint,
    EndpointConfig,
    EndpointStatus,
    EndpointVariant,
    Model,
    VariantKind,
    VariantSpec,
)
from sluice.errors import AlreadyExists, InvalidState, NotFound, SluiceError, ValidationError
from sluice.gateway.capture import CaptureWriter
from sluice.gateway.containers import ContainerInstances
from sluice.gateway.fleet_stats import Tallies, Window
from sluice.gateway.metrics import Metrics
from sluice.gateway.multi_model import (
    ModelSource,
    MultiModelInstances,
    Readiness,
    preload_keys,
    worker_environment,
)
from sluice.gateway.routing import Router
from sluice.gateway.shadow import ShadowSender
from sluice.gateway.sticky import rebalance
from sluice.runtimes import registry
from sluice.runtimes.container_manifest import (
    ContainerDef,
    check_containers,
    read_manifest,
    write_manifest,
)
from sluice.runtimes.registry import CONTAINERS, INTERNAL, MULTI_MODEL, SUBMIT_DIRECTORY
from sluice.settings import Settings
from sluice.store.artifacts import ArtifactStore
from sluice.store.repos import Repository

log = logging.getLogger(__name__)

MAX_INSTANCES = 64


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
        self.tasks: dict[str, asyncio.Task[object]] = {}
        self.on_cold: Callable[[str, str], None] | None = None
        """Called with (endpoint, variant) when a request finds a production variant
        scaled to zero (the autoscaler starts an instance; the request waits for it)."""
        self.resizing: set[str] = set()
        """Endpoints whose instance counts change with no update (autoscaling, async wake
        or rest): another change waits until this one is done."""
        self.on_delete: list[Callable[[str], Awaitable[None]]] = []
        """Called before an endpoint's workers stop (a running update is cancelled)."""
        self.config_checks: list[Callable[[EndpointConfig], None]] = []
        """Each raises if a config may not go live (the registry's approval rule)."""

    # -- models

    async def create_model(
        self,
        name: str,
        artifact: str,
        runtime: str | None = None,
        image: str | None = None,
        environment: Mapping[str, str] | None = None,
        details: Mapping[str, Any] | None = None,
        package: str | None = None,
        model_dir: Path | None = None,
        multi_model: bool = False,
    ) -> Model:
        """Register a model; `package` names the registry package it is made from, and
        `model_dir` the package's kept copy (else the artifact is unpacked now). A
        `multi_model` one's artifact is a prefix whose models are unpacked on first use."""
        check_name(name, "ModelName")
        if self.repo.has_model(name):  # before the artifact is read
            raise AlreadyExists(
                f"model {name!r} already exists", field="name", resource=("model", name)
            )
        env = {str(k): str(v) for k, v in (environment or {}).items()}
        check_environment(env)
        if runtime is not None and registry.canonical(runtime) in INTERNAL:
            raise ValidationError(
                f"runtime {runtime!r} is chosen from a model's definition (a multi-model "
                "container or several containers), not by name",
                field="runtime",
            )
        if multi_model:
            self.artifacts.objects.plausible(artifact)
            model_dir, chosen = self.artifacts.root, MULTI_MODEL
        else:
            model_dir = await self._unpacked(artifact, env, model_dir)
            chosen = registry.choose(runtime, model_dir, env, image)
        model = Model(
            name,
            artifact,
            str(model_dir),
            chosen,
            image,
            env,
            None,  # type: ignore[arg-type]  # the store stamps it
            dict(details or {}),
            package,
        )
        return self.repo.add_model(model)

    async def create_containers_model(
        self,
        name: str,
        containers: list[ContainerDef],
        mode: str,
        details: Mapping[str, Any] | None = None,
    ) -> Model:
        """Register a model of several containers, run in series (an inference pipeline) or
        invoked directly; each container's artifact is unpacked now."""
        check_name(name, "ModelName")
        if self.repo.has_model(name):
            raise AlreadyExists(
                f"model {name!r} already exists", field="name", resource=("model", name)
            )
        check_containers(containers, mode)
        entries: list[dict[str, object]] = []
        environment: dict[str, str] = {}
        for container in containers:
            env = {str(k): str(v) for k, v in container.environment.items()}
            check_environment(env, f"Containers.{container.hostname}.Environment")
            directory = await asyncio.to_thread(self.artifacts.unpack, container.artifact)
            runtime = registry.choose(None, directory, env, container.image)
            entries.append({"hostname": container.hostname, "directory": str(directory),
                            "runtime": runtime, "environment": env})  # fmt: skip
            environment.update(env)
        folder = await asyncio.to_thread(write_manifest, self.artifacts.root, mode, entries)
        first = containers[0]
        model = Model(
            name,
            first.artifact,
            str(folder),
            CONTAINERS,
            first.image,
            environment,
            None,  # type: ignore[arg-type]  # the store stamps it
            dict(details or {}),
        )
        return self.repo.add_model(model)

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
            # An async endpoint's variant may start with none: a request wakes one.
            least = 0 if AsyncConfig.from_details(config.details) else 1
            check_range(v.instance_count, "InitialInstanceCount", least, MAX_INSTANCES)
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
                self.artifacts.objects.writable(config.data_capture.destination, "DestinationS3Uri")
        sticky = config.sticky_header
        if sticky is not None:
            sticky = check_header_name(sticky, "StickyHeader")
        return self.repo.add_config(replace(config, sticky_header=sticky))

    def check_config(self, config: EndpointConfig) -> None:
        """Raise if `config` may not go live now (see `config_checks`)."""
        for check in self.config_checks:
            check(config)

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
        self.check_config(config)
        endpoint = self.repo.add_endpoint(name, config_name, endpoint_variants(config, "Creating"))
        self.router.withdraw(name, reason="it is being created")
        self._spawn(name, self._provision(name, config))
        return endpoint

    async def update_capacity(
        self,
        name: str,
        weights: Mapping[str, float] | None = None,
        instances: Mapping[str, int] | None = None,
    ) -> Endpoint:
        """Change weights and instance counts of live variants (UpdateEndpointWeightsAndCapacities).

        New weights take effect at once, in one table swap. New instance counts are reached
        in the background while the endpoint is Updating: new instances join once loaded,
        removed ones leave the table first and stop once their requests are answered.
        """
        weights = dict(weights or {})
        instances = dict(instances or {})
        endpoint = self.repo.get_endpoint(name)
        live = self.live.get(name)
        if endpoint.status is not EndpointStatus.IN_SERVICE or live is None:
            raise InvalidState(
                f"endpoint {name!r} is {endpoint.status.value}, not InService; "
                "one update at a time",
                field="EndpointName",
            )
        if name in self.resizing:
            raise InvalidState(self.resizing_reason(name), field="EndpointName")
        if not weights and not instances:
            raise ValidationError(
                "give at least one weight or instance count", field="DesiredWeightsAndCapacities"
            )
        for variant, weight in weights.items():
            current = endpoint.variant(variant)
            if current is None or current.kind is not VariantKind.PRODUCTION:
                raise ValidationError(
                    f"{variant!r} is not a production variant of endpoint {name!r}",
                    field="VariantName",
                )
            check_range(weight, "DesiredWeight", 0)
        for variant, count in instances.items():
            if endpoint.variant(variant) is None:
                raise ValidationError(
                    f"{variant!r} is not a variant of endpoint {name!r}", field="VariantName"
                )
            check_range(count, "DesiredInstanceCount", 1, MAX_INSTANCES)
        merged = {
            v.name: weights.get(v.name, v.current_weight)
            for v in endpoint.variants
            if v.kind is VariantKind.PRODUCTION
        }
        if sum(merged.values()) <= 0:
            raise ValidationError(
                "at least one production variant needs a weight above 0", field="DesiredWeight"
            )
        if weights:
            endpoint = self._publish(self.repo.set_weights(name, weights), live)
        running = {v.name: v.current_instance_count for v in endpoint.variants}
        changed = {v: n for v, n in instances.items() if running[v] != n}
        if changed:
            endpoint = self.repo.set_desired_instances(name, changed)
            self._spawn(name, self._scale(name, live, changed), "scale")
        return endpoint

    async def rewire(self, name: str, config: EndpointConfig) -> Endpoint:
        """Serve `config`, which has the running config's production variants: only shadows
        are added or removed (a shadow test starting or ending).

        Production workers keep serving throughout. Shadows only `config` has start first,
        then one table swap makes `config` live, then shadows it drops stop once their
        queued copies are sent. If a new shadow cannot start, nothing changes and the
        loader's error is raised.
        """
        endpoint = self.repo.get_endpoint(name)
        live = self.live.get(name)
        if (
            endpoint.status is not EndpointStatus.IN_SERVICE
            or live is None
            or live.green is not None
            or name in self.tasks
        ):
            raise InvalidState(
                f"endpoint {name!r} is {endpoint.status.value}, not InService; "
                "one update at a time",
                field="EndpointName",
            )
        blue = live.blue
        if _production_models(config) != _production_models(blue.config):
            raise ValidationError(
                f"endpoint config {config.name!r} changes the production variants of "
                f"endpoint {name!r}; that takes an update",
                field="EndpointConfigName",
            )
        fleet = Fleet(config)
        for spec in config.variants:
            running = blue.variants.get(spec.name)
            if running is not None and running.spec.model_name == spec.model_name:
                # Fresh totals: a fleet's figures are keyed by its config.
                fleet.variants[spec.name] = LiveVariant(
                    spec,
                    running.instances,
                    running.metrics,
                    tallies=running.tallies,
                    sender=running.sender,
                )
        starting = [s for s in config.variants if s.name not in fleet.variants]
        self.repo.set_endpoint_status(name, EndpointStatus.UPDATING)
        try:
            results = await asyncio.gather(
                *(self._start_variant(name, fleet, s, s.instance_count) for s in starting),
                return_exceptions=True,
            )
            failures = [r for r in results if isinstance(r, BaseException)]
            if failures:
                new = {s.name for s in starting}
                started = {n: h for n, h in fleet.variants.items() if n in new}
                await self._stop_fleet(name, Fleet(config, started), drain=False)
                raise failures[0]
        except BaseException:
            self.repo.set_endpoint_status(name, EndpointStatus.IN_SERVICE, endpoint.failure_reason)
            raise
        records = {v.name: v for v in endpoint.variants}
        variants = [records.get(v.name, v) for v in endpoint_variants(config, "InService")]
        self.repo.switch_config(name, config.name, variants)
        live.blue = fleet
        endpoint = self._publish(
            self.repo.set_endpoint_status(name, EndpointStatus.IN_SERVICE), live
        )
        reused = {id(h.instances) for h in fleet.variants.values()}
        dropped = {n: h for n, h in blue.variants.items() if id(h.instances) not in reused}
        await self._stop_fleet(name, Fleet(blue.config, dropped), drain=True)
        return endpoint

    def set_shadow_sampling(self, name: str, variant: str, percentage: int) -> Endpoint:
        """Change the share of production requests copied to a live shadow; at once."""
        check_range(percentage, "SamplingPercentage", 0, 100)
        current = self.repo.get_endpoint(name).variant(variant)
        if current is None or current.kind is not VariantKind.SHADOW:
            raise ValidationError(
                f"{variant!r} is not a shadow variant of endpoint {name!r}", field="VariantName"
            )
        endpoint = self.repo.set_sampling(name, variant, percentage)
        live = self.live.get(name)
        return self._publish(endpoint, live) if live is not None else endpoint

    async def wake(self, name: str) -> bool:
        """Start instances for the weighted production variants of an async endpoint that
        run none, as many as configured (at least one): a request is waiting. True if
        any started; raises what a loader raised."""
        return await self._run_instances(
            name,
            lambda spec, running, weight: (
                max(1, spec.instance_count) if running == 0 and weight > 0 else None
            ),
        )

    async def rest(self, name: str) -> bool:
        """Stop the instances of an idle async endpoint's variants that may run none
        (configured with 0, or every one under `async_scale_to_zero`); True if any did."""
        return await self._run_instances(
            name,
            lambda spec, running, weight: (
                0
                if running and (spec.instance_count == 0 or self.settings.async_scale_to_zero)
                else None
            ),
        )

    async def autoscale(self, name: str, variant: str, count: int) -> bool:
        """Run `count` instances of a production variant with no update (the autoscaler):
        the endpoint stays InService, DesiredInstanceCount shows the goal and
        CurrentInstanceCount follows. False (nothing done) while the endpoint is not
        InService, an update runs or another resize is under way; raises what a loader
        raised."""
        return await self._run_instances(
            name, lambda spec, running, weight: count if spec.name == variant else None
        )

    def resizable(self, name: str, endpoint: Endpoint | None = None) -> bool:
        """Whether instance counts may change with no update now: the endpoint is live and
        InService, and no update, deletion or other resize is under way (`endpoint`: its
        record, if the caller has it)."""
        live = self.live.get(name)
        if live is None or live.green is not None or name in self.tasks or name in self.resizing:
            return False
        try:
            endpoint = endpoint or self.repo.get_endpoint(name)
        except NotFound:
            return False
        return endpoint.status is EndpointStatus.IN_SERVICE

    def _cold(self, endpoint: str, variant: str) -> None:
        if self.on_cold is not None:
            self.on_cold(endpoint, variant)

    def resizing_reason(self, name: str) -> str:
        return (
            f"endpoint {name!r} is changing its instance count (autoscaling); "
            "retry when that is done"
        )

    async def _run_instances(
        self, name: str, want: Callable[[VariantSpec, int, float], int | None]
    ) -> bool:
        """Start or stop instances of a live endpoint with no update: it stays InService
        and CurrentInstanceCount follows. Nothing is done while an update runs."""
        live = self.live.get(name)
        endpoint = self.repo.get_endpoint(name)
        if live is None or not self.resizable(name, endpoint):
            return False
        counts: dict[str, int] = {}
        for spec in live.blue.config.production:
            record = endpoint.variant(spec.name)
            running = live.blue.variants[spec.name].instances.instance_count
            wanted = want(spec, running, record.current_weight if record else 0.0)
            if wanted is not None and wanted != running:
                counts[spec.name] = wanted
        if not counts:
            return False
        self.resizing.add(name)
        self.repo.reset_desired_instances(name, counts)
        try:
            await self.scale_fleet(name, False, counts)
        finally:
            self.resizing.discard(name)
            variants = live.blue.variants
            now_running = {v: variants[v].instances.instance_count for v in counts}
            with contextlib.suppress(NotFound):  # deleted meanwhile
                self.repo.set_current_instances(name, now_running)
                self.repo.reset_desired_instances(name, now_running)
        return True

    async def _scale(self, name: str, live: LiveEndpoint, counts: Mapping[str, int]) -> None:
        try:
            await self.scale_fleet(name, False, counts)
        except Exception as exc:  # noqa: BLE001 - a failed scale-up keeps the old capacity
            reason = _reason(exc)
            log.error("scaling endpoint %s failed: %s", name, reason)
            self.repo.reset_desired_instances(name, live.blue.instance_counts())
            self.repo.set_endpoint_status(
                name, EndpointStatus.IN_SERVICE, f"scaling failed: {reason}"
            )
            return
        self.repo.set_endpoint_status(name, EndpointStatus.IN_SERVICE)

    async def delete_endpoint(self, name: str) -> None:
        endpoint = self.repo.get_endpoint(name)
        if endpoint.status is EndpointStatus.DELETING and name in self.tasks:
            raise InvalidState(f"endpoint {name!r} is already being deleted", field="EndpointName")
        self.repo.set_endpoint_status(name, EndpointStatus.DELETING)
        for hook in self.on_delete:
            await hook(name)
        pending = self.tasks.pop(name, None)
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pending
        await self._retire(name)
        self.repo.delete_endpoint(name)
        self.router.withdraw(name)

    async def restore(self, updating: Collection[str] = ()) -> None:
        """After a restart: bring back every endpoint that was serving, finish deletions.

        An endpoint comes back on the config it was last InService on, with the weights,
        instance counts and failure reason it had. Endpoints in `updating` end up Updating
        rather than InService: the deployment service resumes their update.
        """
        for endpoint in self.repo.list_endpoints():
            if endpoint.status is EndpointStatus.DELETING:
                self.repo.delete_endpoint(endpoint.name)
            elif endpoint.status is not EndpointStatus.FAILED:
                if endpoint.status is not EndpointStatus.CREATING:
                    self.repo.set_endpoint_status(endpoint.name, EndpointStatus.SYSTEM_UPDATING)
                self.router.withdraw(
                    endpoint.name, reason="it is starting after a restart", restoring=True
                )
                try:
                    config = self.repo.get_config(endpoint.config_name)
                except SluiceError as exc:
                    self.repo.set_endpoint_status(endpoint.name, EndpointStatus.FAILED, exc.message)
                    continue
                counts = {v.name: v.desired_instance_count for v in endpoint.variants}
                status = (
                    EndpointStatus.UPDATING
                    if endpoint.name in updating
                    else EndpointStatus.IN_SERVICE
                )
                self._spawn(
                    endpoint.name,
                    self._provision(endpoint.name, config, counts, status, endpoint.failure_reason),
                )

    async def mirror(
        self, name: str, endpoint: Endpoint | None, update: FollowedUpdate | None = None
    ) -> None:
        """Another gateway sharing the database changed endpoint `name` (None: deleted):
        serve it here as the database says, writing nothing there. Its fleet here starts
        (or, for a new config, starts and takes over from the old one), its weights and
        sampling are published, its instance counts followed; a deleted or failed endpoint
        stops here. `update`: the update another gateway drives on it, whose green fleet
        runs here too, with the same split. Nothing is done while this gateway is changing
        the endpoint itself."""
        if name in self.tasks or name in self.resizing:
            return
        live = self.live.get(name)
        gone = (EndpointStatus.DELETING, EndpointStatus.FAILED)
        if endpoint is None or endpoint.status in gone:
            if live is not None:
                await self._retire(name)
            if endpoint is None or endpoint.status is EndpointStatus.DELETING:
                self.router.withdraw(name)
            else:
                self.router.withdraw(name, reason=f"it failed: {endpoint.failure_reason}")
            return
        counts = {v.name: v.desired_instance_count for v in endpoint.variants}
        if live is None:
            self.router.withdraw(name, reason="it is starting on this gateway")
            self._spawn(name, self._mirror_fleet(name, endpoint.config_name, counts), "mirror")
            return
        if live.blue.config.name != endpoint.config_name:
            if live.green is not None and live.green.config.name == endpoint.config_name:
                # Another gateway's update completed: green, running here too, is the
                # fleet now (the database says so already).
                promotion = self.promote_green(name, lambda: endpoint)
                self._spawn(name, promotion, "mirror")
            else:
                self._spawn(name, self._mirror_fleet(name, endpoint.config_name, counts), "mirror")
            return
        if update is not None:
            self._spawn(name, self._mirror_update(name, update), "mirror update")
            return
        if live.green is not None:  # the update ended and green was not promoted
            green = self.drop_green(name)
            if green is not None:
                self._spawn(name, self.stop_fleet(name, green), "mirror rollback")
            return
        running = live.blue.instance_counts()
        changed = {v: n for v, n in counts.items() if v in running and running[v] != n}
        self._publish(endpoint, live)
        if changed:
            self._spawn(name, self.scale_fleet(name, False, changed), "mirror scale")

    async def _mirror_update(self, name: str, update: FollowedUpdate) -> None:
        """Follow another gateway's update: its green fleet, its instance counts, its split."""
        live = self.live_endpoint(name)
        try:
            if live.green is None or live.green.config.name != update.config_name:
                config = self.repo.get_config(update.config_name)
                counts = {v.name: 0 for v in config.production} if update.rolling else None
                await self.start_green(name, config, counts)
            if update.counts:
                await self.scale_fleet(name, True, {n: c[1] for n, c in update.counts.items()})
            self.shift(name, update.green_shares)
            if update.counts:
                await self.scale_fleet(name, False, {n: c[0] for n, c in update.counts.items()})
        except Exception as exc:  # noqa: BLE001 - this gateway keeps serving blue alone
            log.error("endpoint %s: the update's green fleet cannot run here: %s", name, exc)
            green = self.drop_green(name) if live.green is not None else None
            if green is not None:
                await self.stop_fleet(name, green)

    async def _mirror_fleet(self, name: str, config_name: str, counts: Mapping[str, int]) -> None:
        try:
            config = self.repo.get_config(config_name)
            fleet = await self._start_fleet(name, config, counts)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - this gateway cannot serve it; others may
            reason = _reason(exc)
            log.error("endpoint %s cannot start on this gateway: %s", name, reason)
            if name not in self.live:
                self.router.withdraw(name, reason=f"it cannot start on this gateway: {reason}")
            return
        live = self.live.get(name)
        old = None
        if live is None:
            live = self.live[name] = LiveEndpoint(fleet)
        else:
            old, live.blue = live.blue, fleet
        try:
            endpoint = self.repo.get_endpoint(name)
        except NotFound:
            await self._retire(name)
            return
        self._publish(endpoint, live)
        log.info("endpoint %s serves %s on this gateway", name, config.name)
        if old is not None:
            await self._stop_fleet(name, old, drain=True)

    async def wait_idle(self, name: str | None = None) -> None:
        """Wait until no endpoint (or `name`) is being created, restored or scaled."""
        while True:
            pending = [t for n, t in self.tasks.items() if name is None or n == name]
            if not pending:
                return
            await asyncio.gather(*pending, return_exceptions=True)

    async def close(self) -> None:
        for task in list(self.tasks.values()):
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        await asyncio.gather(*(self._retire(name) for name in list(self.live)))

    def worker_usage(self) -> Iterator[tuple[str, str, dict[str, tuple[float, float]]]]:
        for name, live in list(self.live.items()):
            for fleet in live.fleets:
                for variant, handle in fleet.variants.items():
                    yield name, variant, handle.instances.usage()

    # -- fleets, for the deployment controller

    def live_endpoint(self, name: str) -> LiveEndpoint:
        live = self.live.get(name)
        if live is None:
            raise InvalidState(f"endpoint {name!r} has no running workers", field="EndpointName")
        return live

    async def start_green(
        self, name: str, config: EndpointConfig, counts: Mapping[str, int] | None = None
    ) -> Fleet:
        """Start a fleet for `config` beside the endpoint's blue one; it takes no traffic yet.

        Raises the loader's error if a variant cannot start (nothing is left running).
        """
        live = self.live_endpoint(name)
        stale = self.drop_green(name)
        if stale is not None:
            await self.stop_fleet(name, stale)
        fleet = await self._start_fleet(name, config, counts)
        live.green = fleet
        live.green_shares = {}
        return fleet

    def shift(self, name: str, green_shares: Mapping[str, float]) -> None:
        """Split each production variant between blue and green; one atomic table swap."""
        live = self.live_endpoint(name)
        live.green_shares = dict(green_shares)
        self._publish(self.repo.get_endpoint(name), live)

    def drop_green(self, name: str) -> Fleet | None:
        """All traffic back to blue in one table swap; returns green for `stop_fleet`."""
        live = self.live_endpoint(name)
        green = live.green
        live.green, live.green_shares = None, {}
        self._publish(self.repo.get_endpoint(name), live)
        return green

    async def stop_fleet(self, name: str, fleet: Fleet) -> None:
        """Stop a fleet that no longer takes traffic, once its requests are answered."""
        await self._stop_fleet(name, fleet, drain=True)

    async def promote_green(self, name: str, commit: Callable[[], Endpoint]) -> Endpoint:
        """Make green the endpoint's fleet: `commit` records it in the store, then blue stops.

        `commit` runs between the table swap and blue's stop, so the store says green
        exactly when green alone serves.
        """
        live = self.live_endpoint(name)
        if live.green is None:
            raise InvalidState(f"endpoint {name!r} has no green fleet to promote")
        blue = live.blue
        live.blue, live.green, live.green_shares = live.green, None, {}
        endpoint = commit()
        self._publish(endpoint, live)
        await self._stop_fleet(name, blue, drain=True)
        return endpoint

    async def scale_fleet(self, name: str, green: bool, counts: Mapping[str, int]) -> None:
        """Set instance counts of variants of the blue or green fleet (rolling updates)."""
        live = self.live_endpoint(name)
        fleet = live.green if green else live.blue
        if fleet is None:
            raise InvalidState(f"endpoint {name!r} has no green fleet")
        await asyncio.gather(*(fleet.variants[v].instances.scale(n) for v, n in counts.items()))
        for variant, count in counts.items():
            sender = fleet.variants[variant].sender
            if sender is not None:
                sender.resize(self.settings.shadow_concurrency_per_instance * count)

    def fleet_stats(self, name: str, shadows: bool = False) -> dict[tuple[str, str], Window]:
        """(endpoint config, variant) to its totals so far, for every live fleet of `name`:
        production variants, and with `shadows` the shadows' own (never part of the
        endpoint's figures that alarms and guards judge)."""
        live = self.live.get(name)
        if live is None:
            return {}
        return {
            (fleet.config.name, variant): handle.stats.snapshot()
            for fleet in live.fleets
            for variant, handle in (fleet.variants if shadows else fleet.production).items()
        }

    def tallies(self, name: str) -> dict[str, list[Tallies]]:
        """Variant (production or shadow) to its fleets' figures beyond requests', over
        every live fleet of `name` (once for instances two fleets share)."""
        live = self.live.get(name)
        found: dict[str, list[Tallies]] = {}
        for fleet in live.fleets if live is not None else ():
            for variant, handle in fleet.variants.items():
                kept = found.setdefault(variant, [])
                if not any(t is handle.tallies for t in kept):
                    kept.append(handle.tallies)
        return found

    def instance_counts(self, name: str) -> dict[str, int]:
        """Variant (production or shadow) to its running instances, over every live fleet
        of `name`."""
        live = self.live.get(name)
        counts: dict[str, int] = {}
        for fleet in live.fleets if live is not None else ():
            for variant, handle in fleet.variants.items():
                counts[variant] = counts.get(variant, 0) + len(handle.instances.pids)
        return counts

    # -- internals

    def _spawn(
        self, name: str, work: Coroutine[object, object, object], what: str = "provision"
    ) -> None:
        task = asyncio.create_task(work, name=f"{what} {name}")
        self.tasks[name] = task
        task.add_done_callback(
            lambda t: self.tasks.pop(name, None) if self.tasks.get(name) is t else None
        )

    async def _provision(
        self,
        name: str,
        config: EndpointConfig,
        counts: Mapping[str, int] | None = None,
        status: EndpointStatus = EndpointStatus.IN_SERVICE,
        failure_reason: str | None = None,
    ) -> None:
        try:
            fleet = await self._start_fleet(name, config, counts)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any start failure fails the endpoint
            reason = _reason(exc)
            log.error("endpoint %s failed: %s", name, reason)
            self.repo.set_endpoint_status(name, EndpointStatus.FAILED, reason)
            self.router.withdraw(name, reason=f"it failed: {reason}")
            return
        live = LiveEndpoint(fleet)
        self.live[name] = live
        endpoint = self.repo.set_endpoint_status(name, status, failure_reason)
        self._publish(endpoint, live)
        log.info("endpoint %s is in service", name)

    async def _start_fleet(
        self, endpoint: str, config: EndpointConfig, counts: Mapping[str, int] | None = None
    ) -> Fleet:
        """Start every variant of `config`; if one fails, stop the others and raise."""
        fleet = Fleet(config)
        counts = counts or {}
        starts = [
            self._start_variant(endpoint, fleet, v, counts.get(v.name, v.instance_count))
            for v in config.variants
        ]
        try:
            results = await asyncio.gather(*starts, return_exceptions=True)
        except asyncio.CancelledError:
            await self._stop_fleet(endpoint, fleet, drain=False)
            raise
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            await self._stop_fleet(endpoint, fleet, drain=False)
            raise failures[0]
        return fleet

    async def _start_variant(
        self, endpoint: str, fleet: Fleet, spec: VariantSpec, count: int
    ) -> None:
        model = await self._here(self.repo.get_model(spec.model_name))
        metrics = self.metrics.for_variant(endpoint, spec.name)
        shadow = spec.kind is VariantKind.SHADOW
        memory_mb = self.settings.instance_memory_mb.get(spec.instance_type or "")
        serves_many = model.runtime == MULTI_MODEL
        if serves_many:
            source = ModelSource(model.artifact_uri, self.artifacts, model.environment, model.image)
            pinned = await source.pin(preload_keys(model.environment))
            model = replace(model, environment=worker_environment(model, memory_mb, pinned))
        instances = await self.backend.start_variant(
            f"{endpoint}/{spec.name}@{fleet.config.name}",
            model,
            count,
            metrics.restarts.inc,
            nice=self.settings.shadow_worker_nice if shadow else 0,
            memory_mb=memory_mb,
            instance_type=spec.instance_type,
        )
        tallies = Tallies()
        if model.runtime == CONTAINERS:
            mode, hostnames = read_manifest(Path(model.model_dir))
            instances = ContainerInstances(
                instances,
                mode,
                hostnames,
                self.metrics.for_containers(endpoint, spec.name, hostnames),
                tallies,
            )
        if serves_many:
            pool = instances
            tallies.gauge("LoadedModelCount", "Count", lambda: pool.loaded_models)
            instances = MultiModelInstances(
                pool,
                source,
                self.metrics.for_multi_model(endpoint, spec.name, lambda: pool.loaded_models),
                tallies,
                Readiness(
                    self.settings.target_model_ready_s, self.settings.target_model_load_timeout_s
                ),
                caching=model.environment.get("SLUICE_MODEL_CACHE", "").lower() != "disabled",
            )
        handle = LiveVariant(spec, instances, metrics, tallies=tallies)
        fleet.variants[spec.name] = handle
        if not shadow:
            instances.on_empty = functools.partial(self._cold, endpoint, spec.name)
        if shadow:
            handle.sender = ShadowSender(
                endpoint,
                spec.name,
                instances,
                metrics,
                self.capture,
                self.settings.shadow_queue_size,
                self.settings.shadow_concurrency_per_instance * count,
                handle.stats,
            )
            handle.sender.start()

    async def _here(self, model: Model) -> Model:
        """`model` with its folder on this machine: a model registered by another gateway
        sharing the database names a folder of that gateway's, which is unpacked here
        afresh from the artifact (into the same content-addressed place) when missing."""
        if model.runtime in INTERNAL or Path(model.model_dir).is_dir():
            return model
        log.info("model %s: unpacking %s on this gateway", model.name, model.artifact_uri)
        model_dir = await self._unpacked(model.artifact_uri, model.environment)
        return replace(model, model_dir=str(model_dir))

    async def _unpacked(
        self, artifact: str, environment: Mapping[str, str], model_dir: Path | None = None
    ) -> Path:
        """The model's folder: `artifact` unpacked (unless `model_dir` is given), with the
        code SAGEMAKER_SUBMIT_DIRECTORY names added."""
        if model_dir is None:
            model_dir = await asyncio.to_thread(self.artifacts.unpack, artifact)
        code = environment.get(SUBMIT_DIRECTORY)
        if code:
            model_dir = await asyncio.to_thread(self.artifacts.with_code, model_dir, code)
        return model_dir

    async def _stop_fleet(self, endpoint: str, fleet: Fleet, drain: bool) -> None:
        """Let in-flight requests finish (when `drain`), then stop the fleet's workers."""
        handles = list(fleet.variants.values())
        grace = self.settings.shutdown_grace_s if drain else 0.0
        if drain:
            await asyncio.gather(*(h.instances.drain(grace) for h in handles))
        await asyncio.gather(*(h.sender.stop(grace) for h in handles if h.sender))
        await asyncio.gather(*(h.instances.stop() for h in handles))

    async def _retire(self, name: str, drain: bool = True) -> None:
        """Stop routing, let in-flight requests finish, flush capture, stop workers."""
        self.router.withdraw(name)
        live = self.live.pop(name, None)
        if live is None:
            return
        await asyncio.gather(*(self._stop_fleet(name, f, drain) for f in live.fleets))
        await self.capture.flush(name)

    def _publish(self, endpoint: Endpoint, live: LiveEndpoint) -> Endpoint:
        """Swap in the endpoint's new route table (keeping sticky callers where they were)."""
        if live.blue.config.sticky_header:
            layout = tuple(rebalance(endpoint.sticky_layout, endpoint.production_weights()))
            if layout != endpoint.sticky_layout:
                endpoint = self.repo.set_sticky_layout(endpoint.name, layout)
        self.router.publish(
            route_table(endpoint, live, self.settings.capture_dir, self.artifacts.objects)
        )
        return endpoint


@dataclass(frozen=True)
class FollowedUpdate:
    """Where another gateway's update of an endpoint stands, for this gateway to follow."""

    config_name: str
    """The config the update moves to (its green fleet)."""
    rolling: bool
    """A rolling update: green starts with no instance and grows step by step."""
    green_shares: dict[str, float]
    """The split of the step it is at (empty: before its first step, or rolling back)."""
    counts: dict[str, tuple[int, int]]
    """Rolling updates: (blue, green) instances per variant at that step."""


def endpoint_variants(config: EndpointConfig, status: str) -> list[EndpointVariant]:
    """An endpoint's variant records for a config about to serve (weights not yet live)."""
    return [
        EndpointVariant(
            v.name,
            v.model_name,
            v.kind,
            0.0,
            v.initial_weight,
            0,
            v.instance_count,
            v.sampling_percentage,
            status,
        )
        for v in config.variants
    ]


def _production_models(config: EndpointConfig) -> dict[str, str]:
    return {v.name: v.model_name for v in config.production}


def _reason(exc: BaseException) -> str:
    return exc.message if isinstance(exc, SluiceError) else f"{type(exc).__name__}: {exc}"
