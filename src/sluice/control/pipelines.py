"""Pipelines: definitions kept, executions run step by step, independent steps at once.

An execution runs each step when every step it waits for has succeeded (a step in a
condition's branch, when the condition chose that branch), up to the execution's
parallelism. A step that fails lets the steps running end, starts no other, and fails
the execution; a Fail step does so with its message. Steps with caching on reuse the
latest successful run with the same cache key (`sluice.pipelines.caching`) within
`ExpireAfter`. Each step's files (its job's /opt/ml tree and log, and `step.json`:
its evaluated arguments, outcome and properties) are under
`<home>/pipelines/<pipeline>/<execution>/<step>/`. A server that stops mid-execution
carries on at its next start: steps that ended stay ended, jobs that ran go on (their own
restart), steps not started yet start then. A retry runs the failed and stopped steps
again and what waited for them, keeping every step that succeeded.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
import logging
import secrets
import string
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from sluice.control.gateways import Gateways
from sluice.entities import (
    ExecutionStep,
    Pipeline,
    PipelineExecution,
    PipelineExecutionStatus,
    StepStatus,
)
from sluice.errors import InvalidState, SluiceError, ValidationError
from sluice.pipelines import caching, expressions
from sluice.pipelines.definition import Definition, Step, parse
from sluice.settings import Settings
from sluice.store.pipeline_repo import PipelineRepository
from sluice.store.tables import utcnow

log = logging.getLogger(__name__)

DEFAULT_PARALLELISM = 50
"""SageMaker's MaxParallelExecutionSteps when none is given."""
INTERNAL_ERRORS = ("SageMaker.JOB_INTERNAL_ERROR", "Step.SERVICE_FAULT")


@dataclass(frozen=True)
class Outcome:
    status: StepStatus
    reason: str | None
    properties: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)


class StepActions(Protocol):
    """What running a job-like step takes: SageMaker's Create/Describe/Stop operations."""

    def metadata(self, step_type: str, name: str) -> dict[str, Any]:
        """The step's metadata naming its resource (`{"ProcessingJob": {"Arn": ...}}`)."""

    async def start(
        self, step_type: str, name: str, arguments: dict[str, Any], folder: Path
    ) -> None: ...

    async def wait(self, step_type: str, name: str) -> Outcome: ...

    async def stop(self, step_type: str, name: str) -> None: ...

    def exists(self, step_type: str, name: str) -> bool: ...

    def read_json(self, uri: str) -> Any: ...

    def digest(self, uri: str) -> str: ...

    def model(self, name: str) -> str:
        """What the model `name` is, as a digest (for cache keys)."""


class PipelineService:
    def __init__(
        self,
        repo: PipelineRepository,
        settings: Settings,
        pipeline_arn: Any,
        gateways: Gateways,
    ) -> None:
        self.repo = repo
        self.settings = settings
        self.pipeline_arn = pipeline_arn
        """name -> the pipeline's ARN."""
        self.actions: StepActions | None = None
        """Set once the SageMaker operations exist (they run the steps)."""
        self.gateways = gateways
        self.runner = gateways.me
        self.runs: dict[str, asyncio.Task[None]] = {}
        self.stop_asked: dict[str, asyncio.Event] = {}
        """Executions asked to stop here: the event their run waits on."""

    # -- pipelines

    def create(
        self,
        name: str,
        definition: str,
        role_arn: str,
        display_name: str | None = None,
        description: str | None = None,
        parallelism: int | None = None,
    ) -> Pipeline:
        parse(definition)
        now = utcnow()
        return self.repo.add(
            Pipeline(name, definition, role_arn, now, now, display_name, description, parallelism)
        )

    def update(self, name: str, definition: str | None = None, **changes: Any) -> Pipeline:
        if definition is not None:
            parse(definition)
        return self.repo.update(name, definition=definition, **changes)

    def get(self, name: str) -> Pipeline:
        return self.repo.get(name)

    def list(self) -> builtins.list[Pipeline]:
        return self.repo.list_all()

    def delete(self, name: str) -> Pipeline:
        return self.repo.remove(name)

    # -- executions

    def start(
        self,
        name: str,
        parameters: dict[str, str],
        display_name: str | None = None,
        description: str | None = None,
        parallelism: int | None = None,
        selected: builtins.list[str] | None = None,
        source: PipelineExecution | None = None,
    ) -> PipelineExecution:
        """Start an execution; with `selected`, a selective one: only those steps run, and
        the steps they wait for take their results from `source`."""
        pipeline = self.repo.get(name)
        definition = parse(pipeline.definition)
        values = definition.parameter_values(parameters)
        reused = self._reused(pipeline.name, definition, selected, source)
        execution = self.repo.add_execution(
            PipelineExecution(
                _execution_id(),
                pipeline.name,
                PipelineExecutionStatus.EXECUTING,
                pipeline.definition,
                values,
                utcnow(),
                utcnow(),
                display_name,
                description,
                parallelism=parallelism or pipeline.parallelism,
                selected_steps=tuple(selected) if selected is not None else None,
                source_execution=source.id if source is not None else None,
            )
        )
        for step in reused:
            self.repo.put_step(
                replace(
                    step,
                    execution_id=execution.id,
                    cache_key=None,
                    cached_from=None,
                    reused_from=step.execution_id,
                )
            )
        self.repo.ran(pipeline.name, execution.created_at)
        self._launch(execution)
        return execution

    def _reused(
        self,
        pipeline: str,
        definition: Definition,
        selected: builtins.list[str] | None,
        source: PipelineExecution | None,
    ) -> builtins.list[ExecutionStep]:
        """The source's runs of the steps a selection needs (none without a selection)."""
        where = "SelectiveExecutionConfig.SourcePipelineExecutionArn"
        if selected is None:
            return []
        needed = definition.selection(selected)
        if source is None:
            if needed:
                raise ValidationError(
                    f"the selected steps need the results of {sorted(needed)[0]!r}: name "
                    "the execution to take them from",
                    field=where,
                )
            return []
        if source.pipeline.lower() != pipeline.lower():
            raise ValidationError(
                f"execution {source.id} belongs to pipeline {source.pipeline!r}", field=where
            )
        if source.status not in (
            PipelineExecutionStatus.SUCCEEDED,
            PipelineExecutionStatus.FAILED,
        ):
            raise ValidationError(
                f"execution {source.id} is {source.status.value}: a source execution must "
                "have Succeeded or Failed",
                field=where,
            )
        runs = {step.name: step for step in self.repo.steps(source.id)}
        missing = sorted(
            n for n in needed if n not in runs or runs[n].status is not StepStatus.SUCCEEDED
        )
        if missing:
            raise ValidationError(
                f"step {missing[0]!r} did not succeed in execution {source.id}: its results "
                "are not there to take",
                field=where,
            )
        return [runs[name] for name in sorted(needed)]

    def execution(self, execution_id: str) -> PipelineExecution:
        return self.repo.execution(execution_id)

    def executions(self, name: str) -> builtins.list[PipelineExecution]:
        self.repo.get(name)
        return self.repo.executions(name)

    def steps(self, execution_id: str) -> builtins.list[ExecutionStep]:
        self.repo.execution(execution_id)
        return self.repo.steps(execution_id)

    async def stop(self, execution_id: str) -> PipelineExecution:
        execution = self.repo.execution(execution_id)
        if execution.status.finished:
            raise InvalidState(
                f"pipeline execution {execution_id} has ended ({execution.status.value})"
            )
        self.asked_to_stop(execution_id).set()
        execution = self.repo.set_execution(execution_id, PipelineExecutionStatus.STOPPING)
        if execution_id not in self.runs:  # nobody runs it here: end it from here
            self._launch_stop(execution)
        return execution

    def retry(self, execution_id: str, parallelism: int | None = None) -> PipelineExecution:
        execution = self.repo.execution(execution_id)
        if execution.status not in (
            PipelineExecutionStatus.FAILED,
            PipelineExecutionStatus.STOPPED,
        ):
            raise InvalidState(
                f"only a failed or stopped execution can be retried; {execution_id} is "
                f"{execution.status.value}"
            )
        execution = self.repo.set_execution(
            execution_id, PipelineExecutionStatus.EXECUTING, None, parallelism
        )
        self._launch(execution)
        return execution

    def why_missed(self, execution_id: str, step: str) -> builtins.list[str]:
        """Why `step` of an execution did not hit the cache: what changed since the latest
        run of it in another execution."""
        execution = self.repo.execution(execution_id)
        current = next((s for s in self.repo.steps(execution_id) if s.name == step), None)
        if current is None:
            raise ValidationError(f"step {step!r} did not run in {execution_id}", field="step")
        if current.cached_from:
            return [f"it hit: the run of execution {current.cached_from} was reused"]
        parts = current.metadata.get("CacheKeyParts")
        if parts is None:
            return ["caching is off for this step (CacheConfig.Enabled)"]
        before = self.repo.last_run(execution.pipeline, step, execution_id)
        if before is None or "CacheKeyParts" not in before.metadata:
            return ["no earlier run of this step had caching on"]
        lines = caching.explain(parts, before.metadata["CacheKeyParts"])
        if not lines:
            return [
                f"nothing changed since execution {before.execution_id}, but its run had "
                "not succeeded or had expired"
            ]
        return [f"since execution {before.execution_id}: {line}" for line in lines]

    def execution_folder(self, execution: PipelineExecution) -> Path:
        """<home>/pipelines/<pipeline>/<execution>: one folder per step under it."""
        return self.settings.pipelines_dir / execution.pipeline.lower() / execution.id

    def folder(self, execution: PipelineExecution, step: str) -> Path:
        """The step's folder in its execution's (names checked when the pipeline was
        created: no separators, no dots)."""
        root = self.settings.pipelines_dir
        folder = self.execution_folder(execution) / step
        if root.resolve() not in folder.resolve().parents:
            raise ValidationError(f"step {step!r} has no folder of its own", field="StepName")
        return folder

    def recover(self) -> None:
        """Carry on with the executions a stopped server left."""
        for execution in self.repo.unfinished_executions():
            if execution.id in self.runs:
                continue  # running here
            if execution.runner and not self.gateways.is_gone(execution.runner):
                continue  # a live gateway runs it
            if execution.status is PipelineExecutionStatus.STOPPING:
                self.asked_to_stop(execution.id).set()
            log.info("pipeline execution %s: resumed", execution.id)
            self._launch(execution)

    def asked_to_stop(self, execution_id: str) -> asyncio.Event:
        """Set once the execution is asked to stop."""
        return self.stop_asked.setdefault(execution_id, asyncio.Event())

    async def close(self) -> None:
        for task in list(self.runs.values()):
            task.cancel()
        await asyncio.gather(*self.runs.values(), return_exceptions=True)

    def _launch_stop(self, execution: PipelineExecution) -> None:
        task = asyncio.get_running_loop().create_task(
            _Run(self, execution).stop_all(), name=f"stop pipeline execution {execution.id}"
        )
        self.runs[execution.id] = task
        task.add_done_callback(lambda _: self.runs.pop(execution.id, None))

    def _launch(self, execution: PipelineExecution) -> None:
        self.repo.claim(execution.id, self.runner)
        task = asyncio.get_running_loop().create_task(
            _Run(self, execution).go(), name=f"pipeline execution {execution.id}"
        )
        self.runs[execution.id] = task
        task.add_done_callback(lambda _: self.runs.pop(execution.id, None))


class _Run:
    """One server's run of one execution, from the steps it has recorded to its end."""

    def __init__(self, service: PipelineService, execution: PipelineExecution) -> None:
        self.s = service
        self.execution = execution
        self.definition: Definition = parse(execution.definition)
        self.state: dict[str, ExecutionStep] = {
            step.name: step for step in service.repo.steps(execution.id)
        }
        self.arn = f"{service.pipeline_arn(execution.pipeline)}/execution/{execution.id}"
        self.selected = (
            set(execution.selected_steps) if execution.selected_steps is not None else None
        )
        """A selective execution's steps: no other runs."""
        self._retried: dict[str, int] = {}
        """Attempts so far of the steps a retry runs again."""

    @property
    def actions(self) -> StepActions:
        if self.s.actions is None:
            raise RuntimeError("pipeline steps have no runner")
        return self.s.actions

    async def go(self) -> None:
        try:
            await self._go()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - an execution fails; the server goes on
            log.exception("pipeline execution %s", self.execution.id)
            self.s.repo.set_execution(
                self.execution.id,
                PipelineExecutionStatus.FAILED,
                f"internal failure: {type(exc).__name__}: {exc}",
            )
        finally:
            self.s.stop_asked.pop(self.execution.id, None)

    async def _go(self) -> None:
        self._forget_unfinished_ends()
        running: dict[str, asyncio.Task[ExecutionStep]] = {}
        limit = self.execution.parallelism or DEFAULT_PARALLELISM
        stop_asked = self.s.asked_to_stop(self.execution.id)
        try:
            while True:
                if stop_asked.is_set():
                    await self._stop(running)
                    return
                ready = [] if self._failed() else self._ready(set(running))
                for name in ready[: max(0, limit - len(running))]:
                    running[name] = asyncio.create_task(self._step(self.definition.steps[name]))
                if not running:
                    break
                stop_watch = asyncio.create_task(stop_asked.wait())
                done, _ = await asyncio.wait(
                    [*running.values(), stop_watch], return_when=asyncio.FIRST_COMPLETED
                )
                stop_watch.cancel()
                for name, task in list(running.items()):
                    if task in done:
                        self.state[name] = task.result()
                        del running[name]
        finally:
            for task in running.values():
                task.cancel()
        failed = [s for s in self.state.values() if s.status is StepStatus.FAILED]
        if failed:
            first = min(failed, key=lambda s: s.ended_at or s.updated_at)
            reason = (
                f"Step failure: One or multiple steps failed ({first.name}: {first.failure_reason})"
            )
            if first.type == "Fail":
                reason = first.failure_reason or "a Fail step ended the execution"
            self.s.repo.set_execution(self.execution.id, PipelineExecutionStatus.FAILED, reason)
        else:
            self.s.repo.set_execution(self.execution.id, PipelineExecutionStatus.SUCCEEDED, None)

    def _forget_unfinished_ends(self) -> None:
        """On a retry: failed and stopped steps run again (counting their attempts)."""
        for name, step in list(self.state.items()):
            if step.status in (StepStatus.FAILED, StepStatus.STOPPED):
                del self.state[name]
                self._retried[name] = step.attempts
        # (a step Executing when a server stopped is picked up again in _step)

    def _failed(self) -> bool:
        return any(s.status is StepStatus.FAILED for s in self.state.values())

    def _skipped(self) -> set[str]:
        """Steps that will not run: in a branch the condition did not choose, or waiting
        for such a step."""
        skipped: set[str] = set()
        changed = True
        while changed:
            changed = False
            for name, step in self.definition.steps.items():
                if name in skipped or name in self.state:
                    continue  # settled, or running: it is not skipped
                out = self.selected is not None and name not in self.selected
                if step.condition is not None:
                    condition = self.state.get(step.condition)
                    if condition is not None and condition.status is StepStatus.SUCCEEDED:
                        outcome = condition.metadata.get("Condition", {}).get("Outcome") == "True"
                        out = out or name not in self.definition.branch_of(step.condition, outcome)
                if out or step.depends_on & skipped:
                    skipped.add(name)
                    changed = True
        return skipped

    def _ready(self, running: set[str]) -> list[str]:
        skipped = self._skipped()
        ready = []
        for name, step in self.definition.steps.items():
            current = self.state.get(name)
            if name in running or name in skipped:
                continue
            if current is not None and current.status.finished:
                continue
            if all(
                (before := self.state.get(dep)) is not None
                and before.status is StepStatus.SUCCEEDED
                for dep in step.depends_on
            ):
                ready.append(name)
        return ready

    # -- one step

    async def _step(self, step: Step) -> ExecutionStep:
        previous = self.state.get(step.name)
        record = previous or ExecutionStep(
            self.execution.id,
            step.name,
            step.type,
            StepStatus.STARTING,
            utcnow(),
            utcnow(),
            attempts=self._retried.get(step.name, 0) + 1,
            display_name=step.display_name,
            description=step.description,
        )
        record = self.s.repo.put_step(record)
        try:
            context = self._context()
            if step.type == "Condition":
                return self._condition(step, record, context)
            if step.type == "Fail":
                message = expressions.resolve(step.arguments.get("ErrorMessage", ""), context)
                return self._end(
                    record,
                    StepStatus.FAILED,
                    str(message) or "the pipeline reached a Fail step",
                    metadata={"Fail": {"ErrorMessage": str(message)}},
                )
            return await self._job(step, record, context)
        except asyncio.CancelledError:
            raise
        except SluiceError as exc:
            return self._end(record, StepStatus.FAILED, exc.message)

    def _condition(
        self, step: Step, record: ExecutionStep, context: expressions.Context
    ) -> ExecutionStep:
        outcome = all(expressions.holds(c, context) for c in step.arguments.get("Conditions", []))
        text = "True" if outcome else "False"
        return self._end(
            record,
            StepStatus.SUCCEEDED,
            None,
            metadata={"Condition": {"Outcome": text}},
            properties={"Outcome": text},
        )

    async def _job(
        self, step: Step, record: ExecutionStep, context: expressions.Context
    ) -> ExecutionStep:
        arguments = expressions.resolve(
            {k: v for k, v in step.arguments.items() if k not in ("IfSteps", "ElseSteps")},
            context,
        )
        folder = self.s.folder(self.execution, step.name)
        name = record.metadata.get("ResourceName")
        if name is None or not self.actions.exists(step.type, name):
            if step.cache_enabled and name is None:
                hit = await self._cached(step, record, arguments)
                if hit is not None:
                    return hit
                record = self._current(record)  # with its cache key
            name = name or _resource_name(self.execution.id, step.name)
            record = self._running(record, step, name, status=StepStatus.EXECUTING)
            folder.mkdir(parents=True, exist_ok=True)
            _write_step_file(folder, arguments, record)
            await self.actions.start(step.type, name, arguments, folder)
        outcome = await self._wait_with_retries(step, record, name, arguments, folder)
        return self._end(
            record,
            outcome.status,
            outcome.reason,
            metadata=outcome.metadata,
            properties=outcome.properties,
        )

    def _running(
        self, record: ExecutionStep, step: Step, name: str, **changes: Any
    ) -> ExecutionStep:
        """The step recorded as running the job (or model) `name`."""
        metadata = {**record.metadata, **self.actions.metadata(step.type, name)}
        return self.s.repo.put_step(
            replace(record, metadata={**metadata, "ResourceName": name}, **changes)
        )

    def _current(self, record: ExecutionStep) -> ExecutionStep:
        """The step as last recorded."""
        return self.s.repo.step(self.execution.id, record.name) or record

    async def _wait_with_retries(
        self,
        step: Step,
        record: ExecutionStep,
        name: str,
        arguments: dict[str, Any],
        folder: Path,
    ) -> Outcome:
        """The job's outcome; a job that failed for a fault of ours is started again as
        the step's RetryPolicies allow."""
        attempt, first = 1, time.monotonic()
        while True:
            outcome = await self.actions.wait(step.type, name)
            delay = retry_delay(step, outcome, attempt, time.monotonic() - first)
            if delay is None:
                return outcome
            attempt += 1
            log.info("step %s: retry %d in %.1f s", step.name, attempt, delay)
            await asyncio.sleep(delay)
            name = _resource_name(self.execution.id, step.name)
            record = self._running(record, step, name, attempts=record.attempts + 1)
            await self.actions.start(step.type, name, arguments, folder)

    async def _cached(
        self, step: Step, record: ExecutionStep, arguments: dict[str, Any]
    ) -> ExecutionStep | None:
        try:
            models = (
                {arguments["ModelName"]: self.actions.model(arguments["ModelName"])}
                if step.type == "Transform" and "ModelName" in arguments
                else None
            )
            key, parts = await asyncio.to_thread(
                caching.key, step.type, arguments, self.execution.id, self.actions.digest, models
            )
        except (SluiceError, OSError) as exc:
            log.info("step %s: no cache key (%s)", step.name, exc)
            return None
        expiry = caching.expire_after_s(step.cache_expire_after)
        since = utcnow() - timedelta(seconds=expiry) if expiry is not None else None
        source = self.s.repo.cached(self.execution.pipeline, step.name, key, since)
        metadata = {**record.metadata, "CacheKeyParts": parts}
        if source is None:
            self.s.repo.put_step(replace(record, cache_key=key, metadata=metadata))
            return None
        kept = {k: v for k, v in source.metadata.items() if k not in ("CacheKeyParts",)}
        hit = replace(
            record,
            cache_key=key,
            cached_from=source.execution_id,
            metadata={**kept, "CacheKeyParts": parts},
        )
        log.info("step %s: cache hit (execution %s)", step.name, source.execution_id)
        return self._end(hit, StepStatus.SUCCEEDED, None, properties=source.properties)

    def _end(
        self,
        record: ExecutionStep,
        status: StepStatus,
        reason: str | None,
        metadata: dict[str, Any] | None = None,
        properties: dict[str, Any] | None = None,
    ) -> ExecutionStep:
        current = self._current(record)
        ended = replace(
            current,
            status=status,
            failure_reason=reason,
            metadata={**record.metadata, **current.metadata, **(metadata or {})},
            properties=properties if properties is not None else current.properties,
            ended_at=utcnow(),
            cache_key=record.cache_key or current.cache_key,
            cached_from=record.cached_from,
        )
        ended = self.s.repo.put_step(ended)
        folder = self.s.folder(self.execution, record.name)
        with contextlib.suppress(OSError):
            folder.mkdir(parents=True, exist_ok=True)
            _write_step_file(folder, None, ended)
        return ended

    # -- evaluation

    def _context(self) -> expressions.Context:
        started = self.execution.created_at
        return expressions.Context(
            parameters=self.execution.parameters,
            execution={
                "PipelineExecutionId": self.execution.id,
                "PipelineExecutionArn": self.arn,
                "PipelineName": self.execution.pipeline,
                "PipelineArn": self.s.pipeline_arn(self.execution.pipeline),
                "StartDateTime": started.astimezone(UTC).isoformat(),
                "CurrentDateTime": datetime.now(UTC).isoformat(),
            },
            properties={
                name: step.properties
                for name, step in self.state.items()
                if step.status is StepStatus.SUCCEEDED
            },
            read_property_file=self._property_file,
            read_json=self.actions.read_json,
        )

    def _property_file(self, step_name: str, file_name: str) -> Any:
        step = self.definition.steps[step_name]
        spec = next(
            (f for f in step.property_files if f.get("PropertyFileName") == file_name), None
        )
        if spec is None:
            raise ValidationError(
                f"step {step_name!r} has no property file {file_name!r}",
                field="PipelineDefinition",
            )
        outputs = self.state[step_name].properties.get("ProcessingOutputConfig", {})
        output = next(
            (o for o in outputs.get("Outputs", []) if o.get("OutputName") == spec["OutputName"]),
            None,
        )
        if output is None:
            raise ValidationError(
                f"property file {file_name!r}: step {step_name!r} has no output "
                f"{spec['OutputName']!r}",
                field="PipelineDefinition",
            )
        uri = f"{output['S3Output']['S3Uri'].rstrip('/')}/{spec['FilePath']}"
        return self.actions.read_json(uri)

    # -- stopping

    async def _stop(self, running: dict[str, asyncio.Task[ExecutionStep]]) -> None:
        for task in running.values():
            task.cancel()  # the steps stop waiting; stop_all ends them
        await asyncio.gather(*running.values(), return_exceptions=True)
        await self.stop_all()

    async def stop_all(self) -> None:
        """Stop every step still running (Stopping until its job has ended), then the
        execution."""
        stopping = []
        for step in self.s.repo.steps(self.execution.id):
            if step.status.finished:
                continue
            name = step.metadata.get("ResourceName")
            if name and self.actions.exists(step.type, name):
                with contextlib.suppress(SluiceError):
                    await self.actions.stop(step.type, name)
                self.s.repo.put_step(replace(step, status=StepStatus.STOPPING))
                stopping.append(self._stopped(step, name))
            else:
                self._end(step, StepStatus.STOPPED, "the execution was stopped")
        await asyncio.gather(*stopping)
        self.s.stop_asked.pop(self.execution.id, None)
        self.s.repo.set_execution(self.execution.id, PipelineExecutionStatus.STOPPED)

    async def _stopped(self, step: ExecutionStep, name: str) -> None:
        outcome = await self.actions.wait(step.type, name)
        status = (
            StepStatus.SUCCEEDED if outcome.status is StepStatus.SUCCEEDED else StepStatus.STOPPED
        )
        reason = None if status is StepStatus.SUCCEEDED else "the execution was stopped"
        self._end(step, status, reason, metadata=outcome.metadata, properties=outcome.properties)


def retry_delay(step: Step, outcome: Outcome, attempt: int, elapsed_s: float) -> float | None:
    """Seconds until the next attempt when a policy covers this failure, else None.
    `attempt`: the attempt that failed (1 for the first); `elapsed_s`: since it started.
    A policy allows MaxAttempts attempts (5 when it has neither limit) and, with
    ExpireAfterMin, only attempts that start within that many minutes of the first."""
    if outcome.status is not StepStatus.FAILED or not (outcome.reason or "").startswith(
        "InternalServerError"
    ):
        return None
    for policy in step.retry_policies:
        if not set(policy.get("ExceptionType", [])) & set(INTERNAL_ERRORS):
            continue
        expire_after_s = (
            60 * float(policy["ExpireAfterMin"]) if "ExpireAfterMin" in policy else None
        )
        max_attempts = policy.get("MaxAttempts", 5 if expire_after_s is None else None)
        if max_attempts is not None and attempt >= int(max_attempts):
            return None
        interval = float(policy.get("IntervalSeconds", 1))
        delay = interval * float(policy.get("BackoffRate", 2.0)) ** (attempt - 1)
        if expire_after_s is not None and elapsed_s + delay > expire_after_s:
            return None
        return delay
    return None


def _execution_id() -> str:
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(12))


def _resource_name(execution_id: str, step: str) -> str:
    """A job or model name as SageMaker makes them, pipelines-<execution>-<step>-<random>,
    in lower case (the name in its ARN, so the ARN names it exactly)."""
    clean = "".join(c if c.isalnum() else "-" for c in step.lower()).strip("-") or "step"
    suffix = secrets.token_hex(5)
    head = f"pipelines-{execution_id}-{clean}"[: 63 - len(suffix) - 1].rstrip("-")
    return f"{head}-{suffix}"


def _write_step_file(folder: Path, arguments: dict[str, Any] | None, step: ExecutionStep) -> None:
    path = folder / "step.json"
    record: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    if arguments is not None:
        record["Arguments"] = arguments
    record.update(
        {
            "StepName": step.name,
            "StepType": step.type,
            "StepStatus": step.status.value,
            "FailureReason": step.failure_reason,
            "Metadata": step.metadata,
            "Properties": step.properties,
            "CacheHitFrom": step.cached_from,
        }
    )
    path.write_text(json.dumps(record, indent=1, default=str))
