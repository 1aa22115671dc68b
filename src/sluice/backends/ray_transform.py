"""Batch transform on Ray Data, for the Ray backend.

The job's contract is the local one (`control/transforms.py`): chunks planned once in the
durable queue, each chunk's answers committed as a part, files assembled when their
chunks are done, a restarted server running only what was not committed. What changes is
where a chunk runs: the claimed chunks become a Ray dataset, each row one chunk's input
bytes (the gateway reads its byte range, or its Parquet row groups), mapped by a pool of
`instance_count` actors, each of which loads the model once and runs the worker's own
chunk code (`workers/transform.py`) on files of its node; the answers come back as rows,
as they finish, and the gateway writes and commits them.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from sluice.types import PARQUET_TYPES, media_type
from sluice.workers.transform import Chunk


@dataclass(frozen=True)
class ChunkResult:
    """One chunk's answers as they came back from the cluster."""

    key: int
    summary: dict[str, Any] | None
    """The chunk code's summary (records, failures, first error); None if it failed."""
    output: bytes = b""
    errors: bytes = b""
    failure: str | None = None
    """Why the chunk failed as a whole (its input unreadable, the model's crash)."""


def ship(request: Chunk) -> tuple[Chunk, bytes]:
    """The chunk's input as bytes, and the request rewritten to read those bytes whole."""
    if media_type(request.content_type) in PARQUET_TYPES:
        import pyarrow.parquet as pq

        table = pq.ParquetFile(request.input).read_row_groups(range(request.start, request.end))
        buffer = io.BytesIO()
        pq.write_table(table, buffer)
        groups = pq.ParquetFile(io.BytesIO(buffer.getvalue())).metadata.num_row_groups
        return replace(request, start=0, end=groups), buffer.getvalue()
    with open(request.input, "rb") as source:
        source.seek(request.start)
        data = source.read(request.end - request.start if request.end >= 0 else -1)
    return replace(request, start=0, end=-1), data


class ChunkTransformer:
    """One actor of the dataset's pool: the model loaded once, chunks answered one by one."""

    def __init__(
        self, digest: str, bundle: list[Any], runtime: str, environment: dict[str, str]
    ) -> None:
        from sluice.backends.ray_actor import unpack_model
        from sluice.runtimes.registry import runtime_class
        from sluice.workers.pool import THREAD_DEFAULTS

        model_dir = unpack_model(digest, bundle)
        # As a worker's: one thread for numeric libraries unless the model says otherwise
        # (its code may read its variables itself).
        os.environ.update({**THREAD_DEFAULTS, **environment})
        self.runtime = runtime_class(runtime)(model_dir, dict(os.environ))
        self.runtime.load()
        self.scratch = Path(tempfile.mkdtemp(prefix="chunk-", dir=model_dir.parent))

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        from sluice.workers import transform

        folder = Path(tempfile.mkdtemp(dir=self.scratch))
        try:
            source, output, errors = folder / "input", folder / "output", folder / "errors"
            source.write_bytes(row["data"])
            request = Chunk(**json.loads(row["request"]))
            local = replace(request, input=str(source), output=str(output), errors=str(errors))
            started = time.perf_counter()
            try:
                summary = transform.run(self.runtime, json.dumps(asdict(local)).encode())
                summary["seconds"] = round(time.perf_counter() - started, 6)
            except Exception as exc:  # noqa: BLE001 - the chunk fails, the pool goes on
                message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
                return {"key": row["key"], "summary": "", "output": b"", "errors": b"",
                        "failure": message}  # fmt: skip
            return {
                "key": row["key"],
                "summary": json.dumps(summary),
                "output": output.read_bytes() if output.exists() else b"",
                "errors": errors.read_bytes() if errors.exists() else b"",
                "failure": "",
            }
        finally:
            shutil.rmtree(folder, ignore_errors=True)


async def run_chunks(
    label: str,
    placement: dict[str, Any],
    chunks: dict[int, tuple[Chunk, bytes]],
    pool_size: int,
) -> AsyncIterator[ChunkResult]:
    """Run `chunks` (work item id to request and input bytes) on a pool of `pool_size`
    actors; yield each chunk's result as it finishes. `placement`: the model's bundle
    (digest, bundle, runtime, environment) and the actors' Ray resources (resources).
    Raises what stopped the dataset (the chunks not yielded by then did not run)."""
    import ray

    rows = [
        {"key": key, "request": json.dumps(asdict(request)), "data": data}
        for key, (request, data) in chunks.items()
    ]
    resources = dict(placement["resources"])
    remote_args: dict[str, Any] = {
        "num_cpus": resources.pop("CPU", 1.0),
        "num_gpus": resources.pop("GPU", 0.0),
    }
    if "memory" in resources:
        remote_args["memory"] = resources.pop("memory")
    if resources:
        remote_args["resources"] = resources
    dataset = ray.data.from_items(rows, override_num_blocks=len(rows)).map(
        ChunkTransformer,  # type: ignore[arg-type] # a callable class: a pool of actors
        fn_constructor_args=(
            placement["digest"],
            placement["bundle"],
            placement["runtime"],
            placement["environment"],
        ),
        concurrency=max(1, min(pool_size, len(rows))),
        **remote_args,
    )
    loop = asyncio.get_running_loop()
    results: asyncio.Queue[ChunkResult | BaseException | None] = asyncio.Queue()
    cancelled = threading.Event()

    def iterate() -> None:
        try:
            for row in dataset.iter_rows():
                if cancelled.is_set():
                    return
                result = ChunkResult(
                    int(row["key"]),
                    json.loads(row["summary"]) if row["summary"] else None,
                    bytes(row["output"]),
                    bytes(row["errors"]),
                    row["failure"] or None,
                )
                loop.call_soon_threadsafe(results.put_nowait, result)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            loop.call_soon_threadsafe(results.put_nowait, exc)
        finally:
            loop.call_soon_threadsafe(results.put_nowait, None)

    thread = threading.Thread(target=iterate, name=f"ray data {label}", daemon=True)
    thread.start()
    try:
        while (item := await results.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        cancelled.set()
        with contextlib.suppress(Exception):
            await asyncio.to_thread(thread.join, 60)
