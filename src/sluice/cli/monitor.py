"""`sluice monitor`: baselines and data-quality checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from sluice.monitor.quality_rules import PROBLEM_TYPES

if TYPE_CHECKING:
    from rich.console import Console


@click.group()
def monitor() -> None:
    """Model monitoring: baselines and checks of captured data."""


@monitor.command("baseline")
@click.option(
    "--data",
    required=True,
    type=click.Path(dir_okay=False),
    help="Training data: CSV with a header, Parquet, or JSON Lines.",
)
@click.option(
    "--schema",
    type=click.Path(dir_okay=False, exists=True),
    help='JSON of column types: {"zip": "String", "age": "Integral", ...}.',
)
@click.option(
    "--out",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where statistics.json and constraints.json go.",
)
@click.option(
    "--problem-type",
    type=click.Choice(PROBLEM_TYPES),
    help="A model-quality baseline: --data holds labels and the model's predictions.",
)
@click.option("--label", help="Model quality: the ground-truth column.")
@click.option("--prediction", help="Model quality: the predicted-label (or value) column.")
@click.option("--probability", help="Model quality: the positive class's probability column.")
@click.option(
    "--threshold", type=float, help="Model quality: predict positive at this probability."
)
@click.option("--positive-label", default="1", show_default=True)
def baseline(
    data: str,
    schema: str | None,
    out: str,
    problem_type: str | None,
    label: str | None,
    prediction: str | None,
    probability: str | None,
    threshold: float | None,
    positive_label: str,
) -> None:
    """Statistics (as sketches) and suggested constraints from training data, in
    SageMaker Model Monitor's formats; with --problem-type, the model's metrics on a
    validation set and suggested metric thresholds."""
    from sluice.errors import ValidationError

    try:
        if problem_type is not None:
            from sluice.monitor import quality

            if label is None:
                raise ValidationError("a model-quality baseline needs --label", field="label")
            statistics, constraints = quality.baseline(
                Path(data), problem_type, label, prediction, probability, threshold,
                positive_label,
            )  # fmt: skip
        else:
            from sluice.monitor.baseline import baseline as compute

            types = json.loads(Path(schema).read_text()) if schema else None
            statistics, constraints = compute(Path(data), types)
    except ValidationError as e:
        raise click.ClickException(str(e)) from None
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "statistics.json").write_text(json.dumps(statistics, indent=1))
    (folder / "constraints.json").write_text(json.dumps(constraints, indent=1))
    rows = statistics["dataset"]["item_count"]
    what = f"{len(statistics['features'])} features" if "features" in statistics else problem_type
    click.echo(f"{rows} rows, {what}: {folder / 'statistics.json'}, "
               f"{folder / 'constraints.json'}")  # fmt: skip


@monitor.command("run-now")
@click.option(
    "--baseline",
    "baseline_dir",
    type=click.Path(file_okay=False, exists=True),
    help="Folder with statistics.json and constraints.json (model quality: constraints.json).",
)
@click.option(
    "--schedule",
    help="Instead: ask the server to run this monitoring schedule's check now.",
)
@click.option("--wait/--no-wait", default=True, help="With --schedule: wait for the result.")
@click.option(
    "--capture",
    "sources",
    multiple=True,
    type=click.Path(exists=True),
    help="Capture files, or folders of them (one variant's: <root>/<endpoint>/<variant>).",
)
@click.option("--start", help="Window start: ISO-8601 time, or a duration back from now (-PT1H).")
@click.option("--end", help="Window end (exclusive), as --start. Default: open.")
@click.option(
    "--out",
    default="monitoring-report",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where the execution's files go.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON.")
@click.option(
    "--problem-type",
    type=click.Choice(PROBLEM_TYPES),
    help="A model-quality check: join the captured predictions with --ground-truth.",
)
@click.option(
    "--ground-truth",
    type=click.Path(file_okay=False, exists=True),
    help="Model quality: the endpoint's ground-truth folder (<root>/<endpoint>).",
)
@click.option("--inference-attribute", help="Model quality: the output member (or CSV column).")
@click.option("--probability-attribute", help="Model quality: the probability member.")
@click.option("--threshold", type=float, help="Model quality: positive from this probability.")
@click.option("--positive-label", default="1", show_default=True)
@click.option(
    "--min-rows", default=100, show_default=True, help="Model quality: joined rows needed."
)
@click.pass_context
def run_now(
    ctx: click.Context,
    baseline_dir: str | None,
    schedule: str | None,
    wait: bool,
    sources: tuple[str, ...],
    start: str | None,
    end: str | None,
    out: str,
    as_json: bool,
    problem_type: str | None,
    ground_truth: str | None,
    inference_attribute: str | None,
    probability_attribute: str | None,
    threshold: float | None,
    positive_label: str,
    min_rows: int,
) -> None:
    """Check captured requests against a baseline: files or folders of capture, outside
    any server, or (--schedule) a server's monitoring schedule, now. Exit 0 when no
    constraint is violated, 1 on violations, 2 when there is not enough ground truth."""
    import time

    if schedule is not None:
        _run_schedule(ctx, schedule, wait, as_json)
        return
    if baseline_dir is None or not sources:
        raise click.UsageError("give --baseline and --capture, or --schedule")

    from sluice.errors import ValidationError
    from sluice.monitor import reference, run
    from sluice.monitor.documents import read_object
    from sluice.monitor.ground_truth import Attributes
    from sluice.monitor.times import moment

    now = time.time()
    folder = Path(baseline_dir)
    try:
        begin = moment(start, now, "start") if start else None
        finish = moment(end, now, "end") if end else None
        captures = [Path(s) for s in sources]
        if problem_type is None:
            result = run.data_quality(
                reference.load(folder), captures, begin, finish, Path(out), ", ".join(sources)
            )
        else:
            if ground_truth is None:
                raise ValidationError("a model-quality check needs --ground-truth", field="")
            attributes = Attributes(
                inference_attribute, probability_attribute, threshold, positive_label
            )
            result = run.model_quality(
                problem_type,
                read_object(folder / "constraints.json"),
                captures,
                Path(ground_truth),
                begin,
                finish,
                attributes,
                Path(out),
                ", ".join(sources),
                read_object(statistics)
                if (statistics := folder / "statistics.json").exists()
                else None,
                min_rows,
            )
    except ValidationError as e:
        raise click.ClickException(str(e)) from None
    report = result.report
    if as_json:
        click.echo(json.dumps(report, indent=1))
    else:
        _summary(report)
    raise SystemExit(2 if result.status == run.INSUFFICIENT else 1 if report["violations"] else 0)


def _summary(report: dict[str, object]) -> None:
    from rich.console import Console

    from sluice.cli.common import table

    counts = report["counts"]
    assert isinstance(counts, dict)
    console = Console()
    if report["kind"] == "model_quality":
        _quality_summary(console, report, counts)
        return
    console.print(
        f"[bold]{report['status']}[/]: {counts['rows']} rows from {counts['records']} records "
        f"in {counts['files']} files; {counts['malformed_lines']} malformed lines, "
        f"{counts['unreadable_inputs']} unreadable inputs"
    )
    violations = report["violations"]
    assert isinstance(violations, list)
    if violations:
        console.print(
            table(
                "Violations",
                ["feature", "check", "description"],
                [
                    (v["feature_name"] or "(all)", v["constraint_check_type"], v["description"])
                    for v in violations
                ],
            )
        )
    files = report.get("files")
    if isinstance(files, dict):
        console.print(f"report: {files['report.html']}")


def _quality_summary(console: Console, report: dict[str, object], counts: dict[str, int]) -> None:
    from sluice.cli.common import table

    console.print(
        f"[bold]{report['status']}[/]: {counts['rows']} rows joined from "
        f"{counts['labelled_records']} labelled of {counts['captured_records']} captured records"
    )
    if report["reason"]:
        console.print(str(report["reason"]))
    found = report["metrics"]
    assert isinstance(found, dict)
    rows = [
        (name, f"{m['value']:.4g}" if isinstance(m["value"], float) else str(m["value"]))
        for name, m in found.items()
        if isinstance(m, dict) and "value" in m
    ]
    if rows:
        console.print(table("Metrics", ["metric", "value"], rows))
    violations = report["violations"]
    assert isinstance(violations, list)
    for v in violations:
        console.print(f"[red]violation[/]: {v['description']}")
    files = report.get("files")
    if isinstance(files, dict):
        console.print(f"report: {files['report.html']}")


def _run_schedule(ctx: click.Context, name: str, wait: bool, as_json: bool) -> None:
    from sluice.cli.common import client, show_json

    with client(ctx) as c:
        execution = c.run_monitoring_schedule(name)
        if wait:
            execution = c.wait_for_monitoring_execution(execution.id)
    if as_json or not wait:
        show_json(execution)
    else:
        _execution_line(execution)
    codes = {"CompletedWithViolations": 1, "InsufficientGroundTruth": 2, "Failed": 3}
    raise SystemExit(codes.get(execution.status, 0) if wait else 0)


def _execution_line(execution: object) -> None:
    from sluice.api.monitoring_routes import ExecutionOut

    assert isinstance(execution, ExecutionOut)
    x = execution
    drifted = ", ".join(x.summary.get("drifted", [])) or "none"
    click.echo(
        f"execution {x.id} of {x.schedule}: {x.status}"
        + (f" ({x.failure_reason})" if x.failure_reason else "")
        + f"; {x.summary.get('violations', 0)} violations; drifted: {drifted}"
        + (f"; report: {x.report_dir}/report.html" if x.report_dir else "")
    )


@monitor.command("schedule")
@click.argument("name")
@click.option("--endpoint", required=True)
@click.option(
    "--baseline",
    required=True,
    help="Folder on the server with statistics.json and constraints.json.",
)
@click.option(
    "--every",
    "expression",
    default="cron(0 * ? * * *)",
    show_default=True,
    help="cron(...) as SageMaker, a five-field cron (UTC), rate(N minutes|hours|days), NOW.",
)
@click.option("--variant", help="One variant's capture (default: all).")
@click.option("--window-start", help="ISO-8601 offset from the run time (default: one period).")
@click.option("--window-end", default="-PT0S", show_default=True)
@click.option(
    "--problem-type",
    type=click.Choice(PROBLEM_TYPES),
    help="A model-quality schedule: predictions against ground truth.",
)
@click.option("--min-rows", default=100, show_default=True, help="Model quality: rows needed.")
@click.option("--missed", type=click.Choice(["run", "skip"]), default="run", show_default=True)
@click.option("--webhook", help="POSTed a JSON body when the alert state changes.")
@click.pass_context
def schedule(
    ctx: click.Context,
    name: str,
    endpoint: str,
    baseline: str,
    expression: str,
    variant: str | None,
    window_start: str | None,
    window_end: str,
    problem_type: str | None,
    min_rows: int,
    missed: str,
    webhook: str | None,
) -> None:
    """Create a monitoring schedule on the server, e.g.

    \b
    sluice monitor schedule digits-hourly --endpoint digits --baseline ./baseline
    """
    from sluice.cli.common import client, show_json

    job = {
        "kind": "ModelQuality" if problem_type else "DataQuality",
        "endpoint": endpoint,
        "baseline": str(Path(baseline).resolve()),
        "variant": variant,
        "window_start": window_start,
        "window_end": window_end,
        "problem_type": problem_type,
        "min_rows": min_rows,
    }
    with client(ctx) as c:
        show_json(c.create_monitoring_schedule(name, expression, job, missed, webhook))


@monitor.command("schedules")
@click.option("--endpoint")
@click.pass_context
def schedules(ctx: click.Context, endpoint: str | None) -> None:
    """List monitoring schedules with their alert state."""
    from sluice.cli.common import client, show_table

    with client(ctx) as c:
        rows = [
            (s.name, s.job["endpoint"], s.job["kind"], s.schedule, s.status, s.alert_state,
             s.last_scheduled_at.isoformat() if s.last_scheduled_at else "")
            for s in c.list_monitoring_schedules(endpoint)
        ]  # fmt: skip
    show_table(
        "monitoring schedules",
        ("name", "endpoint", "kind", "schedule", "status", "alert", "last run time"),
        rows,
    )


@monitor.command("executions")
@click.argument("name")
@click.option("--limit", default=20, show_default=True)
@click.pass_context
def executions(ctx: click.Context, name: str, limit: int) -> None:
    """A schedule's executions, newest first."""
    from sluice.cli.common import client, show_table

    with client(ctx) as c:
        rows = [
            (x.id, x.scheduled_at.isoformat(), x.status, x.counts.get("rows", ""),
             x.summary.get("violations", ""), ", ".join(x.summary.get("drifted", [])),
             x.failure_reason or "")
            for x in c.list_monitoring_executions(name, limit=limit)
        ]  # fmt: skip
    show_table(
        f"executions of {name}",
        ("id", "scheduled", "status", "rows", "violations", "drifted", "reason"),
        rows,
    )


@monitor.command("stop")
@click.argument("name")
@click.pass_context
def stop(ctx: click.Context, name: str) -> None:
    """Stop a schedule: no runs until it is started again."""
    from sluice.cli.common import client, show_json

    with client(ctx) as c:
        show_json(c.stop_monitoring_schedule(name))


@monitor.command("start")
@click.argument("name")
@click.pass_context
def start(ctx: click.Context, name: str) -> None:
    """Start a stopped schedule; runs resume from now."""
    from sluice.cli.common import client, show_json

    with client(ctx) as c:
        show_json(c.start_monitoring_schedule(name))


@monitor.command("delete")
@click.argument("name")
@click.pass_context
def delete(ctx: click.Context, name: str) -> None:
    """Delete a schedule (its executions' records and files stay)."""
    from sluice.cli.common import client

    with client(ctx) as c:
        c.delete_monitoring_schedule(name)
    click.echo(f"deleted {name}")
