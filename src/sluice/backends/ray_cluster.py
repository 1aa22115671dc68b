"""The Ray backend: each instance is a Ray actor keeping a worker process on a cluster node.

Ray places the actors by the resources their instance type asks for (spread across
nodes), and restarts them when their worker or their node dies; the gateway keeps its own
data path: one TCP connection per worker, the same framed protocol as a local worker's
Unix socket, so routing, batching, retries, ejection, drain and scale are the local pool's.

Needs `pip install 'sluice[ray]'`; the cluster's nodes need sluice installed too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from sluice.backends.base import Backend, ChunkRunner, VariantInstances, pool_settings
from sluice.entities import Model
from sluice.errors import ModelLoadError, ValidationError, WorkerUnavailable
from sluice.runtimes.registry import INTERNAL, serving_environment
from sluice.settings import Settings
from sluice.workers.client import WorkerConnection
from sluice.workers.pool import Instance, PoolSettings, WorkerPool, WorkerSpec

log = logging.getLogger(__name__)

USAGE_EVERY_S = 5.0
"""How often an instance's CPU and memory are read from its node."""


@dataclass(frozen=True)
class Placement:
    """What every instance of one variant needs from the cluster."""

    actor_class: Any
    """`ray.remote(WorkerActor)` with the variant's resources and restart policy."""
    digest: str
    bundle: list[Any]
    """`[ObjectRef]` of the model's tar (a list: Ray must not fetch it for the call)."""
    token: bytes
    resources: dict[str, float]
    """For error messages: what one instance asks for."""


class RayInstance(Instance):
    """One instance on the cluster: its actor, and a TCP connection to its worker."""

    def __init__(
        self,
        placement: Placement,
        spec: WorkerSpec,
        index: int,
        settings: PoolSettings,
        on_change: Callable[[], None],
        on_restart: Callable[[], None],
    ) -> None:
        super().__init__(spec, index, settings, on_change, on_restart)
        self.placement = placement
        self.actor: Any = None
        self.where: dict[str, Any] = {}
        """The worker's address as its actor reported it: host, port, pid, node."""
        self.figures: tuple[float, float] | None = None
        self.poller: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        pid = self.where.get("pid")
        return pid if isinstance(pid, int) else None

    @property
    def node(self) -> str | None:
        """The Ray node id the worker runs on."""
        node = self.where.get("node")
        return node if isinstance(node, str) else None

    def usage(self) -> tuple[str, float, float] | None:
        if self.figures is None or not self.alive:
            return None
        return (f"{self.node}:{self.pid}", *self.figures)

    async def start(self) -> None:
        """Create the actor (or reach the one Ray restarted) and connect to its worker."""
        import ray

        if self.actor is None:
            p = self.placement
            self.actor = p.actor_class.remote(
                self.name,
                p.digest,
                p.bundle,
                self.spec.runtime,
                dict(self.spec.environment),
                self.settings.environment_names,
                self.spec.memory_mb or 0,
                self.spec.nice,
                self.settings.load_timeout_s,
                p.token,
            )
        # Waits while Ray places the actor, restarts it, and the model loads.
        call = self.actor.address.options(max_task_retries=-1).remote()
        try:
            where: dict[str, Any] = await asyncio.wait_for(call, self.settings.load_timeout_s)
        except TimeoutError:
            self._forget_actor()
            raise ModelLoadError(
                f"{self.name}: no worker was ready within {self.settings.load_timeout_s:g} s "
                f"(setting model_load_timeout_s): is there a node with "
                f"{_resources_text(self.placement.resources)} free?"
            ) from None
        except ray.exceptions.RayError as exc:
            self._forget_actor()
            raise WorkerUnavailable(f"{self.name}: its actor died: {exc}") from None
        if "error" in where:
            self._forget_actor()
            raise ModelLoadError(f"{self.name}: {where['error']}")
        self.where = where
        connection = await WorkerConnection.open_tcp(
            where["host"], where["port"], self.placement.token, self.name, on_timeout=self.kill
        )
        self.connection = connection
        await connection.ping(self.settings.load_timeout_s)
        self._connected(connection, int(where.get("loaded", 0)))
        if self.poller is None:
            self.poller = asyncio.create_task(self._poll_usage(), name=f"usage {self.name}")

    async def _down(self) -> object:
        assert self.connection is not None
        await self.connection.closed
        return f"(node {self.node}, pid {self.pid})"

    async def _poll_usage(self) -> None:
        import ray

        while not self.stopping:
            actor = self.actor
            if actor is not None and self.alive:
                with contextlib.suppress(ray.exceptions.RayError, TimeoutError):
                    self.figures = await asyncio.wait_for(actor.usage.remote(), USAGE_EVERY_S)
            await asyncio.sleep(USAGE_EVERY_S)

    def _forget_actor(self) -> None:
        """Kill the actor for good: the next start creates a new one."""
        import ray

        if self.actor is not None:
            with contextlib.suppress(Exception):
                ray.kill(self.actor, no_restart=True)
        self.actor = None

    def kill(self) -> None:
        """The worker is stuck: kill its actor, which Ray restarts (a new worker)."""
        import ray

        if self.actor is not None:
            log.warning("worker %s is stuck; killing its actor (Ray restarts it)", self.name)
            with contextlib.suppress(Exception):
                ray.kill(self.actor, no_restart=False)

    async def stop(self) -> None:
        self.stopping = True
        if self.connection is not None:
            self.connection.close()
        self._forget_actor()
        for task in (self.supervisor, self.poller):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


class RayBackend(Backend):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.token = secrets.token_urlsafe(32).encode()
        """Opens a connection to any of this gateway's workers."""
        self.bundles: dict[Path, tuple[str, list[Any]]] = {}
        """Each model folder's digest and `[ObjectRef]` of its tar, put into the cluster
        once (kept here: the cluster holds the object while the gateway does)."""
        self.connected = False
        self.pool_settings = pool_settings(settings, Path("."))  # no sockets: TCP

    async def _connect(self) -> None:
        if self.connected:
            return
        import ray

        address = self.settings.ray_address
        await asyncio.to_thread(
            partial(
                ray.init,
                address=address,
                namespace=self.settings.ray_namespace,
                ignore_reinit_error=True,
                logging_level=logging.WARNING,
                # A Ray instance of the gateway's own (no address) needs no dashboard.
                include_dashboard=None if address else False,
            )
        )
        self.connected = True

    def _refuse_internal(self, model: Model) -> None:
        """Multi-model and multi-container models name folders of the gateway's store in
        their requests and manifests: no cluster node has them."""
        if model.runtime in INTERNAL:
            raise ValidationError(
                f"a {model.runtime} model runs on the local backend only, not on Ray (yet)",
                field="ModelName",
            )

    async def _bundle(self, model_dir: Path) -> tuple[str, list[Any]]:
        import ray

        from sluice.backends.ray_actor import pack_model

        known = self.bundles.get(model_dir)
        if known is None:
            digest, data = await asyncio.to_thread(pack_model, model_dir)
            known = self.bundles[model_dir] = (digest, [ray.put(data)])
        return known

    async def start_variant(
        self,
        label: str,
        model: Model,
        instance_count: int,
        on_restart: Callable[[], None],
        nice: int = 0,
        memory_mb: int | None = None,
        instance_type: str | None = None,
    ) -> VariantInstances:
        self._refuse_internal(model)
        import ray

        from sluice.backends.ray_actor import WorkerActor

        await self._connect()
        digest, bundle = await self._bundle(Path(model.model_dir))
        resources = instance_resources(self.settings, instance_type, memory_mb)
        options: dict[str, Any] = {
            "num_cpus": resources.get("CPU", 0.0),
            "num_gpus": resources.get("GPU", 0.0),
            "resources": {k: v for k, v in resources.items() if k not in ("CPU", "GPU", "memory")},
            "max_restarts": -1,
            "max_task_retries": 0,
            "scheduling_strategy": "SPREAD",
        }
        if "memory" in resources:
            options["memory"] = resources["memory"]
        placement = Placement(
            actor_class=ray.remote(WorkerActor).options(**options),
            digest=digest,
            bundle=bundle,
            token=self.token,
            resources=resources,
        )
        environment = serving_environment(model.environment, model.image)
        spec = WorkerSpec(label, Path(model.model_dir), model.runtime, environment, nice, memory_mb)
        pool = WorkerPool(
            spec, self.pool_settings, on_restart, instance_class=partial(RayInstance, placement)
        )
        await pool.start(instance_count)
        return pool

    async def chunk_runner(
        self, label: str, model: Model, instance_type: str | None, memory_mb: int | None
    ) -> ChunkRunner | None:
        """Batch transform on Ray Data: chunks mapped by a pool of actors holding the model."""
        from sluice.backends.ray_transform import run_chunks

        self._refuse_internal(model)
        await self._connect()
        digest, bundle = await self._bundle(Path(model.model_dir))
        placement = {
            "digest": digest,
            "bundle": bundle,
            "runtime": model.runtime,
            "environment": serving_environment(model.environment, model.image),
            "resources": instance_resources(self.settings, instance_type, memory_mb),
        }
        return partial(run_chunks, label, placement)

    async def close(self) -> None:
        self.bundles.clear()
        if self.connected:
            import ray

            await asyncio.to_thread(ray.shutdown)
            self.connected = False


def instance_resources(
    settings: Settings, instance_type: str | None, memory_mb: int | None
) -> dict[str, float]:
    """What one instance of `instance_type` asks of the cluster: the setting
    instance_resources' entry (CPU, GPU, custom resources), else one CPU; plus its memory
    (setting instance_memory_mb) as Ray's memory resource, in bytes."""
    resources = dict(settings.instance_resources.get(instance_type or "", {"CPU": 1.0}))
    if memory_mb:
        resources["memory"] = float(memory_mb) * 1024 * 1024
    return resources


def _resources_text(resources: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:g}" for name, value in sorted(resources.items()))
