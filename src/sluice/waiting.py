"""Waiting for an event with a time limit, without losing a cancellation."""

from __future__ import annotations

import asyncio


async def wait_at_most(event: asyncio.Event, seconds: float) -> bool:
    """Wait until `event` is set or `seconds` pass; True if it was set.

    `asyncio.wait_for` on Python 3.11 loses a cancellation that arrives as the awaited
    thing finishes (the loop then never stops); `asyncio.timeout` does not.
    """
    try:
        async with asyncio.timeout(max(0.0, seconds)):
            await event.wait()
    except TimeoutError:
        return False
    return True
