"""Gateway-worker framing: small binary frames over one persistent Unix socket.

Every frame is `<I` (length of the rest) followed by a fixed header `<IBHHH`
(request id, kind, status, len(text1), len(text2)), then text1, text2 and the body.

- REQUEST:  text1 = content type, text2 = accept, body = request bytes.
- RESPONSE: status 200, text1 = content type, body = answer bytes.
- ERROR:    status = HTTP status, text1 = error code, text2 = field, body = message.
- PING / PONG: health checks; no text, no body.
- FILE_REQUEST: body = JSON of `sluice.workers.file_request.FileRequest`: the worker
  reads the request from the input file and writes the answer to the output file
  (payloads up to a gigabyte never pass through the gateway); answered by a RESPONSE
  whose body is empty, once the answer is on disk.
- MODEL_REQUEST: a REQUEST for one model of a multi-model worker: text1 and text2 as for
  REQUEST, body = runtime name, NUL, the model's directory, NUL, request bytes.
- TRANSFORM_REQUEST: body = JSON of a batch transform chunk (`sluice.workers.transform.Chunk`):
  the worker reads its records, predicts and writes the answers itself; answered by a
  RESPONSE whose body is the chunk's JSON summary (records, failures, first error).

No pickles: a frame is bytes in and bytes out.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

REQUEST = 1
RESPONSE = 2
ERROR = 3
PING = 4
PONG = 5
FILE_REQUEST = 6
TRANSFORM_REQUEST = 7
MODEL_REQUEST = 8

LENGTH = struct.Struct("<I")
HEADER = struct.Struct("<IBHHH")
PREFIX = LENGTH.size + HEADER.size
MAX_FRAME = 1 << 30


@dataclass(slots=True)
class Frame:
    request_id: int
    kind: int
    status: int = 0
    text1: str = ""
    text2: str = ""
    body: bytes = b""


def encode(frame: Frame) -> bytes:
    return pack(frame.request_id, frame.kind, frame.status, frame.text1, frame.text2, frame.body)


def pack(request_id: int, kind: int, status: int, text1: str, text2: str, body: bytes) -> bytes:
    t1 = text1.encode()
    t2 = text2.encode()
    rest = HEADER.size + len(t1) + len(t2) + len(body)
    return b"".join(
        (LENGTH.pack(rest), HEADER.pack(request_id, kind, status, len(t1), len(t2)), t1, t2, body)
    )


def model_request_body(runtime: str, directory: str, payload: bytes) -> bytes:
    """A MODEL_REQUEST frame's body."""
    return b"".join((runtime.encode(), b"\0", directory.encode(), b"\0", payload))


def parse_model_request(body: bytes) -> tuple[str, str, bytes]:
    """(runtime, directory, request bytes) from a MODEL_REQUEST frame's body."""
    runtime, _, rest = body.partition(b"\0")
    directory, _, payload = rest.partition(b"\0")
    return runtime.decode(), directory.decode(), payload


def request_id_of(packed: bytes) -> int:
    """The request id of a frame as `pack` made it."""
    request_id: int = HEADER.unpack_from(packed, LENGTH.size)[0]
    return request_id


def split(buffer: bytearray) -> Iterator[Frame]:
    """Yield every complete frame at the front of `buffer` and remove them from it."""
    pos = 0
    size = len(buffer)
    view = memoryview(buffer)
    try:
        while size - pos >= PREFIX:
            (rest,) = LENGTH.unpack_from(buffer, pos)
            if rest > MAX_FRAME:
                raise ValueError(f"frame of {rest} bytes is over the limit")
            end = pos + LENGTH.size + rest
            if end > size:
                break
            request_id, kind, status, n1, n2 = HEADER.unpack_from(buffer, pos + LENGTH.size)
            start = pos + PREFIX
            text1 = bytes(view[start : start + n1]).decode()
            text2 = bytes(view[start + n1 : start + n1 + n2]).decode()
            body = bytes(view[start + n1 + n2 : end])
            pos = end
            yield Frame(request_id, kind, status, text1, text2, body)
    finally:
        view.release()
        del buffer[:pos]
