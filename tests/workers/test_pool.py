from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sluice.errors import ModelError, ModelLoadError, ValidationError
from sluice.workers.client import WorkerConnection
from sluice.workers.pool import PoolSettings, WorkerPool, WorkerSpec
from tests import models

ROW = json.dumps([models.digits()[0][0].tolist()]).encode()


_SOCKET_DIRS: list[Path] = []


def _settings(**overrides: float) -> PoolSettings:
    folder = Path(tempfile.mkdtemp(prefix="sl-"))  # short: socket paths have a length limit
    _SOCKET_DIRS.append(folder)
    return PoolSettings(folder, backoff_s=0.05, **overrides)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _remove_socket_dirs() -> Iterator[None]:
    yield
    while _SOCKET_DIRS:
        shutil.rmtree(_SOCKET_DIRS.pop(), ignore_errors=True)


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


async def test_killed_worker_fails_its_request_and_restarts(artifacts: dict[str, Path]) -> None:
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
        # The request it was running may be what killed it: a model error, not retried.
        with pytest.raises(ModelError, match="exited while handling"):
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
        old = pool.pids[0]
        with pytest.raises(ModelError, match="did not answer within 0.3 s"):
            await pool.invoke(ROW, "application/json", "")
        # The stuck worker is not left serving: it is killed and replaced.
        for _ in range(100):
            if pool.pids and pool.pids[0] != old:
                break
            await asyncio.sleep(0.05)
        assert pool.pids and pool.pids[0] != old
    finally:
        await pool.stop()


def _faulty(artifacts: dict[str, Path], **settings: float) -> WorkerPool:
    return WorkerPool(WorkerSpec("ep/F", artifacts["faulty"], "python"), _settings(**settings))


async def _ask(pool: WorkerPool, action: dict[str, object] | None = None) -> int:
    answer = await pool.invoke(json.dumps(action or {}).encode(), "application/json", "")
    return int(json.loads(answer.body)["pid"])


async def test_a_hung_worker_is_replaced_and_requests_behind_it_go_elsewhere(
    artifacts: dict[str, Path],
) -> None:
    pool = _faulty(artifacts, invocation_timeout_s=1.0)
    await pool.start(2)
    try:
        hung = asyncio.ensure_future(_ask(pool, {"action": "hang"}))
        await asyncio.sleep(0.05)
        stuck = next(w.pid for w in pool.instances if w.connection and w.connection.outstanding)
        # Some of these queue behind the hung request on its worker.
        others = [asyncio.ensure_future(_ask(pool, {"action": "sleep", "seconds": 0.05}))
                  for _ in range(12)]  # fmt: skip
        with pytest.raises(ModelError, match="did not answer within 1 s"):
            await hung
        answered = await asyncio.gather(*others)
        assert len(answered) == 12  # none failed: those behind the hang were sent elsewhere
        for _ in range(100):
            if len(pool.pids) == 2 and stuck not in pool.pids:
                break
            await asyncio.sleep(0.05)
        assert len(pool.pids) == 2 and stuck not in pool.pids
    finally:
        await pool.stop()


async def test_an_input_that_crashes_a_worker_is_not_retried(artifacts: dict[str, Path]) -> None:
    restarts: list[int] = []
    pool = WorkerPool(
        WorkerSpec("ep/F", artifacts["faulty"], "python"), _settings(), lambda: restarts.append(1)
    )
    await pool.start(2)
    try:
        with pytest.raises(ModelError, match="exited while handling"):
            await _ask(pool, {"action": "crash"})
        await asyncio.sleep(0.5)
        assert restarts == [1]  # one worker died, not both
        assert len({await _ask(pool) for _ in range(4)}) >= 1
    finally:
        await pool.stop()


async def test_a_stop_while_a_restarted_worker_is_first_pinged_ends_cleanly(
    artifacts: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = WorkerPool(WorkerSpec("ep/F", artifacts["faulty"], "python"), _settings())
    await pool.start(1)
    instance = pool.instances[0]
    ping = WorkerConnection.ping

    async def slow_ping(self: WorkerConnection, timeout: float) -> None:
        while self.alive:  # held until a stop closes the connection: the window a slow
            await asyncio.sleep(0.001)  # machine leaves open
        await ping(self, timeout)

    monkeypatch.setattr(WorkerConnection, "ping", slow_ping)
    first = instance.connection
    with pytest.raises(ModelError, match="exited while handling"):
        await _ask(pool, {"action": "crash"})
    for _ in range(1000):  # until the replacement is connected and being pinged
        if instance.connection not in (None, first):
            break
        await asyncio.sleep(0.01)
    else:
        pytest.fail("the replacement worker never connected")
    await pool.stop()  # raises nothing, leaves nothing running
    assert instance.process is not None and instance.process.returncode is not None


async def test_a_replacement_that_dies_before_its_first_ping_is_replaced_again(
    artifacts: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = WorkerPool(WorkerSpec("ep/F", artifacts["faulty"], "python"), _settings())
    await pool.start(1)
    instance = pool.instances[0]
    ping = WorkerConnection.ping
    killed: list[int] = []

    async def ping_killing_the_first_replacement(self: WorkerConnection, timeout: float) -> None:
        if not killed:
            assert instance.process is not None
            killed.append(instance.process.pid)
            instance.process.kill()
        await ping(self, timeout)

    monkeypatch.setattr(WorkerConnection, "ping", ping_killing_the_first_replacement)
    try:
        with pytest.raises(ModelError, match="exited while handling"):
            await _ask(pool, {"action": "crash"})
        answer = await _ask(pool)  # waits for the second replacement
        assert killed and answer not in killed and pool.pids == [answer]
    finally:
        await pool.stop()


async def test_an_instance_that_keeps_failing_is_ejected_and_replaced(
    artifacts: dict[str, Path],
) -> None:
    pool = _faulty(artifacts, outlier_failures=3)
    await pool.start(2)
    try:
        broken = await _ask(pool, {"action": "break"})
        failures = 0
        for _ in range(20):  # one at a time: every tie goes to the first instance
            try:
                await _ask(pool)
            except ModelError:
                failures += 1
        assert failures <= 3
        for _ in range(100):
            if len(pool.pids) == 2 and broken not in pool.pids:
                break
            await asyncio.sleep(0.05)
        assert len(pool.pids) == 2 and broken not in pool.pids
        assert not any(w.ejected for w in pool.instances)
    finally:
        await pool.stop()


async def test_ejection_never_takes_out_more_than_its_share(artifacts: dict[str, Path]) -> None:
    pool = _faulty(artifacts, outlier_failures=2)
    await pool.start(1)
    try:
        broken = await _ask(pool, {"action": "break"})
        for _ in range(6):
            with pytest.raises(ModelError, match="broken"):
                await _ask(pool)
        assert pool.pids == [broken]  # the only instance stays in (50 % of 1 is 0)
    finally:
        await pool.stop()


async def test_instances_added_by_scaling_take_requests_and_zero_holds_them(
    artifacts: dict[str, Path],
) -> None:
    pool = WorkerPool(WorkerSpec("ep/A", artifacts["logreg"], "sklearn"), _settings())
    await pool.start(1)
    try:
        await pool.scale(3)
        assert len(pool.live) == 3  # in the pick list at once, not after some later event
        await asyncio.gather(*(pool.invoke(ROW, "application/json", "") for _ in range(60)))
        await pool.scale(0)
        woken: list[int] = []
        pool.on_empty = lambda: woken.append(1)
        held = asyncio.create_task(pool.invoke(ROW, "application/json", ""))
        await asyncio.sleep(0.2)
        assert woken == [1] and not held.done()  # held while scaled to zero
        await pool.scale(1)
        answer = await asyncio.wait_for(held, 10)
        assert json.loads(answer.body)["predictions"] == [0]
    finally:
        await pool.stop()
