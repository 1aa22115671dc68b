"""Both models answer every validation row through the runtimes and worker processes that
serve them in production, one request per row, alternating between the two so that both
see the same machine."""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sluice.backends.local import LocalBackend
from sluice.entities import Model
from sluice.errors import ModelError, SluiceError
from sluice.gate.data import ValidationSet
from sluice.gate.metrics import Answers
from sluice.runtimes import registry
from sluice.settings import Settings
from sluice.store.artifacts import ArtifactStore
from sluice.store.objects import ObjectStore


@dataclass(frozen=True)
class ModelSource:
    """Where a model under test comes from (a package or an endpoint's model)."""

    label: str
    """What the reports call it: `churn/4`, `endpoint churn (model churn-v3)`."""
    artifact: str
    runtime: str | None = None
    image: str | None = None
    environment: dict[str, str] = field(default_factory=dict)


def run_both(
    candidate: ModelSource, baseline: ModelSource, data: ValidationSet, warmup: int = 20
) -> tuple[Answers, Answers]:
    return asyncio.run(_run_both(candidate, baseline, data, warmup))


async def _run_both(
    candidate: ModelSource, baseline: ModelSource, data: ValidationSet, warmup: int
) -> tuple[Answers, Answers]:
    settings = Settings()
    backend = LocalBackend(settings)
    with tempfile.TemporaryDirectory(prefix="sluice-validate-") as scratch:
        store = ArtifactStore(Path(scratch), ObjectStore.from_settings(settings))
        sources = (candidate, baseline)
        pools = []
        try:
            for name, source in zip(("candidate", "baseline"), sources, strict=True):
                model = _model(name, source, store)
                pools.append(
                    await backend.start_variant(f"validate/{name}", model, 1, lambda: None)
                )
            bodies = [json.dumps([row.tolist()]).encode() for row in data.features]
            for body in bodies[:warmup]:  # first calls pay for lazy imports and caches
                for pool, source in zip(pools, sources, strict=True):
                    await _ask(pool, body, source.label)
            raw: list[list[tuple[dict[str, object], float]]] = [[], []]
            for body in bodies:
                for which, (pool, source) in enumerate(zip(pools, sources, strict=True)):
                    clock = time.perf_counter()
                    answer = await _ask(pool, body, source.label)
                    raw[which].append((answer, (time.perf_counter() - clock) * 1000))
        finally:
            for pool in pools:
                await pool.stop()
            await backend.close()
    return _answers(raw[0], candidate.label), _answers(raw[1], baseline.label)


def _model(name: str, source: ModelSource, store: ArtifactStore) -> Model:
    model_dir = store.unpack(source.artifact)
    env = dict(source.environment)
    runtime = registry.choose(source.runtime, model_dir, env, source.image)
    return Model(name, source.artifact, str(model_dir), runtime, source.image, env, None)  # type: ignore[arg-type]


async def _ask(pool: object, body: bytes, label: str) -> dict[str, object]:
    try:
        answer = await pool.invoke(body, "application/json", "application/json")  # type: ignore[attr-defined]
    except SluiceError as exc:
        raise ModelError(f"{label} failed on a validation row: {exc.message}") from exc
    decoded = json.loads(answer.body)
    if not isinstance(decoded, dict) or "predictions" not in decoded:
        raise ModelError(f"{label} answered without predictions: {answer.body[:200]!r}")
    return decoded


def _answers(raw: list[tuple[dict[str, object], float]], label: str) -> Answers:
    predictions = np.array([_first(a["predictions"], label) for a, _ in raw])
    probabilities = None
    if all("probabilities" in a for a, _ in raw):
        probabilities = np.array([_first(a["probabilities"], label) for a, _ in raw], dtype=float)
    latencies = np.array([ms for _, ms in raw])
    return Answers(predictions, probabilities, latencies)


def _first(values: object, label: str) -> object:
    if not isinstance(values, list) or len(values) != 1:
        raise ModelError(f"{label} answered {values!r} for one row")
    return values[0]
