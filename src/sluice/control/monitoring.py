"""Monitoring schedules run by the server: due runs claimed once, checks run in processes
of their own, results recorded, published as metrics and sent to webhooks.

A schedule's runs are the times of its cadence (control/cadence.py). Each tick claims the
runs that are due (monitoring_repo.claim: at most once per schedule and time, whichever
server asks). Runs missed while the server was down are all run (`missed_runs="run"`,
the latest `monitor_max_catch_up` of them) or only the latest (`"skip"`). An execution
the server was running when it stopped is run again, as the same execution, when it
comes back.

Each execution checks the window [scheduled + window_start, scheduled + window_end),
by default the period before the scheduled time, in `python -m sluice.monitor.job`, and
publishes what it found: Prometheus gauges per feature (drift distance, completeness)
and per metric, and the same as custom metrics that alarms watch under SageMaker's
CloudWatch names (`feature_baseline_drift_<feature>`, `feature_non_null_<feature>`, the
model-quality metric names, and `monitoring_violations`), so an alarm on drift can stop
a rollout. A change of a schedule's alert state (OK, Violations, Failed,
InsufficientData) goes to its webhook.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import shutil
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sluice.control import cadence
from sluice.control.alarms import AlarmService, MetricPoint
from sluice.control.endpoints import EndpointService
from sluice.control.validation import check_name, check_range
from sluice.control.webhooks import Notifier
from sluice.entities import (
    ExecutionStatus,
    MonitoringExecution,
    MonitoringJob,
    MonitoringSchedule,
    MonitoringType,
    ScheduleStatus,
)
from sluice.errors import InvalidState, NotFound, ValidationError
from sluice.gateway.metrics import Metrics
from sluice.monitor.documents import read_object
from sluice.monitor.quality_rules import check_constraints, problem_type
from sluice.settings import Settings
from sluice.store.monitoring_repo import MonitoringRepository

log = logging.getLogger(__name__)

MISSED_RUNS = ("run", "skip")
ALERT_STATES = {
    ExecutionStatus.COMPLETED: "OK",
    ExecutionStatus.COMPLETED_WITH_VIOLATIONS: "Violations",
    ExecutionStatus.FAILED: "Failed",
    ExecutionStatus.INSUFFICIENT_GROUND_TRUTH: "InsufficientData",
}
_METRIC_UNSAFE = re.compile(r"[^A-Za-z0-9_.:/-]")
MAX_BASELINE_BYTES = 256 * 1024 * 1024
"""A baseline document larger than this is not copied (so the check reports it missing)."""


@dataclass(frozen=True)
class ScheduleSpec:
    name: str
    expression: str
    job: MonitoringJob
    missed_runs: str = "run"
    webhook_url: str | None = None
    job_definition: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


class MonitoringService:
    def __init__(
        self,
        repo: MonitoringRepository,
        endpoints: EndpointService,
        alarms: AlarmService,
        notifier: Notifier,
        metrics: Metrics,
        settings: Settings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.repo = repo
        self.endpoints = endpoints
        self.alarms = alarms
        self.notifier = notifier
        self.metrics = metrics
        self.settings = settings
        self.clock = clock
        self.queue: asyncio.Queue[int] = asyncio.Queue()
        self.running: dict[int, asyncio.subprocess.Process] = {}
        self.tasks: list[asyncio.Task[None]] = []

    # -- schedules

    def check_job(self, job: MonitoringJob) -> MonitoringJob:
        """ValidationError (naming the field) unless `job` can run: a known endpoint, a
        baseline folder with its files, offsets, and a problem type for model quality."""
        check_name(job.endpoint, "EndpointName")
        self.endpoints.get_endpoint(job.endpoint)
        if job.variant is not None:
            check_name(job.variant, "VariantName")
        folder = Path(job.baseline)
        needed = ["constraints.json"]
        if job.kind is MonitoringType.DATA_QUALITY:
            needed.insert(0, "statistics.json")
        documents = {name: read_object(folder / name, "Baseline") for name in needed}
        if job.kind is MonitoringType.MODEL_QUALITY:
            check_constraints(problem_type(job.problem_type), documents["constraints.json"])
        for offset, name in (
            (job.window_start, "StartTimeOffset"),
            (job.window_end, "EndTimeOffset"),
        ):
            if offset is not None and _offset(offset, name) > 0:
                raise ValidationError(f"{name} must not be in the future", field=name)
        check_range(job.min_rows, "MinRows", 1)
        check_range(job.max_runtime_s, "MaxRuntimeInSeconds", 1, 86_400)
        return job

    def create(self, spec: ScheduleSpec, keep_baseline: bool = False) -> MonitoringSchedule:
        """A new schedule. `keep_baseline`: the job's baseline is a folder a request named;
        it must be one the server may read, and the schedule uses a copy kept in the home
        (moving the original never breaks it)."""
        if not keep_baseline:
            return self._create(spec)
        kept = self._keep_baseline(spec.name, spec.job.baseline)
        try:
            return self._create(replace(spec, job=replace(spec.job, baseline=str(kept))))
        except BaseException:
            shutil.rmtree(kept, ignore_errors=True)
            raise

    def _keep_baseline(self, name: str, baseline: str) -> Path:
        check_name(name, "MonitoringScheduleName")
        source = self.endpoints.artifacts.objects.readable(baseline, "Baseline")
        if not source.is_dir():
            raise ValidationError(f"baseline {baseline!r} is not a folder", field="Baseline")
        kept = self.settings.monitoring_dir / "baselines" / f"{name}-{uuid.uuid4().hex[:8]}"
        kept.mkdir(parents=True)
        for document in ("statistics.json", "constraints.json"):
            path = source / document
            if path.is_file() and path.stat().st_size <= MAX_BASELINE_BYTES:
                shutil.copyfile(path, kept / document)
        return kept

    def _create(self, spec: ScheduleSpec) -> MonitoringSchedule:
        check_name(spec.name, "MonitoringScheduleName")
        runs = cadence.parse(spec.expression)
        if spec.missed_runs not in MISSED_RUNS:
            raise ValidationError("MissedRuns must be run or skip", field="MissedRuns")
        if spec.webhook_url is not None:
            self.notifier.check(spec.webhook_url)
        self.check_job(spec.job)
        now = _at(self.clock())
        schedule = self.repo.add(
            MonitoringSchedule(
                spec.name,
                runs.expression,
                spec.job,
                ScheduleStatus.SCHEDULED,
                spec.missed_runs,
                now,
                now,
                last_scheduled_at=now,
                job_definition=spec.job_definition,
                webhook_url=spec.webhook_url,
                details=spec.details,
            )
        )
        if runs.once:
            self._enqueue(self.repo.claim(schedule, [now], advance=False))
        return schedule

    def get(self, name: str) -> MonitoringSchedule:
        return self.repo.get(name)

    def find(self, endpoint: str | None = None) -> list[MonitoringSchedule]:
        return self.repo.find(endpoint)

    def stop(self, name: str) -> MonitoringSchedule:
        """No more runs until started again; a run in progress finishes."""
        return self.repo.update(name, status=ScheduleStatus.STOPPED)

    def start(self, name: str) -> MonitoringSchedule:
        """Runs resume from now: the times passed while stopped are not caught up."""
        schedule = self.repo.get(name)
        if schedule.status is ScheduleStatus.SCHEDULED:
            return schedule
        return self.repo.update(
            name, status=ScheduleStatus.SCHEDULED, last_scheduled_at=_at(self.clock())
        )

    def delete(self, name: str) -> None:
        """Delete the schedule (its executions' records and files stay); a run in progress
        is stopped."""
        schedule = self.repo.get(name)
        for execution in self.repo.executions(
            schedule.name, [ExecutionStatus.PENDING, ExecutionStatus.IN_PROGRESS]
        ):
            self._stop_execution(execution.id, "the schedule was deleted")
        self.repo.delete(schedule.name)

    def run_now(self, name: str) -> MonitoringExecution:
        """An extra run at this moment, beside the schedule's own (which it does not move)."""
        schedule = self.repo.get(name)
        claimed = self.repo.claim(schedule, [_at(self.clock())], advance=False)
        if not claimed:
            raise InvalidState(f"a run of {name!r} was just started", field="name")
        self._enqueue(claimed)
        return claimed[0]

    def executions(
        self,
        schedule: str | None = None,
        endpoint: str | None = None,
        statuses: list[ExecutionStatus] | None = None,
        limit: int | None = None,
    ) -> list[MonitoringExecution]:
        if schedule is not None:
            self.repo.get(schedule)
        return self.repo.executions(schedule, statuses, endpoint, limit)

    def execution(self, execution_id: int) -> MonitoringExecution:
        return self.repo.execution(execution_id)

    # -- the scheduler

    def tick(self) -> list[MonitoringExecution]:
        """Claim and queue every run that is due; returns what was claimed."""
        now = self.clock()
        horizon = now - self.settings.monitor_settle_s
        claimed: list[MonitoringExecution] = []
        for schedule in self.repo.find(status=ScheduleStatus.SCHEDULED):
            runs = cadence.parse(schedule.expression)
            after = (schedule.last_scheduled_at or schedule.created_at).timestamp()
            due = runs.times(after, horizon)
            if not due:
                continue
            keep = 1 if schedule.missed_runs == "skip" else self.settings.monitor_max_catch_up
            if len(due) > keep:
                log.warning(
                    "monitoring schedule %s: %d missed runs skipped (%s policy), running %d",
                    schedule.name, len(due) - keep, schedule.missed_runs, keep,
                )  # fmt: skip
            got = self.repo.claim(schedule, [_at(t) for t in due[-keep:]])
            self._enqueue(got)
            claimed += got
        return claimed

    def start_scheduler(self) -> None:
        self.tasks = [
            asyncio.create_task(self._scheduler_loop(), name="monitoring-scheduler"),
            asyncio.create_task(self._runner_loop(), name="monitoring-runner"),
        ]

    def recover(self) -> None:
        """Queue again the executions a stopped server left pending or in progress."""
        unfinished = self.repo.executions(
            statuses=[ExecutionStatus.PENDING, ExecutionStatus.IN_PROGRESS], newest_first=False
        )
        for execution in unfinished:
            if execution.status is ExecutionStatus.IN_PROGRESS:
                log.info("monitoring execution %d was cut off; running it again", execution.id)
                self.repo.update_execution(execution.id, status=ExecutionStatus.PENDING)
        self._enqueue(unfinished)

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for process in list(self.running.values()):
            with contextlib.suppress(ProcessLookupError):
                process.kill()  # left InProgress: run again when the server comes back

    async def wait_idle(self) -> None:
        """Until every queued execution has run (for tests and `run-now --wait`)."""
        await self.queue.join()

    def _enqueue(self, executions: list[MonitoringExecution]) -> None:
        for execution in executions:
            self.queue.put_nowait(execution.id)

    async def _scheduler_loop(self) -> None:
        while True:
            try:
                self.tick()
            except Exception:
                log.exception("monitoring scheduler tick failed")
            await asyncio.sleep(self.settings.monitor_tick_s)

    async def _runner_loop(self) -> None:
        while True:
            execution_id = await self.queue.get()
            try:
                await self._execute(execution_id)
            except Exception as exc:
                log.exception("monitoring execution %d failed", execution_id)
                with contextlib.suppress(NotFound):
                    self._finish(execution_id, ExecutionStatus.FAILED, f"internal error: {exc}")
            finally:
                self.queue.task_done()

    # -- one execution

    async def _execute(self, execution_id: int) -> None:
        execution = self.repo.execution(execution_id)
        if execution.status.finished:
            return
        try:
            schedule = self.repo.get(execution.schedule)
        except NotFound:
            self._finish(execution_id, ExecutionStatus.STOPPED, "the schedule was deleted")
            return
        job = schedule.job
        scheduled = execution.scheduled_at.timestamp()
        # A run asked for now waits for the capture of its last requests to be flushed.
        flushed = scheduled + self.settings.capture_flush_interval_s + 0.5
        if (delay := flushed - self.clock()) > 0:
            await asyncio.sleep(delay)
        end = scheduled + _offset(job.window_end, "EndTimeOffset")
        start = (
            scheduled + _offset(job.window_start, "StartTimeOffset")
            if job.window_start is not None
            else end - cadence.parse(schedule.expression).period_before(scheduled)
        )
        out = (
            self.settings.monitoring_dir
            / schedule.name
            / execution.scheduled_at.strftime("%Y-%m-%dT%H-%M-%S.%fZ")
        )
        out.mkdir(parents=True, exist_ok=True)
        spec = {
            "kind": job.kind.value,
            "baseline": job.baseline,
            "sources": [str(p) for p in self._capture_folders(job)],
            "ground_truth": str(self.settings.ground_truth_dir / job.endpoint),
            "start": start,
            "end": end,
            "out": str(out),
            "title": f"{schedule.name} ({job.endpoint}) at {execution.scheduled_at.isoformat()}",
            "problem_type": job.problem_type,
            "attributes": {
                "inference": job.inference_attribute,
                "probability": job.probability_attribute,
                "threshold": job.probability_threshold,
                "positive": job.positive_label,
            },
            "min_rows": job.min_rows,
        }
        (out / "spec.json").write_text(json.dumps(spec, indent=1))
        self.repo.update_execution(
            execution_id,
            status=ExecutionStatus.IN_PROGRESS,
            window_start=_at(start),
            window_end=_at(end),
            report_dir=str(out),
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "sluice.monitor.job", str(out / "spec.json"),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        self.running[execution_id] = process
        try:
            _, stderr = await asyncio.wait_for(process.communicate(), job.max_runtime_s)
        except TimeoutError:
            process.kill()
            await process.wait()
            self._finish(
                execution_id,
                ExecutionStatus.FAILED,
                f"the check ran past MaxRuntimeInSeconds ({job.max_runtime_s} s)",
            )
            return
        finally:
            self.running.pop(execution_id, None)
        if self.repo.execution(execution_id).status.finished:
            return  # stopped while it ran
        if process.returncode != 0:
            lines = stderr.decode(errors="replace").strip().splitlines()
            self._finish(
                execution_id,
                ExecutionStatus.FAILED,
                lines[-1] if lines else f"the check exited with {process.returncode}",
            )
            return
        summary = json.loads((out / "summary.json").read_text())
        finished = self.repo.update_execution(
            execution_id,
            status=ExecutionStatus(summary["status"]),
            counts=summary["counts"],
            summary=summary,
            failure_reason=summary.get("reason") or None,
        )
        self._publish(schedule, finished)

    def _capture_folders(self, job: MonitoringJob) -> list[Path]:
        root = self.settings.capture_dir
        with contextlib.suppress(NotFound):
            config = self.endpoints.get_endpoint_config(
                self.endpoints.get_endpoint(job.endpoint).config_name
            )
            if config.data_capture is not None and config.data_capture.destination:
                root = self.endpoints.artifacts.objects.local(config.data_capture.destination)
        base = root / job.endpoint
        if job.variant is not None:
            return [base / job.variant]
        return sorted(p for p in base.iterdir() if p.is_dir()) if base.is_dir() else []

    def _stop_execution(self, execution_id: int, reason: str) -> None:
        self._finish(execution_id, ExecutionStatus.STOPPED, reason)
        process = self.running.get(execution_id)
        if process is not None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()

    def _finish(self, execution_id: int, status: ExecutionStatus, reason: str) -> None:
        execution = self.repo.update_execution(execution_id, status=status, failure_reason=reason)
        if status is ExecutionStatus.FAILED:
            with contextlib.suppress(NotFound):
                self._publish(self.repo.get(execution.schedule), execution)

    # -- what an execution tells others

    def _publish(self, schedule: MonitoringSchedule, execution: MonitoringExecution) -> None:
        job, summary = schedule.job, execution.summary
        name, endpoint = schedule.name, job.endpoint
        m = self.metrics
        m.monitoring_executions.labels(name, endpoint, execution.status.value).inc()
        points: list[MetricPoint] = []
        if execution.status in (
            ExecutionStatus.COMPLETED,
            ExecutionStatus.COMPLETED_WITH_VIOLATIONS,
        ):
            violations = int(summary.get("violations", 0))
            m.monitoring_violations.labels(name, endpoint).set(violations)
            points.append(MetricPoint("monitoring_violations", violations, endpoint, job.variant))
            for feature, found in summary.get("features", {}).items():
                if found.get("drift") is not None:
                    m.monitoring_feature_drift.labels(name, endpoint, feature).set(found["drift"])
                    points.append(
                        MetricPoint(
                            f"feature_baseline_drift_{_metric_safe(feature)}",
                            float(found["drift"]), endpoint, job.variant,
                        )
                    )  # fmt: skip
                if found.get("completeness") is not None:
                    m.monitoring_feature_completeness.labels(name, endpoint, feature).set(
                        found["completeness"]
                    )
                    points.append(
                        MetricPoint(
                            f"feature_non_null_{_metric_safe(feature)}",
                            float(found["completeness"]), endpoint, job.variant,
                        )
                    )  # fmt: skip
            for metric, value in summary.get("metrics", {}).items():
                m.monitoring_model_metric.labels(name, endpoint, metric).set(value)
                points.append(
                    MetricPoint(_metric_safe(metric), float(value), endpoint, job.variant)
                )
        if points:
            # As SageMaker publishes them: per schedule, in a namespace per kind of check.
            kind = "model" if job.kind is MonitoringType.MODEL_QUALITY else "data"
            try:
                self.alarms.put_metrics(
                    points,
                    f"aws/sagemaker/Endpoints/{kind}-metrics",
                    {"Endpoint": endpoint, "MonitoringSchedule": name},
                )
            except ValidationError as exc:
                log.warning("monitoring %s: metrics not published: %s", name, exc)
        self._alert(schedule, execution)

    def _alert(self, schedule: MonitoringSchedule, execution: MonitoringExecution) -> None:
        state = ALERT_STATES.get(execution.status)
        if state is None or state == schedule.alert_state:
            return
        with contextlib.suppress(NotFound):
            self.repo.update(schedule.name, alert_state=state)
        log.info("monitoring %s: %s -> %s", schedule.name, schedule.alert_state, state)
        if schedule.webhook_url:
            self.notifier.notify(
                schedule.webhook_url,
                {
                    "schedule": schedule.name,
                    "endpoint": schedule.job.endpoint,
                    "kind": schedule.job.kind.value,
                    "old_state": schedule.alert_state,
                    "new_state": state,
                    "execution": execution.id,
                    "scheduled_at": execution.scheduled_at.isoformat(),
                    "status": execution.status.value,
                    "violations": execution.summary.get("violations_by_check", {}),
                    "drifted": execution.summary.get("drifted", []),
                    "reason": execution.failure_reason,
                    "report": f"{execution.report_dir}/report.html"
                    if execution.report_dir
                    else None,
                },
            )


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _offset(text: str, field: str) -> float:
    from sluice.monitor.times import duration

    seconds = duration(text)
    if seconds is None:
        raise ValidationError(f"{field} must be an ISO-8601 duration such as -PT1H", field=field)
    return seconds


def _metric_safe(name: str) -> str:
    return _METRIC_UNSAFE.sub("_", name)[:200]
