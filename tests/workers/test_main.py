"""A worker's answers to the frames it reads: file requests answered together, a
malformed one failing alone, and answers sent before a request that kills the worker."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path
from typing import cast

from sluice.runtimes.base import Runtime
from sluice.runtimes.sklearn import SklearnRuntime
from sluice.workers import main, protocol
from sluice.workers.batching import Batching, take_head
from sluice.workers.file_request import Burst, FileRequest
from tests import models


def test_file_requests_read_together_are_answered_each_and_a_malformed_one_alone(
    tmp_path: Path,
) -> None:
    models.write_sklearn(tmp_path / "model", models.digits_logreg())
    runtime = SklearnRuntime(tmp_path / "model", {})
    runtime.load()
    x, y = models.digits()
    source = tmp_path / "in.json"
    source.write_text(json.dumps(x[:1].tolist()))

    def frame(request_id: int, body: bytes) -> protocol.Frame:
        packed = protocol.pack(request_id, protocol.FILE_REQUEST, 0, "", "", body)
        return next(protocol.split(bytearray(packed)))

    def request(name: str) -> bytes:
        return FileRequest(
            str(source), str(tmp_path / name), "application/json", "application/json", 1 << 20
        ).to_json()

    frames = [frame(1, request("a.out")), frame(2, b"{not json"), frame(3, request("b.out"))]
    burst = Burst()
    try:
        out = main.handle_files(runtime, frames, burst)
    finally:
        burst.close()
    replies = [next(protocol.split(bytearray(reply))) for reply in out]
    assert [(r.request_id, r.kind) for r in replies] == [
        (1, protocol.RESPONSE),
        (2, protocol.ERROR),
        (3, protocol.RESPONSE),
    ]
    assert burst.answered == {1, 3}
    for name in ("a.out", "b.out"):
        assert json.loads((tmp_path / name).read_text())["predictions"] == y[:1].tolist()


def test_file_requests_are_taken_up_to_the_first_other_frame() -> None:
    def frame(kind: int) -> protocol.Frame:
        return next(protocol.split(bytearray(protocol.pack(1, kind, 0, "", "", b""))))

    frames = [frame(protocol.FILE_REQUEST)] * 3
    frames += [frame(protocol.PING), frame(protocol.FILE_REQUEST)]
    taken = take_head(frames, main.BATCH_FRAMES, main._is_file_request)
    assert len(taken) == 3 and [f.kind for f in frames] == [protocol.PING, protocol.FILE_REQUEST]


class WorkerDies(BaseException):
    """Stands for a fatal signal: nothing in the worker catches it."""


class DyingRuntime:
    """Answers each request with its own body, and dies on `die`."""

    step_seconds = None

    def invoke_many(self, requests: list[tuple[bytes, str, str]]) -> list[tuple[bytes, str]]:
        if any(body == b"die" for body, _, _ in requests):
            raise WorkerDies
        return [(body, "application/octet-stream") for body, _, _ in requests]


def test_a_worker_that_dies_has_sent_the_answers_it_computed_before(tmp_path: Path) -> None:
    """The gateway blames a worker's death on its oldest unanswered request, so answers to
    requests read together with the fatal one must be on the wire before it runs."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(tmp_path / "worker.sock"))
    listener.listen(1)
    runtime = cast(Runtime, DyingRuntime())
    died: list[BaseException] = []

    def serve() -> None:
        try:
            main.serve(runtime, listener, Batching(max_size=1, cap=1))
        except WorkerDies as exc:
            died.append(exc)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.connect(str(tmp_path / "worker.sock"))
        sent = [(1, b"one"), (2, b"two"), (3, b"die"), (4, b"four")]
        conn.sendall(b"".join(protocol.pack(i, protocol.REQUEST, 0, "", "", b) for i, b in sent))
        thread.join(timeout=10)
        conn.shutdown(socket.SHUT_WR)
        received = bytearray()
        while chunk := conn.recv(1 << 16):
            received += chunk
    answers = [(f.request_id, f.body) for f in protocol.split(received)]
    assert died and answers == [(1, b"one"), (2, b"two")]
