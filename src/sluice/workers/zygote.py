"""A template process that starts workers by forking, with the heavy libraries loaded.

A fresh worker spends most of its start importing its runtime's libraries (scikit-learn
and SciPy take over a second); a server restarting, an endpoint scaling out or an async
endpoint waking from zero waits for it. The zygote imports them once, at the server's
start, then forks a worker per request in a few milliseconds.

Started by the gateway as `python -m sluice.workers.zygote --socket PATH --parent PID`
with a worker's clean environment (never the server's secrets); it prints
`{"ready": true, "pid": N}` once it listens. A request is one connection: a JSON line
`{"argv": [...], "env": {...}}` with two descriptors passed alongside (the worker's
stdout and stderr); the answer is `{"pid": N}`. The forked worker runs
`sluice.workers.main` with that environment and dies with the zygote, which dies with
the server.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import json
import os
import signal
import socket
import sys
from typing import Any

from sluice.processes import die_with_parent, set_process_name, unix_listener

WORKER_NAME = "sluice-worker"
"""The name a forked worker goes by (its command line is the zygote's)."""

PRELOADED = (
    "numpy",
    "joblib",
    "sklearn",
    "sklearn.linear_model",
    "sklearn.ensemble",
    "scipy.stats",
)
"""Imported before any fork (each only if installed)."""


def serve(listener: socket.socket) -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the workers
    while True:
        conn, _ = listener.accept()
        with conn:
            fds: list[int] = []
            try:
                message, fds, _, _ = socket.recv_fds(conn, 1 << 20, 2)
                request: dict[str, Any] = json.loads(message)
                if len(fds) != 2 or not isinstance(request.get("argv"), list):
                    raise ValueError("a request is a JSON object and two descriptors")
                pid = os.fork()
                if pid == 0:
                    _become_worker(listener, conn, request, fds)
                answer: dict[str, Any] = {"pid": pid}
            except (OSError, ValueError) as exc:  # a bad request or no fork: it goes on
                answer = {"error": f"{type(exc).__name__}: {exc}"}
            finally:
                for fd in fds:
                    os.close(fd)
            with contextlib.suppress(OSError):
                conn.sendall(json.dumps(answer).encode() + b"\n")


def _become_worker(
    listener: socket.socket, conn: socket.socket, request: dict[str, Any], fds: list[int]
) -> None:
    """In the forked child: the worker's descriptors, environment and main; never returns."""
    code = 1
    try:
        listener.close()
        conn.close()
        set_process_name(WORKER_NAME)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        stdout, stderr = fds
        os.dup2(stdout, 1)
        os.dup2(stderr, 2)
        os.close(stdout)
        os.close(stderr)
        sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
        sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
        os.environ.clear()
        os.environ.update(request["env"])
        from sluice.workers import main

        code = main.main(request["argv"])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - whatever happens, the child never returns
        import traceback

        traceback.print_exc()
    finally:
        os._exit(code)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sluice-zygote")
    parser.add_argument("--socket", required=True)
    parser.add_argument("--parent", type=int, default=0, help="the server's pid")
    args = parser.parse_args(argv)
    die_with_parent(args.parent)
    set_process_name("sluice-zygote")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the gateway decides when it stops
    for name in PRELOADED:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001,S112 - a library not installed is simply not preloaded
            continue
    from sluice.runtimes import registry  # noqa: F401 - the runtimes, ready for the workers
    from sluice.workers import main as worker_main  # noqa: F401

    gc.freeze()  # what the workers share stays shared (no collector writes to it)
    listener = unix_listener(args.socket, 64)
    print(json.dumps({"ready": True, "pid": os.getpid()}), flush=True)
    serve(listener)
    return 0


if __name__ == "__main__":
    sys.exit(main())
