"""A loop that waits for an event with a time limit still stops when it is cancelled."""

from __future__ import annotations

import asyncio

import pytest

from sluice.waiting import wait_at_most


async def test_it_answers_whether_the_event_came() -> None:
    event = asyncio.Event()
    assert await wait_at_most(event, 0.01) is False
    event.set()
    assert await wait_at_most(event, 10) is True
    assert await wait_at_most(asyncio.Event(), -1) is False


async def test_a_cancellation_arriving_with_the_event_is_not_lost() -> None:
    for _ in range(50):
        event = asyncio.Event()

        async def loop(event: asyncio.Event = event) -> None:
            while True:
                await wait_at_most(event, 10)
                event.clear()

        task = asyncio.create_task(loop())
        await asyncio.sleep(0)  # the loop now waits
        event.set()
        task.cancel()  # in the same step as the event: the race wait_for loses
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 5)
