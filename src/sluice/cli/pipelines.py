"""`sluice pipeline`: SageMaker pipelines: create, start, follow, stop, retry, why-miss,
and `run`, which does it all in one go for CI (exit code, JUnit report)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from sluice.cli.common import client, parse_assignments, show_json, show_table

if TYPE_CHECKING:
    from sluice.api.pipeline_routes import PipelineExecutionOut
    from sluice.client import Client


@click.group()
def pipeline() -> None:
    """SageMaker pipelines run on this server's jobs."""


def _definition(path: Path) -> dict[str, object]:
    try:
        loaded = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"cannot read the definition {path}: {exc}") from exc
    if not isinstance(loaded, dict):
        raise click.ClickException(f"{path} does not hold a pipeline definition (an object)")
    return loaded


@pipeline.command("create")
@click.argument("name")
@click.option("--definition", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="The definition's JSON (the SDK's pipeline.definition()).")  # fmt: skip
@click.option("--description")
@click.pass_context
def create(ctx: click.Context, name: str, definition: Path, description: str | None) -> None:
    """Create a pipeline from its definition."""
    with client(ctx) as c:
        show_json(c.create_pipeline(name, _definition(definition), description=description))


@pipeline.command("list")
@click.pass_context
def list_(ctx: click.Context) -> None:
    """List pipelines."""
    with client(ctx) as c:
        rows = [
            (
                p.name,
                str(len(p.steps)),
                p.last_run_at.isoformat(timespec="seconds") if p.last_run_at else "",
            )
            for p in c.list_pipelines()
        ]
    show_table("pipelines", ("name", "steps", "last run"), rows)


@pipeline.command("start")
@click.argument("name")
@click.option("-p", "--parameter", "parameters", multiple=True, metavar="NAME=VALUE")
@click.option("--step", "steps", multiple=True, help="Run only this step (repeatable).")
@click.option(
    "--from", "source", metavar="EXECUTION", help="Take the other steps' results from it."
)
@click.option("--wait", is_flag=True, help="Follow the execution until it ends.")
@click.pass_context
def start(
    ctx: click.Context,
    name: str,
    parameters: tuple[str, ...],
    steps: tuple[str, ...],
    source: str | None,
    wait: bool,
) -> None:
    """Start an execution (with --step, a selective one)."""
    with client(ctx) as c:
        execution = c.start_pipeline(
            name, parse_assignments(parameters, "--parameter"), list(steps) or None, source
        )
        if not wait:
            show_json(execution)
            return
        _finish(c, execution.id)


@pipeline.command("executions")
@click.argument("name")
@click.pass_context
def executions(ctx: click.Context, name: str) -> None:
    """A pipeline's executions, oldest first."""
    with client(ctx) as c:
        rows = [
            (
                x.id,
                x.status.value,
                x.created_at.isoformat(timespec="seconds"),
                x.failure_reason or "",
            )
            for x in c.list_executions(name)
        ]
    show_table(f"executions of {name}", ("execution", "status", "started", "failure"), rows)


@pipeline.command("describe")
@click.argument("execution")
@click.pass_context
def describe(ctx: click.Context, execution: str) -> None:
    """An execution's steps: status, attempts, cache hits, jobs."""
    with client(ctx) as c:
        _show_steps(c.describe_execution(execution))


@pipeline.command("stop")
@click.argument("execution")
@click.pass_context
def stop(ctx: click.Context, execution: str) -> None:
    """Stop an execution and the jobs it runs."""
    with client(ctx) as c:
        _show_steps(c.stop_execution(execution))


@pipeline.command("retry")
@click.argument("execution")
@click.option("--wait", is_flag=True, help="Follow the execution until it ends.")
@click.pass_context
def retry(ctx: click.Context, execution: str, wait: bool) -> None:
    """Run a failed or stopped execution's unfinished steps again, keeping the rest."""
    with client(ctx) as c:
        retried = c.retry_execution(execution)
        if wait:
            _finish(c, retried.id)
        else:
            _show_steps(retried)


@pipeline.command("why-miss")
@click.argument("execution")
@click.argument("step")
@click.pass_context
def why_miss(ctx: click.Context, execution: str, step: str) -> None:
    """Why a step ran rather than coming from the cache: what changed since its last run."""
    with client(ctx) as c:
        for reason in c.why_missed(execution, step):
            click.echo(reason)


@pipeline.command("run")
@click.option("--definition", type=click.Path(path_type=Path, dir_okay=False), required=True)
@click.option("--name", help="The pipeline's name (default: the definition file's stem).")
@click.option("-p", "--parameter", "parameters", multiple=True, metavar="NAME=VALUE")
@click.option("--junit", type=click.Path(path_type=Path, dir_okay=False),
              help="Write a JUnit XML report of the steps (for CI).")  # fmt: skip
@click.pass_context
def run(
    ctx: click.Context,
    definition: Path,
    name: str | None,
    parameters: tuple[str, ...],
    junit: Path | None,
) -> None:
    """Create or update a pipeline from its definition, run it once and wait: the exit code
    says whether it succeeded."""
    chosen = name or definition.stem
    document = _definition(definition)
    with client(ctx) as c:
        known = {p.name for p in c.list_pipelines()}
        if chosen not in known:
            c.create_pipeline(chosen, document)
        else:
            c.update_pipeline(chosen, document)
        execution = c.start_pipeline(chosen, parse_assignments(parameters, "--parameter"))
        ended = c.wait_for_execution(execution.id)
        _show_steps(ended)
        if junit is not None:
            junit.write_text(junit_report(chosen, ended))
    if ended.status.value != "Succeeded":
        raise SystemExit(1)


def _when(moment: datetime | None) -> str:
    return moment.isoformat(timespec="seconds") if moment else ""


def _finish(c: Client, execution_id: str) -> None:
    ended = c.wait_for_execution(execution_id)
    _show_steps(ended)
    if ended.status.value != "Succeeded":
        raise SystemExit(1)


def _show_steps(execution: PipelineExecutionOut) -> None:
    rows = [
        (
            s.name,
            s.type,
            s.status.value,
            str(s.attempts),
            f"hit ({s.cached_from})"
            if s.cached_from
            else f"taken from {s.reused_from}"
            if s.reused_from
            else "",
            s.outcome or s.job or "",
            f"{(s.ended_at - s.started_at).total_seconds():.1f}" if s.ended_at else "",
            s.failure_reason or "",
        )
        for s in execution.steps
    ]
    show_table(
        f"execution {execution.id} of {execution.pipeline}: {execution.status.value}",
        ("step", "type", "status", "attempts", "cache", "ran", "seconds", "failure"),
        rows,
    )
    if execution.failure_reason:
        click.echo(execution.failure_reason)
    click.echo(f"folder: {execution.folder}")


def junit_report(name: str, execution: PipelineExecutionOut) -> str:
    """The execution's steps as JUnit test cases: failed steps fail, stopped ones are
    skipped."""
    from xml.etree import ElementTree as ET

    failures = sum(1 for s in execution.steps if s.status.value == "Failed")
    skipped = sum(1 for s in execution.steps if s.status.value == "Stopped")
    suite = ET.Element(
        "testsuite",
        name=f"pipeline {name}",
        tests=str(len(execution.steps)),
        failures=str(failures),
        skipped=str(skipped),
    )
    for step in execution.steps:
        seconds = (step.ended_at - step.started_at).total_seconds() if step.ended_at else 0.0
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"{name}.{execution.id}",
            name=step.name,
            time=f"{seconds:.3f}",
        )
        if step.status.value == "Failed":
            ET.SubElement(case, "failure", message=step.failure_reason or "failed")
        elif step.status.value == "Stopped":
            ET.SubElement(case, "skipped", message="stopped")
    return ET.tostring(suite, encoding="unicode", xml_declaration=True)
