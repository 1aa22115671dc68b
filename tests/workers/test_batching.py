from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from sluice.errors import ValidationError
from sluice.workers import protocol
from sluice.workers.batching import Batching, CacheOutcome, answer_stats, parse_stats
from sluice.workers.client import Answer
from sluice.workers.pool import PoolSettings, WorkerPool, WorkerSpec
from sluice.workers.protocol import Frame
from tests import models


@pytest.fixture(scope="module")
def identity(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model whose prediction for the row [x] is x: every answer names its own request."""
    xs = np.arange(1000, dtype=float).reshape(-1, 1)
    model = LinearRegression().fit(xs, xs.ravel())
    return models.write_sklearn(tmp_path_factory.mktemp("identity"), model)


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="sl-"))  # short: socket paths have a length limit
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


async def _pool(model: Path, socket_dir: Path, **environment: str) -> WorkerPool:
    pool = WorkerPool(
        WorkerSpec("ep/batch", model, "sklearn", environment), PoolSettings(socket_dir)
    )
    await pool.start(1)
    return pool


async def _ask(pool: WorkerPool, x: float) -> Answer:
    return await pool.invoke(json.dumps([[x]]).encode(), "application/json", "")


def _value(answer: Answer) -> float:
    return float(json.loads(answer.body)["predictions"][0])


async def test_concurrent_requests_are_batched_and_each_answer_goes_to_its_caller(
    identity: Path, socket_dir: Path
) -> None:
    pool = await _pool(identity, socket_dir)
    try:
        xs = list(range(300))
        answers = await asyncio.gather(*(_ask(pool, x) for x in xs))
        assert [round(_value(a)) for a in answers] == xs
        assert max(a.batch_size for a in answers) > 1
        assert all(1 <= a.batch_size <= 32 for a in answers)
        assert all(a.queued_s >= 0 for a in answers)
    finally:
        await pool.stop()


async def test_a_bad_request_in_a_batch_fails_alone(identity: Path, socket_dir: Path) -> None:
    pool = await _pool(identity, socket_dir)
    try:
        bodies = [
            json.dumps([[x, x]] if x % 7 == 0 else [[x]]).encode()  # two features: refused
            for x in range(100)
        ]
        results = await asyncio.gather(
            *(pool.invoke(b, "application/json", "") for b in bodies), return_exceptions=True
        )
        for x, result in enumerate(results):
            if x % 7 == 0:
                assert isinstance(result, ValidationError), result
                assert "1 features" in result.message
            else:
                assert isinstance(result, Answer) and round(_value(result)) == x
    finally:
        await pool.stop()


async def test_batching_off_answers_one_at_a_time(identity: Path, socket_dir: Path) -> None:
    pool = await _pool(identity, socket_dir, SLUICE_BATCH_MAX_SIZE="1")
    try:
        answers = await asyncio.gather(*(_ask(pool, x) for x in range(100)))
        assert [round(_value(a)) for a in answers] == list(range(100))
        assert {a.batch_size for a in answers} == {1}
    finally:
        await pool.stop()


async def test_a_max_delay_waits_for_a_batch_to_fill(identity: Path, socket_dir: Path) -> None:
    pool = await _pool(identity, socket_dir, SLUICE_BATCH_MAX_DELAY_MS="300")
    try:
        first = asyncio.ensure_future(_ask(pool, 1))
        await asyncio.sleep(0.05)
        second = await _ask(pool, 2)
        assert (await first).batch_size == 2 and second.batch_size == 2
        assert round(_value(second)) == 2 and round(_value(await first)) == 1
    finally:
        await pool.stop()


def test_settings_come_from_the_environment() -> None:
    assert Batching.from_environment({}) == Batching(32, 0.0, None, 32)
    adaptive = Batching.from_environment(
        {"SLUICE_BATCH_MAX_SIZE": "64", "SLUICE_BATCH_LATENCY_SLO_MS": "20"}
    )
    assert adaptive.cap == 8 and adaptive.latency_slo_s == 0.02
    with pytest.raises(ValidationError, match="must be a number") as bad:
        Batching.from_environment({"SLUICE_BATCH_MAX_DELAY_MS": "soon"})
    assert bad.value.field == "Environment.SLUICE_BATCH_MAX_DELAY_MS"
    with pytest.raises(ValidationError, match="at least 1"):
        Batching.from_environment({"SLUICE_BATCH_MAX_SIZE": "0"})


def test_the_adaptive_cap_grows_under_the_slo_and_shrinks_over_it() -> None:
    batching = Batching.from_environment(
        {"SLUICE_BATCH_MAX_SIZE": "10", "SLUICE_BATCH_LATENCY_SLO_MS": "10"}
    )
    batching.record(8, 0.005)  # full and fast: one more
    batching.record(9, 0.005)
    batching.record(10, 0.005)
    assert batching.cap == 10  # never above the max
    batching.record(3, 0.005)  # not full: says nothing of a larger batch
    assert batching.cap == 10
    batching.record(10, 0.05)  # too slow: cut
    assert batching.cap == 9
    for _ in range(50):
        batching.record(batching.cap, 0.05)
    assert batching.cap == 1


def test_take_stops_at_the_cap_and_at_other_frames() -> None:
    batching = Batching(max_size=3, cap=3)
    frames = [Frame(i, protocol.REQUEST) for i in range(5)]
    assert [f.request_id for f in batching.take(frames)] == [0, 1, 2]
    frames = [Frame(0, protocol.REQUEST), Frame(1, protocol.PING), Frame(2, protocol.REQUEST)]
    assert [f.request_id for f in batching.take(frames)] == [0]
    assert [f.request_id for f in frames] == [1, 2]


def test_answer_stats_round_trip() -> None:
    assert parse_stats(answer_stats(12, 0.0015)) == (12, 0.0015, None, None)
    assert parse_stats("") == (1, 0.0, None, None)
    assert parse_stats(answer_stats(2, 0, steps=[0.25, 0.5])) == (2, 0.0, None, (0.25, 0.5))
    outcome = CacheOutcome(hit=False, load_s=0.25, unload_s=0.003, loaded=7, accounted=False)
    assert parse_stats(answer_stats(3, 0.5, outcome)) == (3, 0.5, outcome, None)
