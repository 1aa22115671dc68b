"""A worker's answers to the frames it reads: file requests answered together, a
malformed one failing alone."""

from __future__ import annotations

import json
from pathlib import Path

from sluice.runtimes.sklearn import SklearnRuntime
from sluice.workers import main, protocol
from sluice.workers.batching import take_head
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
