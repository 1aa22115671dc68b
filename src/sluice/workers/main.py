"""Worker process entry: load the runtime once, then serve frames on a Unix socket.

Started by the gateway as `python -m sluice.workers.main --socket PATH --model-dir DIR
--runtime NAME` (or, on a cluster node, `--listen HOST`: TCP on a free port of HOST, the
connection opened by the token in SLUICE_WORKER_TOKEN). It prints one JSON line on
stdout: `{"ready": true, "pid": N}` (and `"port"` for TCP) once the model is loaded and
the socket listens, or `{"error": "..."}` if loading failed.
The serve loop is plain blocking IO: the requests waiting on the socket are answered
together (a dynamic batch, see `workers/batching.py`), answers written in bursts.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import hmac
import json
import logging
import os
import queue
import resource
import select
import signal
import socket
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

from sluice.errors import ModelError, SluiceError, ValidationError
from sluice.processes import die_with_parent, tcp_listener, unix_listener
from sluice.store.objects import sync_to_disk
from sluice.types import JSON
from sluice.workers import file_request, protocol
from sluice.workers.batching import Batching, answer_stats, take_head
from sluice.workers.protocol import Frame

if TYPE_CHECKING:
    from sluice.runtimes.base import Runtime

log = logging.getLogger("sluice.worker")


def handle(runtime: Runtime, frame: Frame) -> bytes:
    """Answer one frame; never raises."""
    if frame.kind == protocol.PING:
        return protocol.pack(frame.request_id, protocol.PONG, 200, "", "", b"")
    try:
        if frame.kind == protocol.TRANSFORM_REQUEST:
            from sluice.workers import transform

            summary = json.dumps(transform.run(runtime, frame.body)).encode()
            return protocol.pack(frame.request_id, protocol.RESPONSE, 200, JSON, "", summary)
        body, content_type = runtime.invoke(frame.body, frame.text1, frame.text2)
        return protocol.pack(frame.request_id, protocol.RESPONSE, 200, content_type, "", body)
    except Exception as exc:  # noqa: BLE001 - a model's failure must never kill the worker
        return failure(frame.request_id, exc)


def handle_requests(
    runtime: Runtime, frames: list[Frame], received: float, batching: Batching
) -> list[bytes]:
    """Answer REQUEST frames with one `invoke_many` call (a dynamic batch); never raises.
    `received`: when the oldest of them was read off the socket."""
    started = time.perf_counter()
    results = runtime.invoke_many([(f.body, f.text1, f.text2) for f in frames])
    batching.record(len(frames), time.perf_counter() - started)
    stats = answer_stats(len(frames), started - received, steps=runtime.step_seconds)
    return _answers(frames, results, stats)


def _answers(
    frames: list[Frame], results: list[tuple[bytes, str] | Exception], stats: str
) -> list[bytes]:
    out: list[bytes] = []
    for frame, result in zip(frames, results, strict=True):
        if isinstance(result, Exception):
            out.append(failure(frame.request_id, result))
        else:
            body, content_type = result
            out.append(
                protocol.pack(frame.request_id, protocol.RESPONSE, 200, content_type, stats, body)
            )
    return out


def handle_model_requests(
    runtime: Runtime, frames: list[Frame], received: float, batching: Batching
) -> list[bytes]:
    """Answer MODEL_REQUEST frames for one model of a multi-model worker (loading it
    first when it is not loaded) or one container of a multi-container worker; never
    raises."""
    # A MultiModelRuntime's or a ContainersRuntime's (in Direct mode).
    invoke_target = getattr(runtime, "invoke_target", None)
    if invoke_target is None:
        error = ValidationError(
            "this endpoint serves one model: it takes no TargetModel or TargetContainerHostname",
            field="TargetModel",
        )
        return [failure(f.request_id, error) for f in frames]
    requests = []
    for frame in frames:
        model_runtime, directory, payload = protocol.parse_model_request(frame.body)
        requests.append((payload, frame.text1, frame.text2))
    started = time.perf_counter()
    try:
        results, outcome = invoke_target(model_runtime, directory, requests)
    except Exception as exc:  # noqa: BLE001 - the model failed to load: these fail with it
        return [failure(f.request_id, exc) for f in frames]
    batching.record(len(frames), time.perf_counter() - started)
    queued = started - received
    if outcome is None:  # a container named directly
        return _answers(frames, results, answer_stats(len(frames), queued))
    first = answer_stats(len(frames), queued, outcome)
    outcome.accounted = False
    rest = answer_stats(len(frames), queued, outcome)
    return _answers(frames[:1], results[:1], first) + _answers(frames[1:], results[1:], rest)


def handle_files(runtime: Runtime, frames: list[Frame], burst: file_request.Burst) -> list[bytes]:
    """Answer FILE_REQUEST frames, the model answering them together; never raises.
    `burst`: what the frames answered together share (output folders, files to sync)."""
    out: list[bytes] = [b""] * len(frames)
    parsed: list[tuple[int, file_request.FileRequest]] = []
    for k, frame in enumerate(frames):
        try:
            parsed.append((k, file_request.FileRequest.from_json(frame.body)))
        except Exception as exc:  # noqa: BLE001 - a malformed request fails alone
            out[k] = failure(frame.request_id, exc)
    results = file_request.answer_many(runtime, [request for _, request in parsed], burst)
    for (k, _), result in zip(parsed, results, strict=True):
        request_id = frames[k].request_id
        if isinstance(result, Exception):
            out[k] = failure(request_id, result)
        else:
            burst.answered.add(request_id)
            out[k] = protocol.pack(request_id, protocol.RESPONSE, 200, result, "", b"")
    return out


def failure(request_id: int, exc: Exception) -> bytes:
    """The ERROR frame for a request that failed with `exc` (a model's failure logged)."""
    if isinstance(exc, SluiceError):
        if isinstance(exc, ModelError):
            log.error("model error on request %d:\n%s", request_id, _traceback(exc))
        return protocol.pack(
            request_id, protocol.ERROR, exc.status, exc.code, exc.field or "", exc.message.encode()
        )
    log.error("model error on request %d:\n%s", request_id, _traceback(exc))
    message = f"{type(exc).__name__}: {exc}".encode()
    return protocol.pack(request_id, protocol.ERROR, 424, "ModelError", "", message)


def _traceback(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))


BATCH_FRAMES = 16
"""At most this many file requests are answered together."""
REPLY_EVERY_S = 0.002
"""How much work a worker does before it sends the answers so far."""
ANSWERED_ALONE = frozenset({protocol.REQUEST, protocol.MODEL_REQUEST})
"""Real-time batches are a burst of their own: the answers so far are sent before one
starts and its answers as soon as it ends. If the worker dies in a batch, the gateway
then fails only the requests that were running (the oldest unanswered) and sends the
rest to another instance; a crash never takes down answers already computed."""


class Replies:
    """Answers go back to the gateway through here: at once, or, for a burst that wrote
    answer files, once a background thread has forced them to disk (the files of every
    burst waiting by then together), so compute goes on while the disk catches up."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.lock = threading.Lock()
        """One sender at a time: frames must not interleave."""
        self.syncing: queue.SimpleQueue[tuple[file_request.Burst, list[bytes]]] = (
            queue.SimpleQueue()
        )
        self.syncer: threading.Thread | None = None

    def send(self, burst: file_request.Burst, out: list[bytes]) -> None:
        if not burst.written:
            burst.close()
            with self.lock:
                self.conn.sendall(b"".join(out))
            return
        if self.syncer is None:
            self.syncer = threading.Thread(target=self._sync, name="syncer", daemon=True)
            self.syncer.start()
        self.syncing.put((burst, out))

    def _sync(self) -> None:
        while True:
            waiting = [self.syncing.get()]
            with contextlib.suppress(queue.Empty):
                while True:
                    waiting.append(self.syncing.get_nowait())
            written = [path for burst, _ in waiting for path in burst.written]
            try:
                sync_to_disk(written)
            except OSError as exc:
                log.error("answers could not be forced to disk: %s", exc)
                message = f"the answer could not be forced to disk: {exc}".encode()
                for burst, out in waiting:
                    out[:] = [
                        protocol.pack(rid, protocol.ERROR, 500, "InternalFailure", "", message)
                        if (rid := protocol.request_id_of(frame)) in burst.answered
                        else frame
                        for frame in out
                    ]
            for burst, _ in waiting:
                burst.close(sync=False)
            try:
                with self.lock:
                    self.conn.sendall(b"".join(b"".join(out) for _, out in waiting))
            except OSError:
                return  # the gateway is gone


def _is_file_request(frame: Frame) -> bool:
    return frame.kind == protocol.FILE_REQUEST


TOKEN_VARIABLE = "SLUICE_WORKER_TOKEN"
"""Where a TCP worker finds the token its gateway opens the connection with."""


def accept(listener: socket.socket, token: bytes) -> socket.socket:
    """The gateway's connection: on TCP, the first one that opens with `token` (any other
    is closed unheard); on a Unix socket (the folder's permissions guard it), the first."""
    while True:
        conn, _ = listener.accept()
        if listener.family == socket.AF_UNIX:
            return conn
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.settimeout(5.0)
        try:
            heard = b""
            while len(heard) < len(token):
                chunk = conn.recv(len(token) - len(heard))
                if not chunk:
                    break
                heard += chunk
        except OSError:
            heard = b""
        if token and hmac.compare_digest(heard, token):
            conn.settimeout(None)
            return conn
        log.warning("refused a connection that did not open with the worker's token")
        conn.close()


def serve(
    runtime: Runtime, listener: socket.socket, batching: Batching, token: bytes = b""
) -> None:
    """Serve the gateway's one connection; return when it closes (the gateway stopped or died)."""
    conn = accept(listener, token)
    with conn:
        replies = Replies(conn)
        buffer = bytearray()
        while True:
            chunk = conn.recv(1 << 18)
            if not chunk:
                return
            received = time.perf_counter()
            buffer += chunk
            frames = list(protocol.split(buffer))
            while frames:
                # Answer in bursts of about REPLY_EVERY_S of work: the gateway hears of the
                # first answers (and sends more) while the rest are worked on.
                burst = file_request.Burst()
                out: list[bytes] = []
                started = time.perf_counter()
                try:
                    while frames and (not out or time.perf_counter() - started < REPLY_EVERY_S):
                        kind = frames[0].kind
                        if out and kind in ANSWERED_ALONE:
                            break
                        if kind == protocol.FILE_REQUEST:
                            files = take_head(frames, BATCH_FRAMES, _is_file_request)
                            out += handle_files(runtime, files, burst)
                        elif kind == protocol.REQUEST:
                            batch = batching.take(frames)
                            if batching.wants_more(len(batch)):
                                _wait_for_more(conn, buffer, frames, batch, batching)
                            out += handle_requests(runtime, batch, received, batching)
                        elif kind == protocol.MODEL_REQUEST:
                            batch = batching.take_same_model(frames)
                            out += handle_model_requests(runtime, batch, received, batching)
                        else:
                            out.append(handle(runtime, frames.pop(0)))
                        if kind in ANSWERED_ALONE:
                            break
                except BaseException:
                    burst.close(sync=False)
                    raise
                replies.send(burst, out)


def _wait_for_more(
    conn: socket.socket,
    buffer: bytearray,
    frames: list[Frame],
    batch: list[Frame],
    batching: Batching,
) -> None:
    """Read more frames for up to the batch's max delay, until the batch is full; frames
    that cannot join it (other kinds, or behind one) stay queued in order."""
    deadline = time.perf_counter() + batching.max_delay_s
    while not frames and len(batch) < batching.cap:
        remaining = deadline - time.perf_counter()
        if remaining <= 0 or not select.select([conn], [], [], remaining)[0]:
            return
        chunk = conn.recv(1 << 18)
        if not chunk:
            return  # the gateway closed: the serve loop sees it on its next read
        buffer += chunk
        frames += protocol.split(buffer)
        batch += batching.take(frames, batching.cap - len(batch))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sluice-worker")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--socket", help="the Unix socket to listen on")
    where.add_argument("--listen", help="listen on TCP, on a free port of this address")
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
    # Never seen by the model's code: it is read before the model loads.
    token = os.environ.pop(TOKEN_VARIABLE, "").encode()
    if args.listen and not token:
        print(json.dumps({"error": f"a TCP worker needs {TOKEN_VARIABLE}"}), flush=True)
        return 1
    try:
        from sluice.runtimes.registry import runtime_class

        runtime = runtime_class(args.runtime)(Path(args.model_dir), dict(os.environ))
        batching = Batching.from_environment(runtime.environment)
        runtime.load()
        gc.freeze()  # the loaded model is permanent: no collector sweeps through it
    except BaseException as exc:  # noqa: BLE001 - report every load failure to the gateway
        log.error("model failed to load:\n%s", traceback.format_exc())
        message = f"{type(exc).__name__}: {exc}"
        if args.memory_mb:
            message += f" (the worker may map {args.memory_mb} MiB: setting instance_memory_mb)"
        print(json.dumps({"error": message}), flush=True)
        return 1
    listener = tcp_listener(args.listen, 8) if args.listen else unix_listener(args.socket, 8)
    from sluice.runtimes.multi_model import MultiModelRuntime

    ready: dict[str, object] = {"ready": True, "pid": os.getpid()}
    if args.listen:
        ready["port"] = listener.getsockname()[1]
    if isinstance(runtime, MultiModelRuntime):
        ready["loaded"] = len(runtime.models)  # the pinned ones
    print(json.dumps(ready), flush=True)
    # From here on, whatever the model prints goes to the log, never into the ready pipe.
    os.dup2(2, 1)
    try:
        serve(runtime, listener, batching, token)
    finally:
        listener.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
