"""Processing and training jobs: checked and recorded at once, run in the background.

A run: the job's folder is made afresh (its log is kept and appended to), inputs are
copied in (secondary status Downloading), the program runs (Training), outputs are sent
out (Uploading), and the job ends Completed, Failed or Stopped. A server that stops
mid-run leaves the job InProgress; the next start runs it again from the beginning, a
training job with its checkpoints restored first, so a script that saves checkpoints
resumes where it was. At most `max_concurrent_jobs` run at once; the others wait their
turn, InProgress (secondary status Pending).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import os
import shutil
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sluice.control.gateways import Gateways
from sluice.entities import Job, JobKind, JobStatus
from sluice.errors import SluiceError, ValidationError
from sluice.jobs import processing, training
from sluice.jobs.environments import environment_for
from sluice.jobs.launch import Ended, Launch
from sluice.jobs.output import JobLog, tail
from sluice.jobs.plan import Plan
from sluice.jobs.staging import Checkpoints, FolderSync, inside, publish, stage
from sluice.settings import Settings
from sluice.store.job_repo import JobRepository
from sluice.store.objects import ObjectStore
from sluice.store.tables import utcnow

log = logging.getLogger(__name__)

WAIT_POLL_S = 0.1


def image_of(kind: JobKind, request: dict[str, Any]) -> str:
    if kind is JobKind.PROCESSING:
        return str(request["AppSpecification"].get("ImageUri", ""))
    return str((request.get("AlgorithmSpecification") or {}).get("TrainingImage", ""))


class JobService:
    def __init__(
        self,
        repo: JobRepository,
        objects: ObjectStore,
        settings: Settings,
        gateways: Gateways,
        on_end: Callable[[Job], None] | None = None,
        on_metrics: Callable[[Job, list[tuple[str, float, float]]], None] | None = None,
    ) -> None:
        self.repo = repo
        self.objects = objects
        self.settings = settings
        self.gateways = gateways
        self.on_end = on_end
        """Called with each job as it ends (metrics)."""
        self.on_metrics = on_metrics
        """Called with a training job's metric values as they are read from its log
        (metric, value, epoch seconds), every second or so."""
        self.runner = gateways.me
        """Who runs the jobs started here (another gateway's live jobs are not taken)."""
        self.tasks: dict[tuple[JobKind, str], asyncio.Task[None]] = {}
        self.launches: dict[tuple[JobKind, str], Launch] = {}
        self._slots: asyncio.Semaphore | None = None

    # -- the API

    def plan(self, kind: JobKind, name: str, request: dict[str, Any]) -> Plan:
        """The job's plan; refuses what cannot run, before anything is recorded."""
        environment = environment_for(
            image_of(kind, request), self.settings.job_images, self.settings.job_programs
        )
        region = self.settings.aws_region
        if kind is JobKind.PROCESSING:
            return processing.plan(name, request, environment, region)
        return training.plan(name, request, environment, region)

    def check(self, kind: JobKind, name: str, request: dict[str, Any]) -> Plan:
        if not self.settings.jobs_enabled:
            raise ValidationError(
                "processing and training jobs are turned off on this server (setting jobs_enabled)",
                field="jobs_enabled",
            )
        plan = self.plan(kind, name, request)
        for source in plan.inputs:
            self.objects.plausible(source.uri, source.field)
        for output in plan.outputs:
            self.objects.writable(output.uri, output.field)
        if kind is JobKind.TRAINING:
            self.objects.writable(
                training.model_uri(request, name), "OutputDataConfig.S3OutputPath"
            )
            checkpoint = (request.get("CheckpointConfig") or {}).get("S3Uri")
            if checkpoint:
                self.objects.writable(checkpoint, "CheckpointConfig.S3Uri")
            definitions = (request.get("AlgorithmSpecification") or {}).get("MetricDefinitions")
            training.MetricReader(list(definitions or []))
        return plan

    def create(
        self,
        kind: JobKind,
        name: str,
        request: dict[str, Any],
        folder: Path | None = None,
        details: dict[str, Any] | None = None,
    ) -> Job:
        """Record a job and start it. `folder`: where its files go (default
        <home>/jobs/<kind>/<name>)."""
        self.check(kind, name, request)
        where = folder or self.settings.jobs_dir / kind.value / name.lower()
        now = utcnow()
        job = self.repo.add(
            Job(
                kind,
                name,
                JobStatus.IN_PROGRESS,
                request,
                now,
                now,
                secondary_status="Starting",
                details={
                    "folder": str(where),
                    "attempts": 1,
                    "runner": self.runner,
                    "transitions": [_transition("Starting", "Preparing the job")],
                    **(details or {}),
                },
            )
        )
        self._start(job)
        return job

    def get(self, kind: JobKind, name: str) -> Job:
        return self.repo.get(kind, name)

    def list(
        self, kind: JobKind, status: JobStatus | None = None, name_contains: str = ""
    ) -> builtins.list[Job]:
        return self.repo.list_all(kind, status, name_contains)

    def log(self, job: Job, lines: int = 200) -> builtins.list[str]:
        return tail(Path(job.details["folder"]), lines)

    async def stop(self, kind: JobKind, name: str) -> Job:
        """Ask the program to end (SIGTERM, then SIGKILL after job_stop_grace_s). A job
        that has ended already stays as it is."""
        job = self.repo.get(kind, name)
        if job.status.finished:
            return job
        job = self.repo.update(kind, job.name, status=JobStatus.STOPPING, secondary="Stopping")
        key = (kind, job.name.lower())
        launch = self.launches.get(key)
        if launch is not None:
            launch.stop()
        elif key in self.tasks:  # not started yet (waiting, or copying inputs)
            self.tasks[key].cancel()
            self._ended(job, JobStatus.STOPPED, "Stopped", None)
        else:
            self._ended(job, JobStatus.STOPPED, "Stopped", None)
        return self.repo.get(kind, job.name)

    async def wait(self, kind: JobKind, name: str) -> Job:
        """The job once it has ended."""
        while True:
            job = self.repo.get(kind, name)
            if job.status.finished:
                return job
            await asyncio.sleep(WAIT_POLL_S)

    def recover(self) -> None:
        """Carry on with the jobs a stopped server left: those stopping end Stopped, those
        running start again (training from its last checkpoint)."""
        for job in self.repo.unfinished():
            runner = str(job.details.get("runner", ""))
            if (job.kind, job.name.lower()) in self.tasks:
                continue  # running (or waiting for a slot) here
            if runner and not self.gateways.is_gone(runner):
                continue  # a live gateway runs it
            _kill_leftover(job)
            if job.status is JobStatus.STOPPING:
                self._ended(job, JobStatus.STOPPED, "Stopped", None)
                continue
            attempts = int(job.details.get("attempts", 1)) + 1
            folder = Path(job.details["folder"])
            if not folder.exists():  # it ran on another host: it starts in a folder here
                folder = self.settings.jobs_dir / job.kind.value / job.name.lower()
            message = "The server restarted; the job starts again"
            if job.kind is JobKind.TRAINING and (job.request.get("CheckpointConfig") or {}):
                message += " from its last checkpoint"
            job = self.repo.update(
                job.kind,
                job.name,
                secondary="Restarting",
                details={
                    "attempts": attempts,
                    "runner": self.runner,
                    "folder": str(folder),
                    "transitions": _append(job, _transition("Restarting", message)),
                },
            )
            log.info("%s job %s: %s", job.kind.value, job.name, message.lower())
            self._start(job)

    async def close(self) -> None:
        """Stop running jobs where they are (their programs end); the next start runs
        them again."""
        for task in list(self.tasks.values()):
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)

    # -- running a job

    def _start(self, job: Job) -> None:
        key = (job.kind, job.name.lower())
        task = asyncio.get_running_loop().create_task(
            self._run(job), name=f"{job.kind.value} job {job.name}"
        )
        self.tasks[key] = task
        task.add_done_callback(lambda _: self.tasks.pop(key, None))

    async def _run(self, job: Job) -> None:
        if self._slots is None:
            self._slots = asyncio.Semaphore(max(1, self.settings.max_concurrent_jobs))
        if self._slots.locked():
            self._move(job, "Pending", "Waiting for one of the jobs running to end")
        async with self._slots:
            try:
                await _Run(self, self.repo.get(job.kind, job.name)).go()
            except asyncio.CancelledError:
                raise
            except SluiceError as exc:
                log.warning("%s job %s failed: %s", job.kind.value, job.name, exc.message)
                self._ended(job, JobStatus.FAILED, "Failed", exc.message)
            except Exception as exc:  # noqa: BLE001 - a job fails; the server goes on
                log.exception("%s job %s", job.kind.value, job.name)
                reason = f"InternalServerError: {type(exc).__name__}: {exc}"
                self._ended(job, JobStatus.FAILED, "Failed", reason)

    def _move(self, job: Job, secondary: str, message: str, **details: Any) -> Job:
        current = self.repo.get(job.kind, job.name)
        return self.repo.update(
            job.kind,
            job.name,
            secondary=secondary,
            details={"transitions": _append(current, _transition(secondary, message)), **details},
        )

    def _ended(
        self,
        job: Job,
        status: JobStatus,
        secondary: str,
        reason: str | None,
        **details: Any,
    ) -> Job:
        current = self.repo.get(job.kind, job.name)
        message = reason or {
            JobStatus.COMPLETED: "The job completed",
            JobStatus.STOPPED: "The job was stopped",
        }.get(status, "The job ended")
        ended = self.repo.update(
            job.kind,
            job.name,
            status=status,
            secondary=secondary,
            reason=reason,
            details={
                "transitions": _append(current, _transition(secondary, message)),
                **details,
            },
        )
        if self.on_end is not None and ended.status.finished:
            self.on_end(ended)
        return ended


class _Run:
    """One run of one job, from an empty folder to its end."""

    def __init__(self, service: JobService, job: Job) -> None:
        self.s = service
        self.job = job
        self.folder = Path(job.details["folder"])
        self.root = self.folder / "ml"
        self.key = (job.kind, job.name.lower())
        definitions = (job.request.get("AlgorithmSpecification") or {}).get("MetricDefinitions")
        self.metrics = training.MetricReader(list(definitions or []))
        self.synced: list[FolderSync] = []
        """Folders copied out while the job runs: checkpoints, Continuous outputs."""

    async def go(self) -> None:
        plan = self.s.plan(self.job.kind, self.job.name, self.job.request)
        started = time.monotonic()
        self.s.repo.update(
            self.job.kind, self.job.name, started=True, details={"runner": self.s.runner}
        )
        self.job = self.s._move(self.job, "Downloading", "Downloading input data")
        try:
            restored = await asyncio.to_thread(self._prepare, plan)
        except SluiceError as exc:
            self.s._ended(self.job, JobStatus.FAILED, "Failed", f"ClientError: {exc.message}")
            return
        message = "Training in progress" if self.job.kind is JobKind.TRAINING else "Running"
        if restored:
            message += f" ({restored} checkpoint files restored)"
        self.job = self.s._move(self.job, "Training", message)
        launch = Launch(
            self.folder,
            plan.program,
            self._line,
            self._started,
            self.s.settings.job_mount_namespace,
            self.s.settings.instance_memory_mb.get(plan.instance_type or ""),
        )
        self.s.launches[self.key] = launch
        ticking = self.synced or self.metrics.patterns
        syncing = asyncio.create_task(self._every_tick()) if ticking else None
        try:
            ended = await launch.run(plan.max_runtime_s, self.s.settings.job_stop_grace_s)
        finally:
            self.s.launches.pop(self.key, None)
            if syncing is not None:
                syncing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await syncing
        await self._conclude(plan, ended, time.monotonic() - started)

    def _prepare(self, plan: Plan) -> int:
        """An empty /opt/ml tree with the inputs, files and folders the plan names; the
        checkpoint files restored."""
        self.folder.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(self.root, ignore_errors=True)
        self.root.mkdir()
        with JobLog(self.folder) as note:
            attempt = self.job.details.get("attempts", 1)
            note.write(
                f"[sluice] {self.job.kind.value} job {self.job.name}, attempt {attempt}".encode()
            )
        for source in plan.inputs:
            stage(
                self.s.objects,
                source.uri,
                inside(self.root, source.path),
                source.data_type,
                source.field,
                source.unpack,
                self.s.settings.max_artifact_bytes,
            )
        for path, text in plan.files.items():
            target = inside(self.root, path)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        for path in plan.folders:
            inside(self.root, path).mkdir(parents=True, exist_ok=True)
        self.synced = [
            FolderSync(self.s.objects, out.uri, inside(self.root, out.path), out.field)
            for out in plan.outputs
            if out.continuous
        ]
        config = self.job.request.get("CheckpointConfig") or {}
        if self.job.kind is JobKind.TRAINING and config.get("S3Uri"):
            local = inside(self.root, training.checkpoint_path(self.job.request))
            checkpoints = Checkpoints(self.s.objects, config["S3Uri"], local)
            self.synced.append(checkpoints)
            return checkpoints.restore()
        return 0

    def _line(self, line: str) -> None:
        if self.metrics.patterns:
            self.metrics.read(line)

    def _started(self, pid: int) -> None:
        import psutil

        try:
            created = psutil.Process(pid).create_time()
        except psutil.Error:
            return
        self.s.repo.update(
            self.job.kind, self.job.name, details={"pid": pid, "pid_started": created}
        )

    async def _every_tick(self) -> None:
        while True:
            await asyncio.sleep(self.s.settings.checkpoint_sync_s)
            # The values are taken here, on the loop that reads the log into them.
            await asyncio.to_thread(self._sync_once, self.metrics.take())

    def _sync_once(self, points: list[tuple[str, float, float]]) -> None:
        """Copy out the folders' new files, and pass on the metric values read."""
        if points and self.s.on_metrics is not None:
            try:
                self.s.on_metrics(self.job, points)
            except Exception:  # noqa: BLE001 - the job goes on without its series
                log.exception("job %s: its metric values were not recorded", self.job.name)
        for folder in self.synced:
            try:
                folder.sync()
            except (OSError, SluiceError) as exc:
                log.warning("job %s: copying out %s failed: %s", self.job.name, folder.uri, exc)

    async def _conclude(self, plan: Plan, ended: Ended, seconds: float) -> None:
        details: dict[str, Any] = {
            "metrics": self.metrics.values,
            "exit_code": ended.exit_code,
            "training_seconds": round(seconds, 3),
        }
        message = self.root / "output" / "message"
        if message.is_file():
            details["exit_message"] = message.read_text(errors="replace")[:1024]
        await asyncio.to_thread(self._sync_once, self.metrics.take())
        kind = self.job.kind
        if ended.stopped:
            self.s._ended(self.job, JobStatus.STOPPED, "Stopped", None, **details)
            return
        if ended.timed_out and kind is JobKind.PROCESSING:
            reason = f"The job ran past its MaxRuntimeInSeconds ({plan.max_runtime_s:g} s)"
            self.s._ended(self.job, JobStatus.FAILED, "Failed", reason, **details)
            return
        if ended.exit_code != 0 and not ended.timed_out:
            self.s._ended(
                self.job, JobStatus.FAILED, "Failed", self._failure(ended, plan), **details
            )
            return
        self.job = self.s._move(self.job, "Uploading", "Uploading generated training model")
        try:
            if kind is JobKind.TRAINING:
                details["model_artifacts"] = await asyncio.to_thread(
                    training.pack, self.root, self.s.objects, self.job.request, self.job.name
                )
            for output in plan.outputs:
                await asyncio.to_thread(
                    publish,
                    self.s.objects,
                    inside(self.root, output.path),
                    output.uri,
                    output.field,
                )
        except (SluiceError, OSError) as exc:
            reason = f"ClientError: cannot upload the outputs: {getattr(exc, 'message', exc)}"
            self.s._ended(self.job, JobStatus.FAILED, "Failed", reason, **details)
            return
        if ended.timed_out:
            self.s._ended(
                self.job,
                JobStatus.STOPPED,
                "MaxRuntimeExceeded",
                f"The job ran past its MaxRuntimeInSeconds ({plan.max_runtime_s:g} s)",
                **details,
            )
            return
        self.s._ended(self.job, JobStatus.COMPLETED, "Completed", None, **details)

    def _failure(self, ended: Ended, plan: Plan) -> str:
        written = training.failure(self.root)
        if written:
            return f"AlgorithmError: {written}"
        lines = [line for line in tail(self.folder, 5) if line.strip()]
        last = f"; its last line: {lines[-1][:300]}" if lines else ""
        memory_mb = self.s.settings.instance_memory_mb.get(plan.instance_type or "")
        if memory_mb and any("MemoryError" in line for line in lines):
            last += (
                f" (each of its processes may map {memory_mb} MiB, the memory of "
                f"{plan.instance_type}: setting instance_memory_mb)"
            )
        return f"AlgorithmError: the program exited with code {ended.exit_code}{last}"


def _transition(status: str, message: str) -> dict[str, Any]:
    return {"Status": status, "StartTime": time.time(), "StatusMessage": message}


def _append(job: Job, transition: dict[str, Any]) -> list[dict[str, Any]]:
    """The job's transitions with `transition` after them, the previous one ended."""
    transitions = [dict(t) for t in job.details.get("transitions", [])]
    if transitions and "EndTime" not in transitions[-1]:
        transitions[-1]["EndTime"] = transition["StartTime"]
    return [*transitions, transition]


def _kill_leftover(job: Job) -> None:
    """End what a previous server's run of `job` may have left (its launcher dies with the
    server; processes it started may not, where no PID namespace held them)."""
    pid, started = job.details.get("pid"), job.details.get("pid_started")
    if not pid or not started:
        return
    import psutil

    try:
        if abs(psutil.Process(pid).create_time() - started) < 0.01:
            os.killpg(pid, signal.SIGKILL)
    except (psutil.Error, ProcessLookupError, PermissionError):
        pass
