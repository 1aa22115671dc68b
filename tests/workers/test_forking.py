"""Workers forked from the template: up with their libraries loaded, watched and signalled
through pidfds, named for what they are, gone when the template goes."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import psutil
import pytest

from sluice.workers.forking import Zygote
from sluice.workers.pool import worker_environment
from sluice.workers.zygote import WORKER_NAME
from tests import models

pytestmark = pytest.mark.skipif(not Zygote.supported(), reason="pidfds are Linux's")


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    models.write_sklearn(folder, models.digits_logreg())
    return folder


def argv(tmp_path: Path, model_dir: Path, zygote: Zygote) -> list[str]:
    return [
        "--socket", str(tmp_path / "w.sock"), "--model-dir", str(model_dir),
        "--runtime", "sklearn", "--parent", str(zygote.pid),
    ]  # fmt: skip


async def test_a_forked_worker_loads_answers_its_signals_and_dies_with_the_template(
    tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SERVER_SECRET", "hunter2")
    clean = worker_environment(os.environ, {})
    assert "SERVER_SECRET" not in clean
    zygote = Zygote(tmp_path, clean, timeout_s=60)
    try:
        assert await zygote.usable()
        template = psutil.Process(zygote.pid)
        # A fork starts with the template's address space: a tight limit starts afresh.
        assert zygote.fits(None) and zygote.fits(64 * 1024) and not zygote.fits(64)
        assert b"hunter2" not in Path(f"/proc/{zygote.pid}/environ").read_bytes()
        worker = await zygote.fork(argv(tmp_path, model_dir, zygote), {**clean, "X": "1"})
        ready = json.loads(await asyncio.wait_for(worker.stdout.readline(), 60))
        assert ready == {"ready": True, "pid": worker.pid}
        process = psutil.Process(worker.pid)
        assert process.name() == WORKER_NAME and process.ppid() == zygote.pid
        worker.terminate()
        assert await asyncio.wait_for(worker.wait(), 10) == -1 and worker.returncode == -1
        worker.kill()  # after its exit: nothing happens, nothing is misdirected

        # A worker outlives nothing: the template's end takes it along.
        second = await zygote.fork(argv(tmp_path, model_dir, zygote), clean)
        await asyncio.wait_for(second.stdout.readline(), 60)
        template.kill()
        await asyncio.wait_for(second.wait(), 10)
        assert not psutil.pid_exists(second.pid) or psutil.Process(second.pid).status() == "zombie"
    finally:
        await zygote.close()


async def test_a_template_that_cannot_start_leaves_workers_to_start_afresh(
    tmp_path: Path,
) -> None:
    zygote = Zygote(tmp_path / "missing-folder", {"PATH": os.environ["PATH"]}, timeout_s=30)
    assert not await zygote.usable()  # its socket cannot be made: it exits
    await zygote.close()


async def test_a_bad_request_is_refused_and_the_template_goes_on(
    tmp_path: Path, model_dir: Path
) -> None:
    import socket

    zygote = Zygote(tmp_path, worker_environment(os.environ, {}), timeout_s=60)
    try:
        assert await zygote.usable()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.connect(zygote.socket_path)
            conn.sendall(b"not json")  # and no descriptors
            assert b"error" in conn.makefile("rb").readline()
        with pytest.raises(OSError, match="forked nothing"):
            await asyncio.to_thread(zygote._ask, b'{"argv": "x"}', [0, 2])
        worker = await zygote.fork(argv(tmp_path, model_dir, zygote), worker_environment({}, {}))
        assert json.loads(await asyncio.wait_for(worker.stdout.readline(), 60))["ready"]
        worker.kill()
        await asyncio.wait_for(worker.wait(), 10)
    finally:
        await zygote.close()
