"""One thread for a store's writes, with two lanes: writes a client waits on go first.

SQLite takes one writer at a time, so a server's queue writes run on one thread (two
threads would only wait on each other's lock). Writes a client is waiting on (an async
request being accepted) go in the urgent lane; bookkeeping nobody waits on (claims,
outcomes, retries) in the background lane, taken only when no urgent write waits. An
urgent write thus waits for at most the one background write under way.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any, TypeVar

T = TypeVar("T")


class Writer:
    def __init__(self, name: str) -> None:
        self.name = name
        self._lanes: tuple[deque[_Job], deque[_Job]] = (deque(), deque())
        self._ready = threading.Condition()
        self._thread: threading.Thread | None = None
        self.urgent = Lane(self, 0)
        """Writes a client waits on."""
        self.background = Lane(self, 1)
        """Everything else."""

    def _put(self, lane: int, job: _Job) -> None:
        with self._ready:
            self._lanes[lane].append(job)
            if self._thread is None:
                # A daemon: a write cut short at exit is a transaction SQLite rolls back.
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
            self._ready.notify()

    def _run(self) -> None:
        urgent, background = self._lanes
        while True:
            with self._ready:
                while not urgent and not background:
                    self._ready.wait()
                job = urgent.popleft() if urgent else background.popleft()
            job.run()


class Lane(Executor):
    """One lane of a `Writer`, as an executor (for `loop.run_in_executor`)."""

    def __init__(self, writer: Writer, index: int) -> None:
        self.writer = writer
        self.index = index

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        future: Future[T] = Future()
        self.writer._put(self.index, _Job(future, fn, args, kwargs))
        return future


class _Job:
    __slots__ = ("args", "fn", "future", "kwargs")

    def __init__(self, future: Future[Any], fn: Callable[..., Any], args: Any, kwargs: Any) -> None:
        self.future = future
        self.fn = fn
        self.args = args
        self.kwargs = kwargs

    def run(self) -> None:
        if not self.future.set_running_or_notify_cancel():
            return
        try:
            result = self.fn(*self.args, **self.kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits
            self.future.set_exception(exc)
        else:
            self.future.set_result(result)
