"""Gateway side of the worker link: one persistent connection, futures resolved by id."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from typing import cast

from sluice.errors import (
    ModelError,
    SluiceError,
    UnsupportedContentType,
    ValidationError,
    WorkerUnavailable,
)
from sluice.workers import protocol

# The errors a worker reports, by (code, status); anything else keeps its code and status.
WORKER_ERRORS: dict[tuple[str, int], type[SluiceError]] = {
    (cls.code, cls.status): cls for cls in (ValidationError, UnsupportedContentType)
}


@dataclass(slots=True)
class Answer:
    body: bytes
    content_type: str


class WorkerConnection(asyncio.Protocol):
    """Multiplexes many in-flight requests over one Unix socket to one worker."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.pending: dict[int, asyncio.Future[protocol.Frame]] = {}
        self.ids = itertools.count(1)
        self.closed = asyncio.get_running_loop().create_future()

    @classmethod
    async def open(cls, path: str, name: str) -> WorkerConnection:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_unix_connection(lambda: cls(name), path)
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
        error = WorkerUnavailable(f"worker {self.name} exited while handling the request")
        for future in self.pending.values():
            if not future.done():
                future.set_exception(error)
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
        timer = loop.call_later(timeout, _expire, future, timeout)
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
            return Answer(frame.body, frame.text1)
        raise error_from(frame)

    async def ping(self, timeout: float = 5.0) -> None:
        await self.send(protocol.PING, "", "", b"", timeout)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def _expire(future: asyncio.Future[protocol.Frame], timeout: float) -> None:
    if not future.done():
        future.set_exception(
            ModelError(
                f"the model did not answer within {timeout:g} s (setting invocation_timeout_s)",
                original_status=504,
            )
        )


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
