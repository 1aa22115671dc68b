"""Run a job's program through the sandbox: its output into the job's log, line by line,
its time bounded, and a stop that asks first (SIGTERM) and insists after a grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sluice.jobs.output import JobLog

MAX_LINE = 64 * 1024
EXIT_POLL_S = 0.05
DRAIN_S = 5.0
"""How long output is read after the program ended, before what it left is killed."""


@dataclass(frozen=True)
class Program:
    argv: list[str]
    env: dict[str, str]
    cwd: str
    """As the program sees them: paths under /opt/ml."""


@dataclass(frozen=True)
class Ended:
    exit_code: int
    timed_out: bool = False
    stopped: bool = False
    seconds: float = 0.0


class Launch:
    """One run of one program, with the job's folder (`ml/` inside it) at /opt/ml."""

    def __init__(
        self,
        folder: Path,
        program: Program,
        on_line: Callable[[str], None],
        on_start: Callable[[int], None] | None = None,
        isolate: bool = True,
        memory_mb: int | None = None,
    ) -> None:
        self.folder = folder
        self.program = program
        self.on_line = on_line
        self.on_start = on_start
        self.isolate = isolate
        self.memory_mb = memory_mb
        """The address space each of the program's processes may map (None: no limit)."""
        self.process: asyncio.subprocess.Process | None = None
        self._stop = asyncio.Event()

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def stop(self) -> None:
        self._stop.set()

    async def run(self, max_runtime_s: float | None, grace_s: float) -> Ended:
        spec = self.folder / "launch.json"
        spec.write_text(
            json.dumps(
                {
                    "argv": self.program.argv,
                    "env": self.program.env,
                    "cwd": self.program.cwd,
                    "root": str(self.folder / "ml"),
                    "parent": os.getpid(),
                    "isolate": self.isolate,
                    "memory_mb": self.memory_mb,
                }
            )
        )
        started = time.monotonic()
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "sluice.jobs.sandbox",
            str(spec),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
            limit=MAX_LINE,
        )
        if self.on_start is not None:
            self.on_start(self.process.pid)
        reader = asyncio.create_task(self._read())
        waiter = asyncio.create_task(self._exited())
        stopper = asyncio.create_task(self._stop.wait())
        timed_out = stopped = False
        try:
            done, _ = await asyncio.wait(
                {waiter, stopper}, timeout=max_runtime_s, return_when=asyncio.FIRST_COMPLETED
            )
            if waiter not in done:
                timed_out, stopped = not done, bool(done)
                await self._end(waiter, grace_s)
            try:
                await asyncio.wait_for(asyncio.shield(reader), DRAIN_S)
            except TimeoutError:  # something the program left holds its output open
                self._kill()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(reader, DRAIN_S)
            await asyncio.sleep(0.01)  # the closed pipe's callbacks run
        finally:
            stopper.cancel()
            if not waiter.done():  # cancelled: the server is stopping, the job ends now
                self._kill()
                waiter.cancel()
            reader.cancel()
        code = self.process.returncode if self.process.returncode is not None else -9
        return Ended(code, timed_out, stopped, time.monotonic() - started)

    async def _exited(self) -> int:
        """The program's exit code, once it has exited. (Process.wait() also waits for
        its output to close, which a process it left behind can hold open.)"""
        assert self.process is not None
        while self.process.returncode is None:
            await asyncio.sleep(EXIT_POLL_S)
        return self.process.returncode

    async def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        with JobLog(self.folder) as log:
            while True:
                try:
                    raw = await self.process.stdout.readline()
                except ValueError:  # a line over MAX_LINE: take what is there
                    raw = await self.process.stdout.read(MAX_LINE)
                if not raw:
                    return
                log.write(raw)
                self.on_line(raw.decode("utf-8", "replace").rstrip("\n"))

    async def _end(self, waiter: asyncio.Task[int], grace_s: float) -> None:
        """SIGTERM (passed on to the program), then SIGKILL to everything it started."""
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), grace_s)
        except TimeoutError:
            self._kill()
            await waiter

    def _kill(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
