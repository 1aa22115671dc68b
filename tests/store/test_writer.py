"""The store's writer thread: writes in order, urgent ones ahead of the background."""

from __future__ import annotations

import threading

import pytest

from sluice.store.writer import Writer


def test_urgent_writes_go_ahead_of_waiting_background_ones() -> None:
    writer = Writer("test-writer")
    started, release = threading.Event(), threading.Event()
    done: list[str] = []

    def running() -> None:
        started.set()
        release.wait(5)
        done.append("running")

    first = writer.background.submit(running)
    assert started.wait(5)  # the writer is busy: what comes now waits
    later = [writer.background.submit(done.append, f"background {i}") for i in range(2)]
    urgent = writer.urgent.submit(done.append, "urgent")
    release.set()
    for future in (first, *later, urgent):
        future.result(5)
    assert done == ["running", "urgent", "background 0", "background 1"]


def test_a_failing_write_fails_its_caller_and_the_writer_goes_on() -> None:
    writer = Writer("test-writer")

    def fail() -> None:
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        writer.urgent.submit(fail).result(5)
    assert writer.background.submit(lambda: 42).result(5) == 42
