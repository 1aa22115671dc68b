"""A multi-model variant: `TargetModel` keys under a prefix, unpacked on first use.

`MultiModelInstances` stands where a variant's worker pool stands (the route's backend,
the shadow sender's): it turns a request's TargetModel into the model's unpacked
directory (downloading and unpacking it the first time, once however many requests ask
at the same moment) and sends the request to the instance that model belongs to, whose
worker loads it if it has not yet (see `sluice.runtimes.multi_model`). New objects under
the prefix are served as soon as they are asked for; one already unpacked is not read
again (as on SageMaker, a changed model is uploaded under a new name).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from sluice.entities import Model
from sluice.errors import ValidationError
from sluice.gateway.fleet_stats import Tallies
from sluice.gateway.instances import TARGET_MODEL, WrappedInstances
from sluice.gateway.metrics import MultiModelMetrics
from sluice.runtimes import registry
from sluice.store.artifacts import ArtifactStore
from sluice.workers.batching import CacheOutcome
from sluice.workers.client import Answer, ModelTarget
from sluice.workers.file_request import FileRequest

if TYPE_CHECKING:
    from sluice.backends.base import VariantInstances

MAX_KEY = 1024
MICROSECONDS = "Microseconds"
CACHE_SHARE = 0.7
"""Of an instance type's memory, what its models may use by default."""


class ModelSource:
    """The models under one multi-model variant's prefix, unpacked into the artifact store."""

    def __init__(
        self,
        prefix: str,
        artifacts: ArtifactStore,
        environment: Mapping[str, str],
        image: str | None,
    ) -> None:
        self.prefix = prefix.rstrip("/")
        self.artifacts = artifacts
        self.environment = dict(environment)
        self.image = image
        self.targets: dict[str, ModelTarget] = {}
        self.pending: dict[str, asyncio.Future[ModelTarget]] = {}

    async def resolve(self, key: str) -> tuple[ModelTarget, float, bool]:
        """The unpacked model for `key`; the seconds this call waited for it to be
        downloaded and unpacked, and whether it was this call that did it."""
        found = self.targets.get(key)
        if found is not None:
            return found, 0.0, False
        started = time.perf_counter()
        pending = self.pending.get(key)
        if pending is not None:
            target = await asyncio.shield(pending)
            return target, time.perf_counter() - started, False
        check_key(key)
        future: asyncio.Future[ModelTarget] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieve)
        self.pending[key] = future
        try:
            target = await asyncio.to_thread(self._unpack, key)
        except BaseException as exc:
            future.set_exception(exc)
            raise
        finally:
            del self.pending[key]
        self.targets[key] = target
        future.set_result(target)
        return target, time.perf_counter() - started, True

    def _unpack(self, key: str) -> ModelTarget:
        uri = f"{self.prefix}/{key}"
        try:
            directory = self.artifacts.unpack(uri)
        except ValidationError as exc:
            raise ValidationError(
                f"Failed to download model data (prefix: {self.prefix}, key: {key}): "
                f"{exc.message}. Please ensure that there is an object located at the URL.",
                field="TargetModel",
            ) from None
        runtime = registry.choose(None, directory, self.environment, self.image)
        return ModelTarget(key, str(directory), runtime)


def worker_environment(model: Model, memory_mb: int | None) -> dict[str, str]:
    """A multi-model variant's worker environment: the model's, with the cache settings
    its container definition and instance type imply (the model's own win)."""
    out = dict(model.environment)
    container = model.details.get("PrimaryContainer") or {}
    if container.get("MultiModelConfig", {}).get("ModelCacheSetting") == "Disabled":
        out.setdefault("SLUICE_MODEL_CACHE", "disabled")
    if memory_mb:
        out.setdefault("SLUICE_MODEL_CACHE_MB", str(int(memory_mb * CACHE_SHARE)))
    return out


def check_key(key: str) -> None:
    """A TargetModel names an object under the prefix: 1 to 1,024 printable characters, a
    relative path that does not climb out of it."""
    if not 1 <= len(key) <= MAX_KEY or not key.isprintable():
        raise ValidationError(
            f"TargetModel must be 1 to {MAX_KEY:,} printable characters", field="TargetModel"
        )
    path = PurePosixPath(key)
    if path.is_absolute() or ".." in path.parts or "\\" in key:
        raise ValidationError(
            f"TargetModel {key[:80]!r} must name an object under the endpoint's prefix "
            "(a relative key, without ..)",
            field="TargetModel",
        )


class MultiModelInstances(WrappedInstances):
    """A multi-model variant's instances, as the gateway calls them."""

    takes: str | None = TARGET_MODEL

    def __init__(
        self,
        pool: VariantInstances,
        source: ModelSource,
        metrics: MultiModelMetrics,
        tallies: Tallies,
    ) -> None:
        super().__init__(pool)
        self.source = source
        self.metrics = metrics
        self.tallies = tallies
        """The same figures as CloudWatch's (microseconds), for the metric history."""

    async def invoke(
        self, body: bytes, content_type: str, accept: str, target: str | None = None
    ) -> Answer:
        if target is None:
            raise ValidationError(
                "the request is missing a target model header (X-Amzn-SageMaker-Target-Model): "
                "this is a multi-model endpoint",
                field="TargetModel",
            )
        model, downloading_s, downloaded = await self.source.resolve(target)
        answer = await self.pool.invoke_model(model, body, content_type, accept)
        if answer.model is not None:
            self._count(answer.model, downloading_s, downloaded)
        return answer

    def _count(self, outcome: CacheOutcome, downloading_s: float, downloaded: bool) -> None:
        m, add = self.metrics, self.tallies.add
        if downloaded:
            m.downloading.observe(downloading_s)
            add("ModelDownloadingTime", downloading_s * 1e6, MICROSECONDS)
        if outcome.accounted:
            if not outcome.hit:
                m.loading.observe(outcome.load_s)
                add("ModelLoadingTime", outcome.load_s * 1e6, MICROSECONDS)
            if outcome.unload_s:
                m.unloading.observe(outcome.unload_s)
                add("ModelUnloadingTime", outcome.unload_s * 1e6, MICROSECONDS)
        hit = outcome.hit and not downloading_s
        add("ModelCacheHit", float(hit), "Count")
        if hit:
            m.hits.inc()
        else:
            m.misses.inc()
            waited = downloading_s + (0.0 if outcome.hit else outcome.load_s)
            m.loading_wait.observe(waited)
            add("ModelLoadingWaitTime", waited * 1e6, MICROSECONDS)

    async def invoke_file(self, request: FileRequest, timeout: float) -> str:
        raise ValidationError(
            "multi-model endpoints answer real-time requests only", field="EndpointName"
        )

    async def transform(self, chunk: bytes, timeout: float) -> dict[str, Any]:
        raise ValidationError(
            "batch transform takes single-model models, not a multi-model one", field="ModelName"
        )


def _retrieve(future: asyncio.Future[ModelTarget]) -> None:
    """Mark a failure as seen: the caller that started the load raises it already."""
    if not future.cancelled():
        future.exception()
