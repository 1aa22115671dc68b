"""Many models in one worker (a multi-model endpoint): loaded on first use, evicted by memory.

The gateway unpacks each target model into the artifact store and names its directory
and runtime in every MODEL_REQUEST frame; this runtime loads it on the first request for
it and keeps it while memory allows. The budget is in bytes of memory used, measured as
the process's resident memory grown by the load (at least the model's size on disk, since
memory freed by an earlier eviction is reused without growing it). Before a load, least
recently used models are evicted until the new one's size on disk fits; after it, until
the measured total fits (never the model just loaded). Environment:

- `SLUICE_MODEL_CACHE_MB`: the budget (the gateway sets 70 % of the instance type's memory
  when it has one; otherwise half of this machine's memory).
- `SLUICE_MODEL_CACHE`: `disabled` unloads a model after every request (SageMaker's
  ModelCacheSetting=Disabled, for models called once).
- `SLUICE_MODEL_PINNED` (set by the gateway from the model's `SLUICE_MODEL_PRELOAD`): a
  JSON list of [runtime, directory] loaded before the worker is ready and never unloaded.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sluice.codecs import Prediction
from sluice.errors import ModelError, ValidationError
from sluice.runtimes.base import Runtime
from sluice.workers.batching import CacheOutcome

log = logging.getLogger("sluice.worker")

PAGE = os.sysconf("SC_PAGE_SIZE")
PINNED = "SLUICE_MODEL_PINNED"


@dataclass
class Loaded:
    runtime: Runtime
    bytes: int


class MultiModelRuntime(Runtime):
    name = "multi-model"

    def load(self) -> None:
        self.root = self.model_dir.resolve()
        """Target models are loaded only from directories under this one (the store's)."""
        budget_mb = self.environment.get("SLUICE_MODEL_CACHE_MB", "").strip()
        if budget_mb:
            try:
                self.budget = int(float(budget_mb) * 1024 * 1024)
            except ValueError:
                raise ValidationError(
                    f"SLUICE_MODEL_CACHE_MB must be a number, got {budget_mb!r}",
                    field="Environment.SLUICE_MODEL_CACHE_MB",
                ) from None
        else:
            self.budget = os.sysconf("SC_PHYS_PAGES") * PAGE // 2
        self.caching = self.environment.get("SLUICE_MODEL_CACHE", "").lower() != "disabled"
        self.models: OrderedDict[str, Loaded] = OrderedDict()
        """Loaded models by directory, least recently used first."""
        self.pinned: set[str] = set()
        for runtime, directory in json.loads(self.environment.get(PINNED) or "[]"):
            self._find(runtime, directory)
            self.pinned.add(directory)

    @property
    def used(self) -> int:
        return sum(m.bytes for m in self.models.values())

    def predict(self, rows: np.ndarray) -> Prediction:
        raise ValidationError(
            "this is a multi-model endpoint: name the model to use (TargetModel)",
            field="TargetModel",
        )

    def invoke_target(
        self, runtime: str, directory: str, requests: Sequence[tuple[bytes, str, str]]
    ) -> tuple[list[tuple[bytes, str] | Exception], CacheOutcome]:
        """Answer requests for one target model, loading it first if it is not loaded."""
        outcome = self._find(runtime, directory)
        model = self.models[directory]
        answers = model.runtime.invoke_many(requests)
        if not self.caching and directory not in self.pinned:
            outcome.unload_s += self._evict(directory)
        outcome.loaded = len(self.models)
        return answers, outcome

    def _find(self, runtime: str, directory: str) -> CacheOutcome:
        found = self.models.get(directory)
        if found is not None:
            self.models.move_to_end(directory)
            return CacheOutcome(hit=True)
        path = Path(directory).resolve()
        if not path.is_relative_to(self.root) or not path.is_dir():
            raise ValidationError(f"no model at {directory}", field="TargetModel")
        on_disk = _disk_bytes(path)
        unload_s = self._make_room(on_disk)
        started = time.perf_counter()
        before = _resident()
        from sluice.runtimes.registry import runtime_class

        loaded = runtime_class(runtime)(path, self.environment)
        try:
            loaded.load()
        except Exception as exc:
            raise ModelError(
                f"the target model failed to load: {type(exc).__name__}: {exc}"
            ) from exc
        size = max(_resident() - before, on_disk)
        load_s = time.perf_counter() - started
        self.models[directory] = Loaded(loaded, size)
        unload_s += self._make_room(0, keep=directory)
        log.info(
            "loaded %s (%s, %.1f MiB) in %.3f s; %d models, %.1f of %.1f MiB",
            path.name, runtime, size / 2**20, load_s, len(self.models),
            self.used / 2**20, self.budget / 2**20,
        )  # fmt: skip
        return CacheOutcome(hit=False, load_s=load_s, unload_s=unload_s)

    def _make_room(self, incoming: int, keep: str | None = None) -> float:
        """Evict least recently used models (never a pinned one, nor `keep`) until
        `incoming` more bytes fit; the time it took."""
        spent = 0.0
        while self.used + incoming > self.budget:
            victim = next((d for d in self.models if d != keep and d not in self.pinned), None)
            if victim is None:
                log.warning(
                    "models that may not be unloaded (pinned, or the one just loaded) use "
                    "%.1f MiB, over the cache budget of %.1f MiB (SLUICE_MODEL_CACHE_MB)",
                    self.used / 2**20, self.budget / 2**20,
                )  # fmt: skip
                break
            spent += self._evict(victim)
        return spent

    def _evict(self, directory: str) -> float:
        started = time.perf_counter()
        gone = self.models.pop(directory)
        del gone
        gc.collect()
        spent = time.perf_counter() - started
        log.info("unloaded %s in %.3f s", Path(directory).name, spent)
        return spent


def _resident() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def _disk_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
