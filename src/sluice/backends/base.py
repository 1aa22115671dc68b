"""The Backend contract: start, scale and stop a variant's instances."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Protocol

from sluice.entities import Model
from sluice.settings import Settings
from sluice.workers.client import Answer, ModelTarget
from sluice.workers.file_request import FileRequest
from sluice.workers.pool import PoolSettings

if TYPE_CHECKING:
    from pathlib import Path

    from sluice.backends.ray_transform import ChunkResult
    from sluice.workers.forking import Zygote
    from sluice.workers.transform import Chunk

ChunkRunner = Callable[[dict[int, tuple["Chunk", bytes]], int], AsyncIterator["ChunkResult"]]
"""Runs batch transform chunks (work item id to request and input bytes) on a pool of
the given size; yields each one's result as it finishes."""


class VariantInstances(Protocol):
    """The running instances of one variant, as a backend hands them back."""

    takes: str | None
    """What a request may name: TargetModel (a multi-model variant),
    TargetContainerHostname (containers invoked directly), or None."""

    on_empty: Callable[[], None] | None
    """Called when a request arrives while the variant runs no instance at all (scaled to
    zero); the request waits for one to start, up to the invocation timeout."""

    async def invoke(
        self, body: bytes, content_type: str, accept: str, target: str | None = None
    ) -> Answer:
        """Send one request to the least busy instance (`target`: what it names, for
        the variants that take one, which wrap these instances)."""

    async def invoke_model(
        self,
        target: ModelTarget,
        body: bytes,
        content_type: str,
        accept: str,
        timeout: float | None = None,
    ) -> Answer:
        """Send one request for one model of a multi-model variant (`timeout`: instead of
        the invocation timeout, when the model may have to be loaded first)."""

    async def invoke_file(self, request: FileRequest, timeout: float) -> str:
        """Answer the request in `input_path` into `output_path` (async inference)."""

    async def transform(self, chunk: bytes, timeout: float) -> dict[str, Any]:
        """Transform one batch chunk (`sluice.workers.transform.Chunk` as JSON); its summary."""

    @property
    def instance_count(self) -> int:
        """How many instances the variant runs (live or restarting)."""

    async def scale(self, count: int) -> None:
        """Start or stop instances until `count` run."""

    async def drain(self, timeout: float) -> None:
        """Wait (at most `timeout` s) until no request is in flight."""

    async def stop(self) -> None:
        """Stop every instance."""

    @property
    def pids(self) -> list[int]:
        """OS process ids of live instances (each on the machine it runs on)."""

    def usage(self) -> dict[str, tuple[float, float]]:
        """CPU seconds and resident bytes of each live instance's worker process, by a
        key unique to that process."""

    @property
    def restarts(self) -> int: ...

    @property
    def loaded_models(self) -> int:
        """Models loaded across the instances of a multi-model variant (0 otherwise)."""


class Backend(ABC):
    @abstractmethod
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
        """Start `instance_count` instances of `model`; raise ModelLoadError if it cannot load.

        Args:
            label: "endpoint/variant", for logs and error messages.
            model: the model to serve (its unpacked directory, runtime and environment).
            instance_count: how many instances to start.
            on_restart: called each time a dead instance is restarted.
            nice: lower scheduling priority (shadows); a backend may ignore it.
            memory_mb: the memory each instance may use (its instance type's limit).
            instance_type: SageMaker's InstanceType (what a cluster places it by).
        """

    async def chunk_runner(
        self, label: str, model: Model, instance_type: str | None, memory_mb: int | None
    ) -> ChunkRunner | None:
        """Where a batch transform's chunks run when the backend runs them itself (Ray
        Data on the Ray backend); None: on a variant's instances, started for the job."""
        return None

    def warm(self) -> None:  # noqa: B027 - a backend needs no warming unless it says so
        """Get ready for the first instances (workers are about to be restored)."""

    @abstractmethod
    async def close(self) -> None:
        """Release whatever the backend holds (sockets, cluster connections)."""


def pool_settings(
    settings: Settings, socket_dir: Path, zygote: Zygote | None = None
) -> PoolSettings:
    """How a backend's worker pools time, restart and eject their instances."""
    return PoolSettings(
        socket_dir=socket_dir,
        load_timeout_s=settings.model_load_timeout_s,
        backoff_s=settings.worker_restart_backoff_s,
        backoff_max_s=settings.worker_restart_backoff_max_s,
        invocation_timeout_s=settings.invocation_timeout_s,
        environment_names=tuple(settings.worker_environment),
        outlier_failures=settings.outlier_failures,
        outlier_max_ejected_percent=settings.outlier_max_ejected_percent,
        zygote=zygote,
    )
