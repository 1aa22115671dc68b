"""The instances of one variant: spawn worker processes, restart them, pick the least busy.

Faults stay with the instance that has them: a worker that does not answer in time is
killed and replaced; one that fails `outlier_failures` requests in a row is ejected (out
of the pick list, as Envoy's outlier detection does) and replaced once its requests are
answered, while at most `outlier_max_ejected_percent` of the pool is out at once; the
requests waiting behind a worker that died go to another instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import time
import uuid
import zlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from sluice.errors import ModelLoadError, SluiceError, WorkerUnavailable
from sluice.processes import process_usage
from sluice.workers.client import Answer, ModelTarget, WorkerConnection, WorkerLost
from sluice.workers.file_request import FileRequest
from sluice.workers.forking import ForkedProcess, Zygote

log = logging.getLogger(__name__)

# Threads per worker for numeric libraries unless the model's environment says otherwise:
# many single-request workers on few cores run best without thread pools fighting.
T = TypeVar("T")
THREAD_DEFAULTS = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
PASSED_THROUGH = ("PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "VIRTUAL_ENV")
"""Of the server's own environment, only these (plus LC_*, the operator's PYTHON* and
the names in setting worker_environment) reach a worker: never the server's secrets."""


def worker_environment(
    server: Mapping[str, str], model: Mapping[str, str], extra_names: tuple[str, ...] = ()
) -> dict[str, str]:
    """A worker's environment: the safe part of the server's, then the model's own."""
    kept = {
        name: value
        for name, value in server.items()
        if name in PASSED_THROUGH or name in extra_names or name.startswith(("LC_", "PYTHON"))
    }
    return {**kept, **THREAD_DEFAULTS, **model}


@dataclass(frozen=True)
class WorkerSpec:
    """What every instance of a variant runs."""

    label: str
    model_dir: Path
    runtime: str
    environment: Mapping[str, str] = field(default_factory=dict)
    nice: int = 0
    """Added to the worker's scheduling niceness (shadows run behind production)."""
    memory_mb: int | None = None
    """The address space each worker may map (its instance type's limit); None: no limit."""


@dataclass
class PoolSettings:
    socket_dir: Path
    load_timeout_s: float = 120.0
    backoff_s: float = 0.5
    backoff_max_s: float = 30.0
    invocation_timeout_s: float = 60.0
    environment_names: tuple[str, ...] = ()
    """Names of the server's environment variables workers also get (the operator's
    choice: a GPU selection, a cache directory)."""
    outlier_failures: int = 5
    """Server-side failures in a row that eject an instance; 0: never eject."""
    outlier_max_ejected_percent: int = 50
    zygote: Zygote | None = None
    """Forks workers with their libraries loaded (None: each starts afresh)."""


class Instance:
    """One instance of a variant as the pool sees it: a connection to a worker, supervised
    (replaced when it goes down). `WorkerInstance` runs the worker as a process on this
    machine; the Ray backend's instance runs it on a cluster node."""

    def __init__(
        self,
        spec: WorkerSpec,
        index: int,
        settings: PoolSettings,
        on_change: Callable[[], None],
        on_restart: Callable[[], None],
    ) -> None:
        self.spec = spec
        self.index = index
        self.name = f"{spec.label}/{index}"
        self.loaded_models = 0
        """Models a multi-model worker holds, as its last answer said."""
        self.settings = settings
        self.on_change = on_change
        self.on_restart = on_restart
        self.connection: WorkerConnection | None = None
        self.restarts = 0
        self.failures = 0
        """Server-side failures in a row (reset by any success)."""
        self.ejected = False
        self.stopping = False
        self.supervisor: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        return self.connection is not None and self.connection.alive

    @property
    def pid(self) -> int | None:
        """The worker's process id (on the machine it runs on)."""
        raise NotImplementedError

    def usage(self) -> tuple[str, float, float] | None:
        """(a key unique to its process, CPU seconds so far, resident bytes) of a live
        worker; None when it is not known."""
        raise NotImplementedError

    async def start(self) -> None:
        """Start (or restart) the worker and connect; raise ModelLoadError with the
        loader's message. Starts the supervisor the first time."""
        raise NotImplementedError

    async def _down(self) -> object:
        """Return once the worker has gone down (what it exited with, for the log)."""
        raise NotImplementedError

    def _may_restart(self) -> bool:
        """False once the backend has closed (the server is stopping)."""
        return True

    async def _discard(self) -> None:
        """Get rid of a worker whose start failed half way."""

    def kill(self) -> None:
        """Kill the worker now (it is stuck); the supervisor starts a new one."""
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    def _connected(self, connection: WorkerConnection, loaded: int) -> None:
        self.connection = connection
        self.failures, self.ejected = 0, False
        self.loaded_models = loaded
        self.on_change()
        if self.supervisor is None:
            self.supervisor = asyncio.create_task(self._supervise(), name=f"supervise {self.name}")

    async def _supervise(self) -> None:
        consecutive = 0
        while not self.stopping:
            started = time.monotonic()
            code = await self._down()
            if self.connection is not None:
                self.connection.close()
            self.connection = None
            self.on_change()
            if self.stopping:
                return
            consecutive = 1 if time.monotonic() - started > 30 else consecutive + 1
            delay = min(
                self.settings.backoff_s * 2 ** (consecutive - 1), self.settings.backoff_max_s
            )
            log.warning(
                "worker %s exited with code %s; restarting in %.1f s", self.name, code, delay
            )
            self.restarts += 1
            self.on_restart()
            await asyncio.sleep(delay)
            while not self.stopping:
                if not self._may_restart():
                    log.info("not restarting %s: its backend has closed", self.name)
                    return
                try:
                    await self.start()
                    break
                except (SluiceError, OSError) as exc:
                    # Also a new worker that died before its first ping answered, or one
                    # stopped while it was loading: never an end to supervision.
                    if self.connection is not None:
                        self.connection.close()
                    self.connection = None
                    await self._discard()
                    if self.stopping:
                        return
                    log.error("restart of %s failed: %s", self.name, exc)
                    consecutive += 1
                    await asyncio.sleep(
                        min(self.settings.backoff_s * 2**consecutive, self.settings.backoff_max_s)
                    )

    async def eject(self) -> None:
        """Out of the pick list (the caller refreshes it), then replaced once its requests
        are answered."""
        log.warning(
            "worker %s failed %d requests in a row; ejecting and replacing it",
            self.name,
            self.failures,
        )
        await self.drain(self.settings.invocation_timeout_s)
        if self.ejected and not self.stopping:
            self.kill()

    async def drain(self, timeout: float) -> None:
        """Wait until this instance holds no request (it must already be out of the pick list)."""
        deadline = time.monotonic() + timeout
        while (
            self.connection is not None
            and self.connection.outstanding
            and time.monotonic() < deadline
        ):
            await asyncio.sleep(0.005)


class WorkerInstance(Instance):
    """One worker process on this machine and its connection."""

    def __init__(
        self,
        spec: WorkerSpec,
        index: int,
        settings: PoolSettings,
        on_change: Callable[[], None],
        on_restart: Callable[[], None],
    ) -> None:
        super().__init__(spec, index, settings, on_change, on_restart)
        self.process: asyncio.subprocess.Process | ForkedProcess | None = None
        self.socket_path = str(settings.socket_dir / f"{uuid.uuid4().hex[:12]}.sock")

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def usage(self) -> tuple[str, float, float] | None:
        pid = self.pid
        if pid is None or not self.alive:
            return None
        figures = process_usage(pid)
        return None if figures is None else (str(pid), *figures)

    async def start(self) -> None:
        """Spawn the process and connect; raise ModelLoadError with the loader's message."""
        env = worker_environment(os.environ, self.spec.environment, self.settings.environment_names)
        argv = [
            "--socket",
            self.socket_path,
            "--model-dir",
            str(self.spec.model_dir),
            "--runtime",
            self.spec.runtime,
            "--nice",
            str(self.spec.nice),
            "--memory-mb",
            str(self.spec.memory_mb or 0),
        ]
        zygote = self.settings.zygote
        self.process = None
        # A model's own variables may be read by its libraries as they are imported, and a
        # tight memory limit must hold from the first import: such a worker starts afresh
        # rather than from the template, which imported them.
        if (
            zygote is not None
            and all(name.startswith("SLUICE_") for name in self.spec.environment)
            and await zygote.usable()
            and zygote.fits(self.spec.memory_mb)
        ):
            try:
                self.process = await zygote.fork([*argv, "--parent", str(zygote.pid)], env)
            except OSError as exc:
                log.warning("%s: %s; starting it afresh", self.name, exc)
        if self.process is None:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "sluice.workers.main",
                *argv,
                "--parent",
                str(os.getpid()),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                env=env,
            )
        assert self.process.stdout is not None
        try:
            line = await asyncio.wait_for(
                self.process.stdout.readline(), self.settings.load_timeout_s
            )
        except TimeoutError:
            await self._kill()
            raise ModelLoadError(
                f"{self.name}: model did not load within {self.settings.load_timeout_s:g} s "
                "(setting model_load_timeout_s)"
            ) from None
        status = parse_ready(line)
        if "error" in status:
            await self.process.wait()
            raise ModelLoadError(f"{self.name}: model failed to load: {status['error']}")
        connection = await WorkerConnection.open(self.socket_path, self.name, on_timeout=self.kill)
        self.connection = connection
        await connection.ping(self.settings.load_timeout_s)
        self._connected(connection, int(status.get("loaded", 0)))  # type: ignore[call-overload]

    async def _down(self) -> object:
        assert self.process is not None
        return await self.process.wait()

    def _may_restart(self) -> bool:
        return self.settings.socket_dir.is_dir()

    async def _discard(self) -> None:
        await self._kill()

    def kill(self) -> None:
        """Kill the process now (it is stuck); the supervisor starts a new one."""
        if self.process is not None and self.process.returncode is None:
            log.warning("worker %s is stuck; killing it (it will be replaced)", self.name)
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()

    async def stop(self) -> None:
        self.stopping = True
        if self.connection is not None:
            self.connection.close()
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 5)
            except TimeoutError:
                await self._kill()
        if self.supervisor is not None:
            self.supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.supervisor
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)

    async def _kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.process.wait()


class WorkerPool:
    """All instances of one variant; `invoke` picks the one with fewest requests in flight."""

    takes: str | None = None
    """Requests name nothing (a variant whose requests name a model or a container wraps
    its pool)."""

    def __init__(
        self,
        spec: WorkerSpec,
        settings: PoolSettings,
        on_restart: Callable[[], None] = lambda: None,
        instance_class: Callable[
            [WorkerSpec, int, PoolSettings, Callable[[], None], Callable[[], None]], Instance
        ] = WorkerInstance,
    ) -> None:
        """`instance_class`: what an instance is (a worker process on this machine unless
        a backend says otherwise)."""
        self.spec = spec
        self.settings = settings
        self.on_restart = on_restart
        self.instance_class = instance_class
        self.instances: list[Instance] = []
        self.live: list[Instance] = []
        """Connected and not ejected: the pick list."""
        self.any_live = asyncio.Event()
        self.ejections: set[asyncio.Task[None]] = set()
        self.on_empty: Callable[[], None] | None = None
        """Called when a request finds no instance at all (scaled to zero)."""

    async def start(self, count: int) -> None:
        """Start `count` instances; if any fails to load, stop them all and raise."""
        await self.scale(count)

    async def scale(self, count: int) -> None:
        """Start or stop instances until `count` run; drops no request.

        A removed instance leaves the pick list first and stops once the requests it holds
        are answered (at most `invocation_timeout_s`).
        """
        while len(self.instances) > count:
            leaving = self.instances.pop()
            self._refresh()
            await leaving.drain(self.settings.invocation_timeout_s)
            await leaving.stop()
        new = [
            self.instance_class(self.spec, i, self.settings, self._refresh, self.on_restart)
            for i in range(len(self.instances), count)
        ]
        try:
            results = await asyncio.gather(*(w.start() for w in new), return_exceptions=True)
        except asyncio.CancelledError:
            # The endpoint was deleted (or the server is stopping) while these loaded.
            await asyncio.gather(*(w.stop() for w in new))
            raise
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            await asyncio.gather(*(w.stop() for w in new))
            raise failures[0]
        self.instances.extend(new)
        self._refresh()  # the new instances join the pick list

    def _refresh(self) -> None:
        self.live = [w for w in self.instances if w.alive and not w.ejected]
        if self.live:
            self.any_live.set()
        else:
            self.any_live.clear()

    async def invoke(
        self, body: bytes, content_type: str, accept: str, target: str | None = None
    ) -> Answer:
        """One request, on the least busy instance. `target` is always None here: a pool
        takes nothing a request names (`gateway.instances.target_of` refuses it first)."""
        return await self._invoke(body, content_type, accept, None)

    async def invoke_model(
        self,
        target: ModelTarget,
        body: bytes,
        content_type: str,
        accept: str,
        timeout: float | None = None,
    ) -> Answer:
        """One request for a model of a multi-model variant, on the instance that model
        belongs to (rendezvous hashing: each model stays on one instance, so the
        instances' caches add up). `timeout`: instead of the invocation timeout."""
        return await self._invoke(body, content_type, accept, target, timeout)

    async def _invoke(
        self,
        body: bytes,
        content_type: str,
        accept: str,
        target: ModelTarget | None,
        timeout: float | None = None,
    ) -> Answer:
        instance = await self._pick(target)
        try:
            answer = await self._call(instance, body, content_type, accept, target, timeout)
        except WorkerLost:
            # It waited behind a request that took its worker down, and never ran.
            others = [w for w in self.live if w is not instance and w.alive]
            if not others:
                raise
            instance = _choose(others, target)
            answer = await self._call(instance, body, content_type, accept, target, timeout)
        if answer.model is not None:
            instance.loaded_models = answer.model.loaded
        return answer

    async def invoke_file(self, request: FileRequest, timeout: float) -> str:
        """One request read from and answered into files (async inference); the answer's
        content type. Not retried here: the caller's queue retries what never ran."""
        return await self._on_one(lambda c: c.invoke_file(request, timeout))

    async def transform(self, chunk: bytes, timeout: float) -> dict[str, Any]:
        """One batch transform chunk on the least busy instance; its summary. Not retried
        here: the job's queue retries what never ran."""
        return await self._on_one(lambda c: c.transform(chunk, timeout))

    async def _on_one(self, call: Callable[[WorkerConnection], Awaitable[T]]) -> T:
        instance = await self._pick()
        connection = instance.connection
        if connection is None:
            raise WorkerLost(f"worker {instance.name} is restarting")
        try:
            result = await call(connection)
        except SluiceError as exc:
            if exc.server_side and not isinstance(exc, WorkerLost):
                self._failed(instance)
            raise
        instance.failures = 0
        return result

    @property
    def instance_count(self) -> int:
        return len(self.instances)

    async def _pick(self, target: ModelTarget | None = None) -> Instance:
        live = self.live
        if not all(w.alive for w in live) or not live:
            # One went down since the list was made (its restart is under way).
            self._refresh()
            if not self.live:
                await self._wait_for_live()
            live = self.live
        if len(live) == 1:
            return live[0]
        return _choose(live, target)

    async def _call(
        self,
        instance: Instance,
        body: bytes,
        content_type: str,
        accept: str,
        target: ModelTarget | None = None,
        timeout: float | None = None,
    ) -> Answer:
        connection = instance.connection
        if connection is None or not connection.alive:
            raise WorkerLost(f"worker {instance.name} is restarting")
        timeout = timeout or self.settings.invocation_timeout_s
        try:
            if target is None:
                answer = await connection.invoke(body, content_type, accept, timeout)
            else:
                answer = await connection.invoke_model(target, body, content_type, accept, timeout)
        except SluiceError as exc:
            if exc.server_side and not isinstance(exc, WorkerLost):
                self._failed(instance)
            raise
        instance.failures = 0
        return answer

    def _failed(self, instance: Instance) -> None:
        instance.failures += 1
        limit = self.settings.outlier_failures
        if not limit or instance.failures < limit or instance.ejected:
            return
        ejected = sum(w.ejected for w in self.instances)
        allowed = len(self.instances) * self.settings.outlier_max_ejected_percent // 100
        if ejected >= allowed:
            return
        instance.ejected = True
        self._refresh()
        task = asyncio.create_task(instance.eject(), name=f"eject {instance.name}")
        self.ejections.add(task)
        task.add_done_callback(self.ejections.discard)

    async def _wait_for_live(self) -> None:
        if not self.instances and self.on_empty is not None:
            self.on_empty()  # scaled to zero: ask for an instance, and hold the request
        try:
            await asyncio.wait_for(self.any_live.wait(), self.settings.invocation_timeout_s)
        except TimeoutError:
            raise WorkerUnavailable(
                f"no live worker for {self.spec.label} within "
                f"{self.settings.invocation_timeout_s:g} s (setting invocation_timeout_s)"
            ) from None

    async def drain(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while any(_outstanding(w) for w in self.instances) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    @property
    def loaded_models(self) -> int:
        """Models loaded across the instances of a multi-model variant."""
        return sum(w.loaded_models for w in self.instances if w.alive)

    @property
    def pids(self) -> list[int]:
        return [w.pid for w in self.instances if w.pid is not None and w.alive]

    def usage(self) -> dict[str, tuple[float, float]]:
        """CPU seconds and resident bytes of each live instance's worker, by a key unique
        to its process."""
        figures = (w.usage() for w in list(self.instances))
        return {key: (cpu, rss) for key, cpu, rss in filter(None, figures)}

    @property
    def restarts(self) -> int:
        return sum(w.restarts for w in self.instances)

    async def stop(self) -> None:
        await asyncio.gather(*(w.stop() for w in self.instances))
        for task in list(self.ejections):
            task.cancel()
        self.instances.clear()
        self._refresh()


def _choose(instances: list[Instance], target: ModelTarget | None) -> Instance:
    """The instance a request goes to: its model's owner, else the least busy."""
    if target is not None and not target.everywhere:
        return _owner(instances, target)
    return min(instances, key=_outstanding)


def _owner(instances: list[Instance], target: ModelTarget) -> Instance:
    """The instance a model belongs to among `instances` (highest random weight)."""
    return max(instances, key=lambda w: zlib.crc32(f"{w.index}/{target.directory}".encode()))


def _outstanding(instance: Instance) -> int:
    return instance.connection.outstanding if instance.connection is not None else 0


def parse_ready(line: bytes) -> dict[str, object]:
    if not line:
        return {"error": "worker exited before it was ready (see the server log)"}
    try:
        parsed = json.loads(line)
    except ValueError:
        return {"error": f"unexpected worker output {line[:200]!r}"}
    return parsed if isinstance(parsed, dict) else {"error": f"unexpected worker output {parsed!r}"}
