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
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from sluice.entities import Model
from sluice.errors import ModelNotReady, ValidationError
from sluice.gateway.fleet_stats import Tallies
from sluice.gateway.instances import TARGET_MODEL, WrappedInstances
from sluice.gateway.metrics import MultiModelMetrics
from sluice.runtimes import registry
from sluice.runtimes.multi_model import PINNED
from sluice.store.artifacts import ArtifactStore
from sluice.workers.batching import CacheOutcome
from sluice.workers.client import Answer, ModelTarget
from sluice.workers.file_request import FileRequest

if TYPE_CHECKING:
    from sluice.backends.base import VariantInstances

MAX_KEY = 1024
PRELOAD = "SLUICE_MODEL_PRELOAD"
"""A model's environment: keys every instance loads before it is ready and never unloads."""
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

    async def pin(self, keys: Sequence[str]) -> list[ModelTarget]:
        """Unpack the models every instance loads before it is ready and keeps; requests
        for them go to the least busy instance."""
        pinned = []
        for key in keys:
            target, _, _ = await self.resolve(key)
            self.targets[key] = replace(target, everywhere=True)
            pinned.append(self.targets[key])
        return pinned

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


def worker_environment(
    model: Model, memory_mb: int | None, pinned: Sequence[ModelTarget] = ()
) -> dict[str, str]:
    """A multi-model variant's worker environment: the model's, with the cache settings
    its container definition and instance type imply (the model's own win), and the
    models to pin."""
    out = dict(model.environment)
    out[PINNED] = json.dumps([[t.runtime, t.directory] for t in pinned])
    container = model.details.get("PrimaryContainer") or {}
    if container.get("MultiModelConfig", {}).get("ModelCacheSetting") == "Disabled":
        out.setdefault("SLUICE_MODEL_CACHE", "disabled")
    if memory_mb:
        out.setdefault("SLUICE_MODEL_CACHE_MB", str(int(memory_mb * CACHE_SHARE)))
    return out


def preload_keys(environment: Mapping[str, str]) -> list[str]:
    """The keys SLUICE_MODEL_PRELOAD names: a JSON list of strings, or keys separated by
    commas."""
    raw = environment.get(PRELOAD, "").strip()
    if not raw:
        return []
    if raw.startswith("["):
        try:
            keys = json.loads(raw)
        except ValueError:
            keys = None
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise ValidationError(
                f"{PRELOAD} must be a JSON list of keys or keys separated by commas",
                field=f"Environment.{PRELOAD}",
            )
    else:
        keys = [k.strip() for k in raw.split(",") if k.strip()]
    for key in keys:
        check_key(key)
    return list(dict.fromkeys(keys))


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


@dataclass(frozen=True)
class Readiness:
    """How long a request for a model that may not be loaded waits before it is told to
    retry, and how long its load may take."""

    ready_s: float = 60.0
    load_timeout_s: float = 360.0


class MultiModelInstances(WrappedInstances):
    """A multi-model variant's instances, as the gateway calls them.

    A request for a model not known to be loaded (never answered here, or since an
    instance unloaded some model or restarted) may wait for a download and a load: it is
    given `load_timeout_s` instead of the invocation timeout, and its caller gets
    ModelNotReadyException after `ready_s` while the load goes on.
    """

    takes: str | None = TARGET_MODEL

    def __init__(
        self,
        pool: VariantInstances,
        source: ModelSource,
        metrics: MultiModelMetrics,
        tallies: Tallies,
        readiness: Readiness,
        caching: bool = True,
    ) -> None:
        super().__init__(pool)
        self.source = source
        self.metrics = metrics
        self.tallies = tallies
        """The same figures as CloudWatch's (microseconds), for the metric history."""
        self.readiness = readiness
        self.caching = caching
        """Models stay loaded after a request (ModelCacheSetting Enabled)."""
        self.warm: set[str] = set()
        """Keys whose model an instance has loaded and, as far as the gateway knows, kept."""
        self.restarts_seen = 0

    async def invoke(
        self, body: bytes, content_type: str, accept: str, target: str | None = None
    ) -> Answer:
        if target is None:
            raise ValidationError(
                "the request is missing a target model header (X-Amzn-SageMaker-Target-Model): "
                "this is a multi-model endpoint",
                field="TargetModel",
            )
        if self.pool.restarts != self.restarts_seen:
            self.restarts_seen = self.pool.restarts
            self.warm.clear()  # a new worker has loaded nothing
        if target in self.warm:
            return await self._answer(target, body, content_type, accept)
        call = asyncio.ensure_future(
            self._answer(target, body, content_type, accept, self.readiness.load_timeout_s)
        )
        try:
            return await asyncio.wait_for(asyncio.shield(call), self.readiness.ready_s)
        except TimeoutError:
            call.add_done_callback(_retrieve)  # the load goes on; its answer is dropped
            raise ModelNotReady(
                f"Model {target[:200]} is not ready yet: it is still being downloaded or "
                f"loaded after {self.readiness.ready_s:g} s. Retry the request.",
                field="TargetModel",
            ) from None

    async def _answer(
        self,
        target: str,
        body: bytes,
        content_type: str,
        accept: str,
        timeout: float | None = None,
    ) -> Answer:
        model, downloading_s, downloaded = await self.source.resolve(target)
        answer = await self.pool.invoke_model(model, body, content_type, accept, timeout)
        outcome = answer.model
        if outcome is not None:
            self._count(outcome, downloading_s, downloaded)
            if outcome.unload_s:
                self.warm.clear()  # some model was unloaded, on some instance
            if self.caching or model.everywhere:
                self.warm.add(target)
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


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a failure as seen: the caller that started the load raises it already."""
    if not future.cancelled():
        future.exception()
