"""Pipelines, their executions and the executions' steps. Every method is one
transaction; pipeline names match regardless of case."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from sluice import entities as e
from sluice.errors import AlreadyExists, InvalidState, NotFound
from sluice.store.db import Database
from sluice.store.tables import ExecutionStepRow, PipelineExecutionRow, PipelineRow, utcnow

_UNSET: Any = object()
_OF_EXECUTION = PipelineExecutionRow.id == ExecutionStepRow.execution_id


class PipelineRepository:
    def __init__(self, database: Database) -> None:
        self.db = database

    # -- pipelines

    def add(self, pipeline: e.Pipeline) -> e.Pipeline:
        now = utcnow()
        row = PipelineRow(
            name=pipeline.name,
            definition=pipeline.definition,
            role_arn=pipeline.role_arn,
            display_name=pipeline.display_name,
            description=pipeline.description,
            parallelism=pipeline.parallelism,
            version=1,
            created_at=now,
            updated_at=now,
        )
        try:
            with self.db.session() as session:
                if _pipeline(session, pipeline.name) is not None:
                    raise IntegrityError("", None, Exception("exists"))
                session.add(row)
                session.flush()
                return row.to_entity()
        except IntegrityError as exc:
            raise AlreadyExists(
                f"pipeline {pipeline.name!r} already exists", field="PipelineName"
            ) from exc

    def get(self, name: str) -> e.Pipeline:
        with self.db.session() as session:
            return _existing(session, name).to_entity()

    def list_all(self) -> list[e.Pipeline]:
        with self.db.session() as session:
            return [r.to_entity() for r in session.scalars(select(PipelineRow))]

    def update(self, name: str, **changes: Any) -> e.Pipeline:
        """Change a pipeline's definition, role, names or parallelism; a new definition
        makes a new version."""
        with self.db.session() as session:
            row = _existing(session, name)
            for member, value in changes.items():
                if value is not None:
                    setattr(row, member, value)
            if changes.get("definition") is not None:
                row.version += 1
            row.updated_at = utcnow()
            session.flush()
            return row.to_entity()

    def ran(self, name: str, when: datetime) -> None:
        with self.db.session() as session:
            _existing(session, name).last_run_at = when

    def remove(self, name: str) -> e.Pipeline:
        """Delete a pipeline with its executions (none may be running)."""
        with self.db.session() as session:
            row = _existing(session, name)
            running = session.scalars(
                select(PipelineExecutionRow).where(
                    func.lower(PipelineExecutionRow.pipeline) == name.lower(),
                    PipelineExecutionRow.status.in_(
                        (e.PipelineExecutionStatus.EXECUTING, e.PipelineExecutionStatus.STOPPING)
                    ),
                )
            ).first()
            if running is not None:
                raise InvalidState(
                    f"pipeline {name!r} has an execution running ({running.id}): stop it first"
                )
            ids = select(PipelineExecutionRow.id).where(
                func.lower(PipelineExecutionRow.pipeline) == name.lower()
            )
            session.execute(delete(ExecutionStepRow).where(ExecutionStepRow.execution_id.in_(ids)))
            session.execute(
                delete(PipelineExecutionRow).where(
                    func.lower(PipelineExecutionRow.pipeline) == name.lower()
                )
            )
            pipeline = row.to_entity()
            session.delete(row)
            return pipeline

    # -- executions

    def add_execution(self, execution: e.PipelineExecution) -> e.PipelineExecution:
        now = utcnow()
        row = PipelineExecutionRow(
            id=execution.id,
            pipeline=execution.pipeline,
            status=execution.status.value,
            definition=execution.definition,
            parameters=execution.parameters,
            display_name=execution.display_name,
            description=execution.description,
            parallelism=execution.parallelism,
            selected_steps=(
                list(execution.selected_steps) if execution.selected_steps is not None else None
            ),
            source_execution=execution.source_execution,
            created_at=now,
            updated_at=now,
        )
        with self.db.session() as session:
            session.add(row)
            session.flush()
            return row.to_entity()

    def execution(self, execution_id: str) -> e.PipelineExecution:
        with self.db.session() as session:
            return _execution(session, execution_id).to_entity()

    def executions(self, pipeline: str) -> list[e.PipelineExecution]:
        with self.db.session() as session:
            query = select(PipelineExecutionRow).where(
                func.lower(PipelineExecutionRow.pipeline) == pipeline.lower()
            )
            return [r.to_entity() for r in session.scalars(query)]

    def unfinished_executions(self) -> list[e.PipelineExecution]:
        with self.db.session() as session:
            query = select(PipelineExecutionRow).where(
                PipelineExecutionRow.status.in_(
                    (e.PipelineExecutionStatus.EXECUTING, e.PipelineExecutionStatus.STOPPING)
                )
            )
            return [r.to_entity() for r in session.scalars(query)]

    def set_execution(
        self,
        execution_id: str,
        status: e.PipelineExecutionStatus,
        reason: str | None = _UNSET,
        parallelism: int | None = None,
    ) -> e.PipelineExecution:
        with self.db.session() as session:
            row = _execution(session, execution_id)
            now = utcnow()
            row.status = status.value
            row.updated_at = now
            row.ended_at = now if status.finished else None
            if reason is not _UNSET:
                row.failure_reason = reason
            if parallelism is not None:
                row.parallelism = parallelism
            session.flush()
            return row.to_entity()

    def claim(self, execution_id: str, runner: str) -> None:
        with self.db.session() as session:
            _execution(session, execution_id).runner = runner

    # -- steps

    def steps(self, execution_id: str) -> list[e.ExecutionStep]:
        with self.db.session() as session:
            query = select(ExecutionStepRow).where(ExecutionStepRow.execution_id == execution_id)
            return [r.to_entity() for r in session.scalars(query)]

    def step(self, execution_id: str, name: str) -> e.ExecutionStep | None:
        with self.db.session() as session:
            row = session.get(ExecutionStepRow, (execution_id, name))
            return row.to_entity() if row else None

    def put_step(self, step: e.ExecutionStep) -> e.ExecutionStep:
        """Record a step's state (inserted on its first start, replaced after)."""
        with self.db.session() as session:
            row = session.get(ExecutionStepRow, (step.execution_id, step.name))
            if row is None:
                row = ExecutionStepRow(execution_id=step.execution_id, name=step.name)
                session.add(row)
            row.type = step.type
            row.status = step.status.value
            row.attempts = step.attempts
            row.failure_reason = step.failure_reason
            row.step_metadata = step.metadata
            row.properties = step.properties
            row.cache_key = step.cache_key
            row.cached_from = step.cached_from
            row.reused_from = step.reused_from
            row.display_name = step.display_name
            row.description = step.description
            row.started_at = step.started_at
            row.updated_at = utcnow()
            row.ended_at = step.ended_at
            session.flush()
            return row.to_entity()

    def cached(
        self, pipeline: str, step: str, key: str, since: datetime | None
    ) -> e.ExecutionStep | None:
        """The latest successful run of `step` in `pipeline` with cache key `key`, ended
        after `since`, that was itself not a cache hit."""
        with self.db.session() as session:
            query = (
                select(ExecutionStepRow)
                .join(
                    PipelineExecutionRow, PipelineExecutionRow.id == ExecutionStepRow.execution_id
                )
                .where(
                    func.lower(PipelineExecutionRow.pipeline) == pipeline.lower(),
                    ExecutionStepRow.name == step,
                    ExecutionStepRow.cache_key == key,
                    ExecutionStepRow.status == e.StepStatus.SUCCEEDED.value,
                    ExecutionStepRow.cached_from.is_(None),
                )
                .order_by(ExecutionStepRow.ended_at.desc())
            )
            if since is not None:
                query = query.where(ExecutionStepRow.ended_at >= since)
            row = session.scalars(query).first()
            return row.to_entity() if row else None

    def last_run(self, pipeline: str, step: str, before: str) -> e.ExecutionStep | None:
        """The latest run of `step` in another execution of `pipeline` than `before`."""
        with self.db.session() as session:
            query = (
                select(ExecutionStepRow)
                .join(
                    PipelineExecutionRow, PipelineExecutionRow.id == ExecutionStepRow.execution_id
                )
                .where(
                    func.lower(PipelineExecutionRow.pipeline) == pipeline.lower(),
                    ExecutionStepRow.name == step,
                    ExecutionStepRow.execution_id != before,
                )
                .order_by(ExecutionStepRow.started_at.desc())
            )
            row = session.scalars(query).first()
            return row.to_entity() if row else None


def _pipeline(session: Session, name: str) -> PipelineRow | None:
    return session.scalars(
        select(PipelineRow).where(func.lower(PipelineRow.name) == name.lower())
    ).first()


def _existing(session: Session, name: str) -> PipelineRow:
    row = _pipeline(session, name)
    if row is None:
        raise NotFound(f"pipeline {name!r} does not exist", field="PipelineName")
    return row


def _execution(session: Session, execution_id: str) -> PipelineExecutionRow:
    row = session.get(PipelineExecutionRow, execution_id)
    if row is None:
        raise NotFound(
            f"pipeline execution {execution_id!r} does not exist", field="PipelineExecutionArn"
        )
    return row
