"""The Ray actor behind one instance: it runs the worker process on its node.

The actor is a thin keeper: it unpacks the model on its node (once per node and model),
starts `sluice.workers.main --listen <node address>` and tells the gateway where the
worker listens; the gateway then talks to the worker directly over TCP, as it talks to a
local worker over a Unix socket. When the worker process exits (a crash, the out-of-memory
killer) the actor exits too, and Ray restarts it (on any node with room); when the actor
or its node dies, the worker dies with it (the parent-death signal).

Imported on the cluster's nodes, which need sluice installed (as any Ray code does).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
from pathlib import Path
from typing import Any

from sluice.processes import process_usage
from sluice.workers.main import TOKEN_VARIABLE
from sluice.workers.pool import parse_ready, worker_environment

log = logging.getLogger(__name__)

MODEL_CACHE = "sluice-models"
"""Under the node's Ray session folder: models unpacked there, one folder per content hash
(gone with the session's files)."""


def pack_model(model_dir: Path) -> tuple[str, bytes]:
    """A model's folder as an uncompressed tar, and that tar's SHA-256 (its cache key)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(model_dir, arcname=".")
    data = buffer.getvalue()
    return hashlib.sha256(data).hexdigest(), data


def unpack_model(digest: str, bundle: list[Any]) -> Path:
    """The model's folder on this node: unpacked from `bundle` (`[ObjectRef]` of the tar,
    fetched only when this node has not unpacked it yet) into a staging folder, then
    renamed into place, so that a half-unpacked model is never used."""
    import ray

    root = _session_dir() / MODEL_CACHE
    target = root / digest
    if target.is_dir():
        return target
    root.mkdir(parents=True, exist_ok=True)
    data: bytes = ray.get(bundle[0])
    if hashlib.sha256(data).hexdigest() != digest:
        raise ValueError("the model's bundle does not match its digest")
    staging = Path(tempfile.mkdtemp(prefix=f".{digest[:12]}-", dir=root))
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
            tar.extractall(staging, filter="data")
        os.rename(staging, target)
    except OSError:
        if not target.is_dir():  # not another actor's rename that won the race
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _session_dir() -> Path:
    """This node's Ray session folder (Ray exposes it only privately), else the temp folder."""
    try:
        from ray._private.worker import global_worker

        node = global_worker.node
        assert node is not None
        return Path(node.get_session_dir_path())
    except (ImportError, AttributeError, AssertionError):
        return Path(tempfile.gettempdir()) / "ray"


class WorkerActor:
    """One instance: starts the worker, reports its address and usage, exits with it."""

    def __init__(
        self,
        label: str,
        digest: str,
        bundle: list[Any],
        runtime: str,
        environment: dict[str, str],
        extra_names: tuple[str, ...],
        memory_mb: int,
        nice: int,
        load_timeout_s: float,
        token: bytes,
    ) -> None:
        import ray

        self.error: str | None = None
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.node_id = ray.get_runtime_context().get_node_id()
        self.host: str = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
        try:
            model_dir = unpack_model(digest, bundle)
        except Exception as exc:  # noqa: BLE001 - reported to the gateway as a load failure
            self.error = f"the model could not be unpacked on node {self.host}: {exc}"
            return
        env = worker_environment(os.environ, environment, extra_names)
        env[TOKEN_VARIABLE] = token.decode()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sluice.workers.main",
                "--listen",
                self.host,
                "--model-dir",
                str(model_dir),
                "--runtime",
                runtime,
                "--memory-mb",
                str(memory_mb),
                "--nice",
                str(nice),
                "--parent",
                str(os.getpid()),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            env=env,
        )
        assert self.process.stdout is not None
        ready = _read_ready(self.process, load_timeout_s)
        if "error" in ready:
            self.error = f"model failed to load: {ready['error']}"
            self.process.kill()
            self.process.wait()
            return
        self.port = int(ready["port"])  # type: ignore[call-overload]
        self.loaded = int(ready.get("loaded", 0))  # type: ignore[call-overload]
        threading.Thread(target=self._exit_with_worker, daemon=True).start()

    def _exit_with_worker(self) -> None:
        assert self.process is not None
        code = self.process.wait()
        log.warning("the worker exited with code %s; so does its actor (Ray restarts it)", code)
        os._exit(1)

    def address(self) -> dict[str, Any]:
        """Where the worker listens: host, port, pid, node id, loaded models; or an error."""
        if self.error is not None:
            return {"error": self.error}
        assert self.process is not None
        return {
            "host": self.host,
            "port": self.port,
            "pid": self.process.pid,
            "node": self.node_id,
            "loaded": self.loaded,
        }

    def usage(self) -> tuple[float, float] | None:
        """The worker process's CPU seconds and resident bytes."""
        return None if self.process is None else process_usage(self.process.pid)


def _read_ready(process: subprocess.Popen[bytes], timeout: float) -> dict[str, object]:
    """The worker's ready line, read within `timeout` s (else an error)."""
    stdout = process.stdout
    assert stdout is not None
    lines: list[bytes] = []
    reader = threading.Thread(target=lambda: lines.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if not lines:
        return {"error": f"the model did not load within {timeout:g} s (model_load_timeout_s)"}
    return parse_ready(lines[0])
