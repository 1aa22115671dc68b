"""Batch transform jobs: plan the input into chunks, run them on the job's own workers,
assemble each file's output at once, and carry on after a restart.

A job's chunks are items of the durable work queue (`transform:<job>`), planned once in
one transaction; a chunk's answers are written by a worker into a part file under the
home, and its completion is committed with the part's name. When every chunk of an input
object is done, its parts are joined into `<output>/<name>.out` (a staging name, then a
rename), its bad records into `<name>.out.errors`, and the parts are removed. A server
killed mid-job finds the committed chunks at its next start and runs only the others;
chunks a dead server held are taken back at once. A job's summary (counts, timings,
errors) is written beside its outputs as `<job>.summary.json`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from sluice import jsonpath
from sluice.backends.base import Backend, ChunkRunner, VariantInstances
from sluice.backends.ray_transform import ChunkResult, ship
from sluice.control.transform_inputs import InputObject, list_inputs, plan_chunks
from sluice.control.validation import check_environment
from sluice.entities import (
    Model,
    TransformCounts,
    TransformJob,
    TransformSpec,
    TransformStatus,
    WorkItem,
    WorkStatus,
)
from sluice.errors import SluiceError, ValidationError, WorkerUnavailable
from sluice.processes import runner_id
from sluice.settings import Settings
from sluice.store.objects import ObjectStore, staging_for
from sluice.store.tables import utcnow
from sluice.store.transform_repo import TransformRepository
from sluice.store.work_queue import NewItem, Outcome, WorkQueue
from sluice.types import CSV, JSON, JSONLINES, PARQUET_TYPES, media_type
from sluice.workers.client import WorkerDied
from sluice.workers.transform import Chunk as ChunkRequest

log = logging.getLogger(__name__)

QUEUE_PREFIX = "transform:"
SUMMARY_SUFFIX = ".summary.json"
RUNNER_WINDOW_PER_INSTANCE = 16
"""Chunks claimed at once per instance when the backend runs them itself (Ray Data)."""
MAX_CONCURRENT_TIMES_PAYLOAD_MB = 100
"""SageMaker's rule: MaxConcurrentTransforms x MaxPayloadInMB <= 100."""


def queue_name(job: str) -> str:
    return QUEUE_PREFIX + job.lower()


class TransformService:
    def __init__(
        self,
        repo: TransformRepository,
        queue: WorkQueue,
        get_model: Callable[[str], Model],
        backend: Backend,
        objects: ObjectStore,
        settings: Settings,
        on_chunk: Callable[[str, int, int, str], None] | None = None,
    ) -> None:
        self.repo = repo
        self.on_chunk = on_chunk
        """(job, records answered, records failed, outcome) per chunk finished or retried."""
        self.queue = queue
        self.get_model = get_model
        self.backend = backend
        self.objects = objects
        self.settings = settings
        self.runner = runner_id()
        self.tasks: dict[str, asyncio.Task[None]] = {}

    # -- the API

    def check(self, spec: TransformSpec, model_name: str) -> None:
        """Refuse what cannot run before anything is recorded."""
        self.get_model(model_name)
        if spec.split_type not in ("None", "Line", "RecordIO"):
            raise ValidationError(
                f"SplitType {spec.split_type} is not served yet (None, Line and RecordIO are)",
                field="TransformInput.SplitType",
            )
        if spec.data_type not in ("S3Prefix", "ManifestFile"):
            raise ValidationError(
                f"S3DataType {spec.data_type} is not served (S3Prefix and ManifestFile are)",
                field="TransformInput.DataSource.S3DataSource.S3DataType",
            )
        if spec.max_payload_mb * spec.max_concurrent > MAX_CONCURRENT_TIMES_PAYLOAD_MB:
            raise ValidationError(
                f"MaxConcurrentTransforms x MaxPayloadInMB must be at most "
                f"{MAX_CONCURRENT_TIMES_PAYLOAD_MB} (got {spec.max_concurrent} x "
                f"{spec.max_payload_mb})",
                field="MaxPayloadInMB",
            )
        if spec.max_payload_mb == 0:
            raise ValidationError(
                "MaxPayloadInMB 0 (streamed requests) is not served: records go to the "
                "model in batches inside its worker, with no payload limit beyond this one",
                field="MaxPayloadInMB",
            )
        if (spec.input_filter, spec.join_source, spec.output_filter) != ("$", "None", "$"):
            _check_processing(spec)
        if media_type(spec.content_type) in PARQUET_TYPES and spec.compression != "None":
            raise ValidationError(
                "Parquet input is compressed inside the file: CompressionType must be None",
                field="TransformInput.CompressionType",
            )
        check_environment(spec.environment, "Environment")
        if spec.on_bad_record not in ("fail", "continue"):
            raise ValidationError("on_bad_record is 'fail' or 'continue'", field="on_bad_record")
        self.objects.writable(spec.output_path, "TransformOutput.S3OutputPath")
        field = "TransformInput.DataSource.S3DataSource.S3Uri"
        if self.objects.remote(spec.input_uri, field) is None:
            self.objects.readable(spec.input_uri.rstrip("/") or "/", field)

    def create(
        self, name: str, model_name: str, spec: TransformSpec, details: dict[str, Any]
    ) -> TransformJob:
        self.check(spec, model_name)
        now = utcnow()
        job = self.repo.add(
            TransformJob(
                name, model_name, TransformStatus.IN_PROGRESS, spec, now, now, details=details
            )
        )
        self._start(job)
        return job

    def get(self, name: str) -> TransformJob:
        return self.repo.get(name)

    def list(self, status: TransformStatus | None = None) -> list[TransformJob]:
        return self.repo.list_all(status)

    def counts(self, job: TransformJob) -> TransformCounts:
        return _counts(self.queue.items(queue_name(job.name)))

    async def stop(self, name: str) -> TransformJob:
        """Stop a job: no new chunk starts, chunks in flight are abandoned, files not yet
        assembled get no output. Stopping a finished job changes nothing."""
        job = self.repo.get(name)
        if job.status.finished:
            return job
        job = self.repo.set_status(job.name, TransformStatus.STOPPING)
        task = self.tasks.get(job.name.lower())
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        return await asyncio.to_thread(self._stopped, job)

    def recover(self) -> None:
        """Carry on with the jobs a stopped server left unfinished."""
        self.queue.take_back_from_the_gone(QUEUE_PREFIX, self.runner)
        for job in self.repo.unfinished():
            if job.status is TransformStatus.STOPPING:
                self._stopped(job)
            else:
                log.info("transform job %s: resumed", job.name)
                self._start(job)

    async def close(self) -> None:
        """Stop running jobs where they are; the next start resumes them."""
        for task in list(self.tasks.values()):
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)

    # -- running a job

    def _start(self, job: TransformJob) -> None:
        key = job.name.lower()
        task = asyncio.get_running_loop().create_task(self._run(job), name=f"transform {job.name}")
        self.tasks[key] = task
        task.add_done_callback(lambda _: self.tasks.pop(key, None))

    async def _run(self, job: TransformJob) -> None:
        try:
            run = _Run(self, job)
            await run.prepare()
            await run.execute()
            await asyncio.to_thread(run.conclude)
        except asyncio.CancelledError:
            raise
        except SluiceError as exc:
            log.warning("transform job %s failed: %s", job.name, exc.message)
            self.repo.set_status(job.name, TransformStatus.FAILED, exc.message)
        except Exception as exc:  # noqa: BLE001 - a job fails; the server goes on
            log.exception("transform job %s", job.name)
            self.repo.set_status(
                job.name, TransformStatus.FAILED, f"internal failure: {type(exc).__name__}"
            )

    def _stopped(self, job: TransformJob) -> TransformJob:
        self.queue.cancel_all(queue_name(job.name))
        shutil.rmtree(self._parts(job), ignore_errors=True)
        return self.repo.set_status(job.name, TransformStatus.STOPPED)

    def _parts(self, job: TransformJob) -> Path:
        return self.settings.transforms_dir / job.name.lower()


class _Run:
    """One server's run of one job: from its committed progress to its end."""

    def __init__(self, service: TransformService, job: TransformJob) -> None:
        self.s = service
        self.job = job
        self.spec = job.spec
        self.queue_name = queue_name(job.name)
        self.parts = service._parts(job)
        self.inputs: list[InputObject] = []
        self.items: dict[int, WorkItem] = {}
        """Every chunk, by item id, as last known."""

    async def prepare(self) -> None:
        """List the inputs and, on a first run, plan and enqueue every chunk at once."""
        self.inputs = await asyncio.to_thread(list_inputs, self.s.objects, self.spec)
        items = await asyncio.to_thread(self.s.queue.items, self.queue_name)
        if not items:
            chunks = await asyncio.to_thread(
                plan_chunks, self.inputs, self.spec, self.s.settings.transform_chunk_bytes
            )
            entries = [
                NewItem(self.queue_name, f"{c.file}/{c.index}", dataclasses.asdict(c))
                for c in chunks
            ]
            await asyncio.to_thread(self.s.queue.enqueue_many, entries)
            items = await asyncio.to_thread(self.s.queue.items, self.queue_name)
        self.items = {item.id: item for item in items}
        self.parts.mkdir(parents=True, exist_ok=True)
        # Files finished before a restart but not assembled yet.
        for file in {item.payload["file"] for item in items}:
            if self._file_done(file):
                await asyncio.to_thread(self._assemble, file)

    async def execute(self) -> None:
        model = self.s.get_model(self.job.model_name)
        if self.spec.environment:
            model = dataclasses.replace(
                model, environment={**model.environment, **self.spec.environment}
            )
        label = f"transform/{self.job.name}"
        memory_mb = self.s.settings.instance_memory_mb.get(self.spec.instance_type)
        runner = await self.s.backend.chunk_runner(label, model, self.spec.instance_type, memory_mb)
        if runner is not None:
            await self._dispatch_to(runner)
            return
        instances = await self.s.backend.start_variant(
            label,
            model,
            self.spec.instance_count,
            lambda: None,
            memory_mb=memory_mb,
            instance_type=self.spec.instance_type,
        )
        try:
            await self._dispatch(instances)
        finally:
            await instances.stop()

    async def _dispatch_to(self, runner: ChunkRunner) -> None:
        """Run the chunks on the backend's own engine (Ray Data), a window of claimed
        chunks at a time, committing each one as its answers come back."""
        lease = self.s.settings.transform_lease_s
        window = max(self.spec.instance_count * RUNNER_WINDOW_PER_INSTANCE, 1)
        while True:
            claimed = await asyncio.to_thread(
                self.s.queue.claim, self.queue_name, self.s.runner, lease, window
            )
            if not claimed:
                self.items = {
                    i.id: i for i in await asyncio.to_thread(self.s.queue.items, self.queue_name)
                }
                if all(i.status.finished for i in self.items.values()):
                    return
                await asyncio.sleep(0.2)  # retries not due yet
                continue
            shipped: dict[int, tuple[ChunkRequest, bytes]] = {}
            for item in claimed:
                self.items[item.id] = item
                request, _ = self._request(item)
                shipped[item.id] = await asyncio.to_thread(ship, request)
            renewer = asyncio.create_task(self._renew(list(shipped), lease))
            left = set(shipped)
            try:
                async for result in runner(shipped, self.spec.instance_count):
                    left.discard(result.key)
                    await self._commit(self.items[result.key], result)
            except SluiceError:
                raise
            except Exception as exc:  # noqa: BLE001 - the chunks not answered are retried
                reason = f"{type(exc).__name__}: {exc}"
                log.warning(
                    "transform job %s: the cluster's run stopped: %s", self.job.name, reason
                )
                for key in left:
                    item = self.items[key]
                    await self._retry_or_fail(item, self.inputs[item.payload["file"]], reason)
            finally:
                renewer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await renewer

    async def _renew(self, ids: list[int], lease: float) -> None:
        while True:
            await asyncio.sleep(lease / 3)
            await asyncio.to_thread(self.s.queue.renew, ids, self.s.runner, lease)

    async def _commit(self, item: WorkItem, result: ChunkResult) -> None:
        """Write a chunk's answers from the cluster as its part, and finish it."""
        source = self.inputs[item.payload["file"]]
        _, output = self._request(item)
        summary = result.summary
        if summary is None:
            reason = f"{source.uri}: {result.failure}"
            await self._finish(item, WorkStatus.FAILED, {}, reason)
            return
        await asyncio.to_thread(output.write_bytes, result.output)
        if result.errors:
            await asyncio.to_thread(output.with_suffix(".errors").write_bytes, result.errors)
        await self._conclude_chunk(item, source, output, summary)

    async def _dispatch(self, instances: VariantInstances) -> None:
        # A worker runs one chunk at a time; a second one waiting on its connection keeps
        # it busy while the first one's answer is committed and the next claimed.
        # (MaxConcurrentTransforms, parallel requests to one instance, adds nothing here.)
        slots = self.spec.instance_count * 2
        running: set[asyncio.Task[None]] = set()
        lease = self.s.settings.transform_lease_s
        renewed = time.monotonic()
        try:
            while True:
                if len(running) < slots:
                    claimed = await asyncio.to_thread(
                        self.s.queue.claim,
                        self.queue_name,
                        self.s.runner,
                        lease,
                        slots - len(running),
                    )
                    for item in claimed:
                        self.items[item.id] = item
                        running.add(asyncio.create_task(self._chunk(instances, item)))
                if not running:
                    if not any(not i.status.finished for i in self.items.values()):
                        return
                    await asyncio.sleep(0.2)  # retries not due yet
                    self.items = {
                        i.id: i
                        for i in await asyncio.to_thread(self.s.queue.items, self.queue_name)
                    }
                    continue
                done, running = await asyncio.wait(
                    running, timeout=lease / 3, return_when=asyncio.FIRST_COMPLETED
                )
                for task in done:
                    task.result()
                if time.monotonic() - renewed >= lease / 3:
                    renewed = time.monotonic()
                    ids = [i.id for i in self.items.values() if i.status is WorkStatus.RUNNING]
                    await asyncio.to_thread(self.s.queue.renew, ids, self.s.runner, lease)
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    def _request(self, item: WorkItem) -> tuple[ChunkRequest, Path]:
        """What a chunk's worker is asked to do, and the part its answers go to."""
        p = item.payload
        source = self.inputs[p["file"]]
        # A part of its own for each attempt: a runner whose lease passed on while it
        # still wrote can never touch the part that is committed.
        output = self.parts / f"{p['file']:06d}-{p['index']:06d}.{item.attempts}.out"
        request = ChunkRequest(
            input=str(source.path),
            output=str(output),
            errors=str(output.with_suffix(".errors")),
            start=p["start"],
            end=p["end"],
            first_line=p["first_line"],
            compression=self.spec.compression,
            split=self.spec.split_type,
            strategy=self.spec.batch_strategy,
            max_payload=self.spec.max_payload_mb * 1024 * 1024,
            content_type=self.spec.content_type,
            accept=self.spec.accept or JSON,
            assemble=self.spec.assemble_with,
            on_bad_record=self.spec.on_bad_record,
            input_filter=self.spec.input_filter,
            join_source=self.spec.join_source,
            output_filter=self.spec.output_filter,
        )
        return request, output

    async def _chunk(self, instances: VariantInstances, item: WorkItem) -> None:
        p = item.payload
        source = self.inputs[p["file"]]
        request, output = self._request(item)
        size = (p["end"] if p["end"] >= 0 else source.path.stat().st_size) - p["start"]
        timeout = self.spec.timeout_s * max(1, math.ceil(size / request.max_payload))
        started = time.perf_counter()
        try:
            body = json.dumps(dataclasses.asdict(request)).encode()
            summary = await instances.transform(body, timeout)
        except (WorkerUnavailable, WorkerDied) as exc:
            await self._retry_or_fail(item, source, exc.message)
            return
        except SluiceError as exc:
            await self._finish(item, WorkStatus.FAILED, {}, f"{source.uri}: {exc.message}")
            return
        summary["seconds"] = round(time.perf_counter() - started, 6)
        await self._conclude_chunk(item, source, output, summary)

    async def _conclude_chunk(
        self, item: WorkItem, source: InputObject, output: Path, summary: dict[str, Any]
    ) -> None:
        """Finish a chunk from its summary: failed where it stopped at a bad record."""
        error = summary.get("error") or {}
        if summary.get("stopped"):
            reason = f"{source.uri}: line {error['line']}: {error['message']}"
            await self._finish(item, WorkStatus.FAILED, summary, reason)
            return
        summary["part"] = output.name
        await self._finish(item, WorkStatus.SUCCEEDED, summary, None)

    async def _retry_or_fail(self, item: WorkItem, source: InputObject, reason: str) -> None:
        if item.attempts > self.spec.max_retries:
            text = f"{source.uri}: {reason} (gave up after {item.attempts} attempts)"
            await self._finish(item, WorkStatus.FAILED, {}, text)
            return
        delay = self.s.settings.async_retry_backoff_s * 2 ** (item.attempts - 1)
        await asyncio.to_thread(self.s.queue.retry, item.id, self.s.runner, delay, reason)
        if self.s.on_chunk is not None:
            self.s.on_chunk(self.job.name, 0, 0, "retried")
        self.items[item.id] = dataclasses.replace(item, status=WorkStatus.QUEUED)

    async def _finish(
        self, item: WorkItem, status: WorkStatus, summary: dict[str, Any], reason: str | None
    ) -> None:
        outcome = Outcome(item.id, self.s.runner, status, summary, reason)
        if not await asyncio.to_thread(self.s.queue.finish_many, [outcome]):
            log.warning("transform chunk %s finished after its lease passed on", item.key)
            return
        self.items[item.id] = dataclasses.replace(
            item, status=status, result=summary, failure_reason=reason
        )
        if self.s.on_chunk is not None:
            answered, failed = summary.get("records", 0), summary.get("failed", 0)
            self.s.on_chunk(self.job.name, answered, failed, status.value.lower())
        file = item.payload["file"]
        if self._file_done(file):
            await asyncio.to_thread(self._assemble, file)

    # -- outputs

    def _file_items(self, file: int) -> list[WorkItem]:
        chunks = [i for i in self.items.values() if i.payload["file"] == file]
        return sorted(chunks, key=lambda i: i.payload["index"])

    def _file_done(self, file: int) -> bool:
        return all(i.status.finished for i in self._file_items(file))

    def _assemble(self, file: int) -> None:
        """Join a finished file's parts into its output, at once; a file with a failed
        chunk gets no output (SageMaker's rule)."""
        chunks = self._file_items(file)
        parts = [self.parts / _part_name(i) for i in chunks]
        if all(i.status is WorkStatus.SUCCEEDED for i in chunks) and all(p.exists() for p in parts):
            source = self.inputs[file]
            target = f"{self.spec.output_path.rstrip('/')}/{source.name}.out"
            self._join(parts, target)
            errors = [p.with_suffix(".errors") for p in parts if p.with_suffix(".errors").exists()]
            if errors:
                self._join(errors, target + ".errors")
        for part in self.parts.glob(f"{file:06d}-*"):  # every attempt's, committed or not
            part.unlink(missing_ok=True)

    def _join(self, parts: list[Path], uri: str) -> None:
        final = self.s.objects.writable(uri, "TransformOutput.S3OutputPath")
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = staging_for(final)
        try:
            with staging.open("wb") as out:
                for part in parts:
                    with part.open("rb") as source:
                        shutil.copyfileobj(source, out, 1 << 20)
                out.flush()
                os.fsync(out.fileno())
            os.replace(staging, final)
        finally:
            staging.unlink(missing_ok=True)
        key = self.s.objects.remote(uri, "TransformOutput.S3OutputPath")
        if key is not None:
            self.s.objects.upload(final, key)

    def conclude(self) -> None:
        """Record the job's end and write its summary beside the outputs."""
        items = self.s.queue.items(self.queue_name)
        counts = _counts(items)
        failed = [i for i in items if i.status is not WorkStatus.SUCCEEDED]
        files = []
        for number, source in enumerate(self.inputs):
            chunks = [i for i in items if i.payload["file"] == number]
            ok = all(i.status is WorkStatus.SUCCEEDED for i in chunks)
            files.append(
                {
                    "input": source.uri,
                    "output": f"{self.spec.output_path.rstrip('/')}/{source.name}.out"
                    if ok
                    else None,
                    "records": sum(i.result.get("records", 0) for i in chunks),
                    "failed_records": sum(i.result.get("failed", 0) for i in chunks),
                    "errors": [i.failure_reason for i in chunks if i.failure_reason and not ok],
                }
            )
        reason = None
        if failed:
            first = failed[0].failure_reason or "a chunk failed"
            bad_files = sum(1 for f in files if f["output"] is None)
            reason = f"{first} ({bad_files} of {len(files)} input files got no output)"
        job = self.s.repo.get(self.job.name)
        summary = {
            "TransformJobName": self.job.name,
            "status": (TransformStatus.FAILED if failed else TransformStatus.COMPLETED).value,
            "failure_reason": reason,
            "started_at": _iso(job.started_at),
            "ended_at": utcnow().isoformat(),
            "counts": dataclasses.asdict(counts),
            "files": files,
        }
        self._write_summary(summary)
        if failed:
            self.s.repo.set_status(self.job.name, TransformStatus.FAILED, reason)
        else:
            self.s.repo.set_status(self.job.name, TransformStatus.COMPLETED)
        shutil.rmtree(self.parts, ignore_errors=True)

    def _write_summary(self, summary: dict[str, Any]) -> None:
        uri = f"{self.spec.output_path.rstrip('/')}/{self.job.name}{SUMMARY_SUFFIX}"
        part = self.parts / "summary.json"
        part.write_text(json.dumps(summary, indent=2))
        self._join([part], uri)


def _check_processing(spec: TransformSpec) -> None:
    """DataProcessing works record by record: Line-split CSV or JSON in and out."""
    jsonpath.Path(spec.input_filter, "DataProcessing.InputFilter")
    jsonpath.Path(spec.output_filter, "DataProcessing.OutputFilter")
    if spec.join_source not in ("None", "Input"):
        raise ValidationError("JoinSource is None or Input", field="DataProcessing.JoinSource")
    if spec.split_type != "Line":
        raise ValidationError(
            "DataProcessing needs SplitType Line (filters and joins work record by record)",
            field="DataProcessing",
        )
    readable = (CSV, JSON, JSONLINES)
    for value, name in ((spec.content_type, "ContentType"), (spec.accept or JSON, "Accept")):
        if media_type(value) not in readable:
            raise ValidationError(
                f"DataProcessing reads and writes CSV, JSON or JSON Lines records, not {value!r}",
                field=f"DataProcessing ({name})",
            )


def _counts(items: list[WorkItem]) -> TransformCounts:
    files: dict[int, list[WorkItem]] = {}
    for item in items:
        files.setdefault(item.payload["file"], []).append(item)
    return TransformCounts(
        files=len(files),
        files_done=sum(1 for chunks in files.values() if all(i.status.finished for i in chunks)),
        chunks=len(items),
        chunks_done=sum(1 for i in items if i.status.finished),
        records=sum(i.payload.get("lines", 0) for i in items),
        records_done=sum(i.result.get("records", 0) for i in items),
        records_failed=sum(i.result.get("failed", 0) for i in items),
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _part_name(item: WorkItem) -> str:
    """The part a chunk's committed attempt wrote (jobs begun before parts were named by
    attempt have one part a chunk)."""
    name: str = (
        item.result.get("part") or f"{item.payload['file']:06d}-{item.payload['index']:06d}.out"
    )
    return name
