"""SageMaker's RecordIO framing (MXNet's): each part is a little-endian `uint32` magic
0xced7230a, a `uint32` whose top 3 bits flag the part (0 whole record; 1 first, 2 middle,
3 last of a record in several parts) and low 29 bits give its length, the data, and zero
padding to a multiple of 4 bytes. A record's bytes, as sent to a model, keep the framing.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from sluice.errors import ValidationError

MAGIC = 0xCED7230A
HEADER = struct.Struct("<II")


def records(data: bytes, offset: int = 0) -> Iterator[tuple[int, int]]:
    """(start, end) of each whole record in `data`, parts of one record counted as one;
    `offset` is where `data` begins in its file (for error messages)."""
    position = 0
    start = 0
    open_record = False
    while position < len(data):
        if len(data) - position < HEADER.size:
            raise _broken(offset + position, "a truncated header")
        magic, word = HEADER.unpack_from(data, position)
        if magic != MAGIC:
            raise _broken(offset + position, f"magic {magic:#010x}, not {MAGIC:#010x}")
        flag, length = word >> 29, word & ((1 << 29) - 1)
        end = position + HEADER.size + length + (-length % 4)
        if end > len(data):
            raise _broken(offset + position, "a record longer than what follows")
        if not open_record:
            start = position
        if flag in (0, 3):
            if flag == 3 and not open_record:
                raise _broken(offset + position, "a last part with no first part")
            open_record = False
            yield start, end
        else:
            if flag == 1 and open_record:
                raise _broken(offset + position, "a first part inside another record")
            open_record = True
        position = end
    if open_record:
        raise _broken(offset + position, "a record whose last part is missing")


def _broken(at: int, what: str) -> ValidationError:
    return ValidationError(f"not RecordIO at byte {at}: {what}", field="TransformInput.SplitType")


def frame(payload: bytes) -> bytes:
    """One whole record holding `payload` (for tests and tools)."""
    return HEADER.pack(MAGIC, len(payload)) + payload + b"\0" * (-len(payload) % 4)
