"""How a worker sends answers back: at once, or after the burst's files reach the disk;
an answer whose file could not be forced to disk is reported as a failure."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from sluice.workers import main, protocol
from sluice.workers.file_request import Burst


def received(peer: socket.socket, count: int) -> list[protocol.Frame]:
    buffer = bytearray()
    frames: list[protocol.Frame] = []
    while len(frames) < count:
        buffer += peer.recv(1 << 16)
        frames += protocol.split(buffer)
    return frames


def ok(request_id: int) -> bytes:
    return protocol.pack(request_id, protocol.RESPONSE, 200, "application/json", "", b"")


@pytest.fixture
def pair() -> tuple[socket.socket, socket.socket]:
    return socket.socketpair()


def test_answers_without_files_go_at_once_and_file_answers_after_the_sync(
    pair: tuple[socket.socket, socket.socket], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker, gateway = pair
    synced: list[list[Path]] = []
    monkeypatch.setattr(main, "sync_to_disk", lambda paths: synced.append(list(paths)))
    replies = main.Replies(worker)
    replies.send(Burst(), [ok(1)])
    assert [f.request_id for f in received(gateway, 1)] == [1]
    burst = Burst()
    burst.written.append(tmp_path / "a.out")
    burst.answered.add(2)
    replies.send(burst, [ok(2), ok(3)])
    frames = received(gateway, 2)
    assert [(f.request_id, f.kind) for f in frames] == [
        (2, protocol.RESPONSE),
        (3, protocol.RESPONSE),
    ]
    assert synced == [[tmp_path / "a.out"]]


def test_a_failed_sync_turns_the_file_answers_into_failures(
    pair: tuple[socket.socket, socket.socket], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker, gateway = pair

    def failing(paths: list[Path]) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(main, "sync_to_disk", failing)
    burst = Burst()
    burst.written.append(tmp_path / "a.out")
    burst.answered.add(7)
    main.Replies(worker).send(burst, [ok(7), ok(8)])
    failed, other = received(gateway, 2)
    assert (failed.request_id, failed.kind, failed.status) == (7, protocol.ERROR, 500)
    assert b"could not be forced to disk" in failed.body
    assert (other.request_id, other.kind) == (8, protocol.RESPONSE)  # a real-time answer
