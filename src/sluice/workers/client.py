"""Gateway side of the worker link: one persistent connection, futures resolved by id."""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from sluice.errors import (
    ModelError,
    SluiceError,
    UnsupportedContentType,
    ValidationError,
    WorkerUnavailable,
)
from sluice.workers import protocol
from sluice.workers.batching import CacheOutcome, parse_stats
from sluice.workers.file_request import FileRequest

# The errors a worker reports, by (code, status); anything else keeps its code and status.
WORKER_ERRORS: dict[tuple[str, int], type[SluiceError]] = {
    (cls.code, cls.status): cls for cls in (ValidationError, UnsupportedContentType)
}


@dataclass(slots=True)
class Answer:
    body: bytes
    content_type: str
    batch_size: int = 1
    """Requests in the dynamic batch that answered this one."""
    queued_s: float = 0.0
    """Time it waited in the worker before its batch started."""
    model: CacheOutcome | None = None
    """For a multi-model endpoint: whether its model was loaded already, and loads."""
    steps: tuple[float, ...] | None = None
    """For an inference pipeline: each container's time on the batch this was in."""


@dataclass(frozen=True, slots=True)
class ModelTarget:
    """One model of a multi-model endpoint, unpacked by the gateway (or one container of
    a multi-container endpoint)."""

    key: str
    """TargetModel: the model's key under the endpoint's prefix."""
    directory: str
    runtime: str
    everywhere: bool = False
    """Every instance holds it (a pinned model, a container): the least busy answers,
    not the one it hashes to."""


class WorkerLost(WorkerUnavailable):
    """The worker exited while this request waited behind another one: it never ran, so
    it may be sent to another instance."""


class WorkerDied(ModelError):
    """The worker exited while running this request. Real-time calls answer it as the
    model's error and never retry it (the input may crash every worker it reaches); the
    async queue retries it a bounded number of times (the death may have had another cause)."""


class WorkerConnection(asyncio.Protocol):
    """Multiplexes many in-flight requests over one Unix socket to one worker.

    The worker answers its requests in the order they were sent, so when it exits the
    oldest unanswered request is one it was running: that one fails as a ModelError
    (retrying an input that may have crashed a worker would crash more), the others as
    WorkerLost (retryable). With dynamic batching the others of its batch were running
    too; one of them may have been the cause, and is retried once on another instance.
    `on_timeout` is called when a request times out: the worker is stuck, and its owner
    replaces it.
    """

    def __init__(self, name: str, on_timeout: Callable[[], None] | None = None) -> None:
        self.name = name
        self.on_timeout = on_timeout
        self.stuck = False
        """A request timed out: the worker is stuck on it and about to be replaced, so the
        requests behind it never ran."""
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.pending: dict[int, asyncio.Future[protocol.Frame]] = {}
        self.ids = itertools.count(1)
        self.closed = asyncio.get_running_loop().create_future()

    @classmethod
    async def open(
        cls, path: str, name: str, on_timeout: Callable[[], None] | None = None
    ) -> WorkerConnection:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_unix_connection(lambda: cls(name, on_timeout), path)
        return conn

    @classmethod
    async def open_tcp(
        cls,
        host: str,
        port: int,
        token: bytes,
        name: str,
        on_timeout: Callable[[], None] | None = None,
    ) -> WorkerConnection:
        """A worker on another machine (a cluster node): TCP, opened with its token."""
        loop = asyncio.get_running_loop()
        transport, conn = await loop.create_connection(lambda: cls(name, on_timeout), host, port)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport.write(token)
        return conn

    @property
    def outstanding(self) -> int:
        return len(self.pending)

    @property
    def alive(self) -> bool:
        return self.transport is not None and not self.closed.done()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        for frame in protocol.split(self.buffer):
            future = self.pending.pop(frame.request_id, None)
            if future is not None and not future.done():
                future.set_result(frame)

    def connection_lost(self, exc: Exception | None) -> None:
        running = not self.stuck
        for future in self.pending.values():
            if future.done():
                continue
            if running:
                future.set_exception(
                    WorkerDied(
                        f"the worker {self.name} exited while handling this request (the "
                        "model crashed, ran out of memory or was killed)",
                        original_status=500,
                    )
                )
                running = False
            else:
                future.set_exception(
                    WorkerLost(f"worker {self.name} exited before handling the request")
                )
        self.pending.clear()
        if not self.closed.done():
            self.closed.set_result(None)

    async def send(
        self, kind: int, content_type: str, accept: str, body: bytes, timeout: float
    ) -> protocol.Frame:
        if not self.alive:
            raise WorkerUnavailable(f"worker {self.name} is not connected")
        request_id = next(self.ids) & 0xFFFFFFFF
        loop = asyncio.get_running_loop()
        future: asyncio.Future[protocol.Frame] = loop.create_future()
        self.pending[request_id] = future
        assert self.transport is not None
        self.transport.write(protocol.pack(request_id, kind, 0, content_type, accept, body))
        # A timer instead of asyncio.wait_for: no extra task per request.
        timer = loop.call_later(timeout, self._expire, future, timeout)
        try:
            return await future
        finally:
            timer.cancel()
            self.pending.pop(request_id, None)

    async def invoke(
        self, body: bytes, content_type: str, accept: str, timeout: float = 60.0
    ) -> Answer:
        """Send one request; raise the worker's error as the matching SluiceError."""
        frame = await self.send(protocol.REQUEST, content_type, accept, body, timeout)
        if frame.kind == protocol.RESPONSE:
            return Answer(frame.body, frame.text1, *parse_stats(frame.text2))
        raise error_from(frame)

    async def invoke_model(
        self, target: ModelTarget, body: bytes, content_type: str, accept: str, timeout: float
    ) -> Answer:
        """Send one request for a model of a multi-model worker."""
        framed = protocol.model_request_body(target.runtime, target.directory, body)
        frame = await self.send(protocol.MODEL_REQUEST, content_type, accept, framed, timeout)
        if frame.kind == protocol.RESPONSE:
            return Answer(frame.body, frame.text1, *parse_stats(frame.text2))
        raise error_from(frame)

    async def invoke_file(self, request: FileRequest, timeout: float) -> str:
        """Have the worker answer a request from its input file into its output file;
        the answer's content type."""
        frame = await self.send(protocol.FILE_REQUEST, "", "", request.to_json(), timeout)
        if frame.kind == protocol.RESPONSE:
            return frame.text1
        raise error_from(frame)

    async def transform(self, chunk: bytes, timeout: float) -> dict[str, Any]:
        """Have the worker transform one batch chunk (JSON of `workers.transform.Chunk`);
        its summary."""
        frame = await self.send(protocol.TRANSFORM_REQUEST, "", "", chunk, timeout)
        if frame.kind == protocol.RESPONSE:
            summary: dict[str, Any] = json.loads(frame.body)
            return summary
        raise error_from(frame)

    async def ping(self, timeout: float = 5.0) -> None:
        await self.send(protocol.PING, "", "", b"", timeout)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _expire(self, future: asyncio.Future[protocol.Frame], timeout: float) -> None:
        if future.done():
            return
        if self.stuck:
            # Sent behind the request the worker is stuck on: it never ran.
            future.set_exception(WorkerLost(f"worker {self.name} is stuck on another request"))
            return
        future.set_exception(
            ModelError(
                f"the model did not answer within {timeout:g} s (setting invocation_timeout_s); "
                "its worker is replaced",
                original_status=504,
            )
        )
        self.stuck = True
        if self.on_timeout is not None:
            self.on_timeout()


def error_from(frame: protocol.Frame) -> SluiceError:
    message = frame.body.decode(errors="replace")
    if frame.text1 == ModelError.code:
        return ModelError(message)
    cls = WORKER_ERRORS.get((frame.text1, frame.status))
    if cls is not None:
        return cls(message, field=frame.text2 or None)
    error = SluiceError(message, field=frame.text2 or None)
    error.code, error.status = frame.text1, frame.status
    return error
