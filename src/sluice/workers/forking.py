"""The gateway's side of the zygote (`sluice.workers.zygote`): start it, have it fork
workers, and watch a forked worker as if it were a child process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import psutil

log = logging.getLogger(__name__)


class ForkedProcess:
    """A worker the zygote forked: not this process's child, so it is watched through a
    pidfd (readable once it exits) and signalled through it (no pid reuse can misdirect
    a signal). Its exit status is not known here: `returncode` is -1 once it exited."""

    def __init__(self, pid: int, stdout: asyncio.StreamReader) -> None:
        self.pid = pid
        self.stdout = stdout
        self.returncode: int | None = None
        self._exited = asyncio.Event()
        self._pidfd = os.pidfd_open(pid)
        asyncio.get_running_loop().add_reader(self._pidfd, self._on_exit)

    def _on_exit(self) -> None:
        asyncio.get_running_loop().remove_reader(self._pidfd)
        os.close(self._pidfd)
        self.returncode = -1
        self._exited.set()

    async def wait(self) -> int:
        await self._exited.wait()
        return -1

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def terminate(self) -> None:
        self._signal(signal.SIGTERM)

    def _signal(self, sig: int) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._pidfd, sig)


class Zygote:
    """The template process, started once; `fork` asks it for a worker."""

    def __init__(self, socket_dir: Path, env: Mapping[str, str], timeout_s: float) -> None:
        self.socket_path = str(socket_dir / "zygote.sock")
        self.env = dict(env)
        self.timeout_s = timeout_s
        self.process: asyncio.subprocess.Process | None = None
        self._ready: asyncio.Task[bool] | None = None

    @staticmethod
    def supported() -> bool:
        return hasattr(os, "pidfd_open") and hasattr(signal, "pidfd_send_signal")

    def start(self) -> None:
        """Begin starting it (in the background): workers wait for it in `usable`."""
        if self._ready is None:
            self._ready = asyncio.get_running_loop().create_task(self._start(), name="zygote")

    async def usable(self) -> bool:
        """Whether workers can be forked (False: it failed to start; spawn them afresh)."""
        self.start()
        assert self._ready is not None
        ready = await asyncio.shield(self._ready)
        return ready and self.process is not None and self.process.returncode is None

    async def _start(self) -> bool:
        try:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "sluice.workers.zygote",
                "--socket",
                self.socket_path,
                "--parent",
                str(os.getpid()),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                env=self.env,
            )
            assert self.process.stdout is not None
            line = await asyncio.wait_for(self.process.stdout.readline(), self.timeout_s)
            if json.loads(line or b"{}").get("ready"):
                return True
            log.warning("the worker template did not start; workers start afresh")
        except (OSError, TimeoutError, ValueError) as exc:
            log.warning("the worker template did not start (%s); workers start afresh", exc)
        await self._stop_process()
        return False

    async def fork(self, argv: Sequence[str], env: Mapping[str, str]) -> ForkedProcess:
        """A worker running `sluice.workers.main` with `argv` and `env`."""
        assert self.process is not None
        read, write = os.pipe()
        try:
            request = json.dumps({"argv": list(argv), "env": dict(env)}).encode()
            # The worker writes its log where this process's stderr goes (descriptor 2).
            pid = await asyncio.to_thread(self._ask, request, [write, 2])
        except BaseException:
            os.close(read)
            raise
        finally:
            os.close(write)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read, "rb", buffering=0)
        )
        return ForkedProcess(pid, reader)

    def _ask(self, request: bytes, fds: list[int]) -> int:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(self.timeout_s)
            conn.connect(self.socket_path)
            socket.send_fds(conn, [request], fds)
            answer = json.loads(conn.makefile("rb").readline() or b"{}")
        if "pid" not in answer:
            raise OSError(f"the worker template forked nothing: {answer.get('error', 'no answer')}")
        pid: int = answer["pid"]
        return pid

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def fits(self, memory_mb: int | None) -> bool:
        """Whether a worker limited to `memory_mb` can start from here: a fork begins with
        the template's whole address space, which must leave it room."""
        if memory_mb is None:
            return True
        try:
            mapped: int = psutil.Process(self.pid).memory_info().vms
        except (psutil.Error, ValueError):
            return False
        return mapped * 1.5 < memory_mb * 1024 * 1024

    async def close(self) -> None:
        if self._ready is not None and not self._ready.done():
            self._ready.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ready
        await self._stop_process()

    async def _stop_process(self) -> None:
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.process.wait()
