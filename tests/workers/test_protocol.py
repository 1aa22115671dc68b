from __future__ import annotations

from sluice.workers import protocol


def test_frames_survive_arbitrary_splits() -> None:
    frames = [
        protocol.Frame(1, protocol.REQUEST, 0, "application/json", "text/csv", b"[[1,2]]"),
        protocol.Frame(2, protocol.ERROR, 424, "ModelError", "", "bôom".encode()),
        protocol.Frame(0xFFFFFFFF, protocol.PING),
    ]
    stream = b"".join(protocol.encode(f) for f in frames)
    for cut in range(len(stream)):
        buffer = bytearray(stream[:cut])
        got = list(protocol.split(buffer))
        buffer += stream[cut:]
        got += list(protocol.split(buffer))
        assert got == frames
        assert buffer == bytearray()
