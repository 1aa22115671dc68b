"""Group commit: many callers' writes of one kind in one transaction, on one thread.

Callers on the event loop `await submit(value)`; while a batch is being written, new
values wait, and go together in the next batch. Under load a transaction carries many
values (one commit for all); alone, a value is written at once (no added delay). One
thread per store also keeps this process's writers from fighting over SQLite's lock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    def __init__(
        self, apply: Callable[[Sequence[T]], Sequence[R]], executor: Executor, limit: int = 500
    ) -> None:
        self.apply = apply
        """Writes a batch in one transaction; one result per value, in order."""
        self.executor = executor
        self.limit = limit
        self.pending: list[tuple[T, asyncio.Future[R]]] = []
        self.drainer: asyncio.Task[None] | None = None
        """The task writing batches (held here: the loop keeps only weak references)."""

    async def submit(self, value: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self.pending.append((value, future))
        if self.drainer is None or self.drainer.done():
            self.drainer = asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self.pending:
            batch, self.pending = self.pending[: self.limit], self.pending[self.limit :]
            try:
                results = await loop.run_in_executor(
                    self.executor, self.apply, [value for value, _ in batch]
                )
            except Exception as exc:  # noqa: BLE001 - every caller of the batch hears it
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
