from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import tempfile
from pathlib import Path

import pytest

from sluice.errors import ModelError, ModelLoadError, ValidationError, WorkerUnavailable
from sluice.workers.pool import PoolSettings, WorkerPool, WorkerSpec
from tests import models

ROW = json.dumps([models.digits()[0][0].tolist()]).encode()


def _settings(**overrides: float) -> PoolSettings:
    return PoolSettings(Path(tempfile.mkdtemp(prefix="sl-")), backoff_s=0.05, **overrides)  # type: ignore[arg-type]


async def test_pool_answers_and_reports_errors(artifacts: dict[str, Path]) -> None:
    pool = WorkerPool(WorkerSpec("ep/A", artifacts["crashing"], "python"), _settings())
    await pool.start(2)
    try:
        answer = await pool.invoke(ROW, "application/json", "application/json")
        assert json.loads(answer.body)["predictions"] == [0]
        with pytest.raises(ModelError, match="negative pixel"):
            await pool.invoke(b"[[-1]]", "application/json", "application/json")
        with pytest.raises(ValidationError, match="not valid JSON"):
            await pool.invoke(b"[[", "application/json", "application/json")
        many = await asyncio.gather(*(pool.invoke(ROW, "application/json", "") for _ in range(200)))
        assert len(many) == 200
        assert len(pool.pids) == 2
    finally:
        await pool.stop()


async def test_killed_worker_fails_its_requests_and_restarts(artifacts: dict[str, Path]) -> None:
    restarts: list[int] = []
    pool = WorkerPool(
        WorkerSpec("ep/slow", artifacts["slow"], "python", {"SLOW_SECONDS": "0.5"}),
        _settings(),
        on_restart=lambda: restarts.append(1),
    )
    await pool.start(1)
    try:
        in_flight = asyncio.ensure_future(pool.invoke(ROW, "application/json", ""))
        await asyncio.sleep(0.2)
        old = pool.pids[0]
        os.kill(old, signal.SIGKILL)
        with pytest.raises(WorkerUnavailable, match="exited while handling"):
            await in_flight
        # the next request waits for the restarted worker instead of failing
        answer = await pool.invoke(ROW, "application/json", "")
        assert json.loads(answer.body)["predictions"] == [0]
        assert restarts == [1] and pool.pids[0] != old
    finally:
        await pool.stop()


async def test_no_restart_once_the_backend_has_closed(artifacts: dict[str, Path]) -> None:
    settings = _settings()
    pool = WorkerPool(WorkerSpec("ep/A", artifacts["logreg"], "sklearn"), settings)
    await pool.start(1)
    try:
        old = pool.pids[0]
        shutil.rmtree(settings.socket_dir)  # what the backend's close does
        os.kill(old, signal.SIGKILL)
        await asyncio.sleep(0.5)  # well past the 0.05 s backoff
        assert pool.pids == []
        # The supervisor gave up rather than spawning workers that cannot bind, again and again.
        supervisor = pool.instances[0].supervisor
        assert supervisor is not None and supervisor.done()
    finally:
        await pool.stop()


async def test_model_that_fails_to_load_reports_the_loader_message(tmp_path: Path) -> None:
    (tmp_path / "model.joblib").write_bytes(b"this is not a pickle")
    pool = WorkerPool(WorkerSpec("ep/bad", tmp_path, "sklearn"), _settings())
    with pytest.raises(ModelLoadError, match="model failed to load: .*(pickle|load)"):
        await pool.start(2)
    assert pool.pids == []


async def test_invocation_timeout(artifacts: dict[str, Path]) -> None:
    pool = WorkerPool(
        WorkerSpec("ep/slow", artifacts["slow"], "python", {"SLOW_SECONDS": "2"}),
        _settings(invocation_timeout_s=0.3),
    )
    await pool.start(1)
    try:
        with pytest.raises(ModelError, match="did not answer within 0.3 s"):
            await pool.invoke(ROW, "application/json", "")
    finally:
        await pool.stop()
