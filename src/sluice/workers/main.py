"""Worker process entry: load the runtime once, then serve frames on a Unix socket.

Started by the gateway as `python -m sluice.workers.main --socket PATH --model-dir DIR
--runtime NAME`. It prints one JSON line on stdout: `{"ready": true, "pid": N}` once the
model is loaded and the socket listens, or `{"error": "..."}` if loading failed.
The serve loop is plain blocking IO: one request at a time, answers written in bursts.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import resource
import signal
import socket
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

from sluice.errors import ModelError, SluiceError, ValidationError
from sluice.processes import die_with_parent
from sluice.types import JSON
from sluice.workers import protocol
from sluice.workers.protocol import Frame

if TYPE_CHECKING:
    from sluice.runtimes.base import Runtime as RuntimeType

log = logging.getLogger("sluice.worker")


def handle(runtime: object, frame: Frame) -> bytes:
    """Answer one frame; never raises."""
    from sluice.runtimes.base import Runtime

    assert isinstance(runtime, Runtime)
    if frame.kind == protocol.PING:
        return protocol.pack(frame.request_id, protocol.PONG, 200, "", "", b"")
    try:
        if frame.kind == protocol.FILE_REQUEST:
            return _invoke_file(runtime, frame)
        if frame.kind == protocol.TRANSFORM_REQUEST:
            from sluice.workers import transform

            summary = json.dumps(transform.run(runtime, frame.body)).encode()
            return protocol.pack(frame.request_id, protocol.RESPONSE, 200, JSON, "", summary)
        body, content_type = runtime.invoke(frame.body, frame.text1, frame.text2)
        return protocol.pack(frame.request_id, protocol.RESPONSE, 200, content_type, "", body)
    except SluiceError as exc:
        if isinstance(exc, ModelError):
            log.error("model error on request %d:\n%s", frame.request_id, traceback.format_exc())
        return protocol.pack(
            frame.request_id,
            protocol.ERROR,
            exc.status,
            exc.code,
            exc.field or "",
            exc.message.encode(),
        )
    except Exception as exc:  # noqa: BLE001 - a model's failure must never kill the worker
        log.error("model error on request %d:\n%s", frame.request_id, traceback.format_exc())
        message = f"{type(exc).__name__}: {exc}".encode()
        return protocol.pack(frame.request_id, protocol.ERROR, 424, "ModelError", "", message)


def _invoke_file(runtime: RuntimeType, frame: Frame) -> bytes:
    """Read the request from the file the gateway named, write the answer to the other
    (the gateway forces it to disk, with others, before it records the outcome)."""
    paths = json.loads(frame.body)
    try:
        body = Path(paths["input"]).read_bytes()
    except OSError as exc:
        raise ValidationError(
            f"cannot read the input: {exc.strerror}", field="InputLocation"
        ) from None
    answer, content_type = runtime.invoke(body, frame.text1, frame.text2)
    del body
    with open(paths["output"], "wb") as out:
        out.write(answer)
    return protocol.pack(frame.request_id, protocol.RESPONSE, 200, content_type, "", b"")


def serve(runtime: object, listener: socket.socket) -> None:
    """Serve the gateway's one connection; return when it closes (the gateway stopped or died)."""
    conn, _ = listener.accept()
    with conn:
        buffer = bytearray()
        while True:
            chunk = conn.recv(1 << 18)
            if not chunk:
                return
            buffer += chunk
            out = [handle(runtime, frame) for frame in protocol.split(buffer)]
            if out:
                conn.sendall(b"".join(out))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sluice-worker")
    parser.add_argument("--socket", required=True)
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--runtime", required=True)
    parser.add_argument("--nice", type=int, default=0)
    parser.add_argument("--memory-mb", type=int, default=0)
    parser.add_argument("--parent", type=int, default=0, help="the server's pid")
    args = parser.parse_args(argv)
    die_with_parent(args.parent)
    if args.nice:
        os.nice(args.nice)
    if args.memory_mb:
        # The address space this process may map: beyond it allocations fail (MemoryError).
        limit = args.memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format=f"%(asctime)s worker[{os.getpid()}] %(levelname)s %(message)s",
    )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the gateway decides when workers stop
    try:
        from sluice.runtimes.registry import runtime_class

        runtime = runtime_class(args.runtime)(Path(args.model_dir), dict(os.environ))
        runtime.load()
        gc.freeze()  # the loaded model is permanent: no collector sweeps through it
    except BaseException as exc:  # noqa: BLE001 - report every load failure to the gateway
        log.error("model failed to load:\n%s", traceback.format_exc())
        message = f"{type(exc).__name__}: {exc}"
        if args.memory_mb:
            message += f" (the worker may map {args.memory_mb} MiB: setting instance_memory_mb)"
        print(json.dumps({"error": message}), flush=True)
        return 1
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if os.path.exists(args.socket):
        os.unlink(args.socket)
    listener.bind(args.socket)
    listener.listen(8)
    print(json.dumps({"ready": True, "pid": os.getpid()}), flush=True)
    # From here on, whatever the model prints goes to the log, never into the ready pipe.
    os.dup2(2, 1)
    try:
        serve(runtime, listener)
    finally:
        listener.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
