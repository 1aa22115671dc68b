"""`sluice monitor`: baselines and data-quality checks."""

from __future__ import annotations

import json
from pathlib import Path

import click


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
def baseline(data: str, schema: str | None, out: str) -> None:
    """Statistics (as sketches) and suggested constraints from training data, in
    SageMaker Model Monitor's formats."""
    from sluice.monitor.baseline import baseline as compute

    types = json.loads(Path(schema).read_text()) if schema else None
    statistics, constraints = compute(Path(data), types)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "statistics.json").write_text(json.dumps(statistics, indent=1))
    (folder / "constraints.json").write_text(json.dumps(constraints, indent=1))
    features = len(statistics["features"])
    rows = statistics["dataset"]["item_count"]
    click.echo(f"{rows} rows, {features} features: {folder / 'statistics.json'}, "
               f"{folder / 'constraints.json'}")  # fmt: skip


@monitor.command("run-now")
@click.option(
    "--baseline",
    "baseline_dir",
    required=True,
    type=click.Path(file_okay=False, exists=True),
    help="Folder with statistics.json (and constraints.json).",
)
@click.option(
    "--capture",
    "sources",
    multiple=True,
    required=True,
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
def run_now(
    baseline_dir: str,
    sources: tuple[str, ...],
    start: str | None,
    end: str | None,
    out: str,
    as_json: bool,
) -> None:
    """Check captured requests against a baseline, outside any server. Exit 0 when no
    constraint is violated, 1 otherwise."""
    import time

    from sluice.errors import ValidationError
    from sluice.monitor import reference, run
    from sluice.monitor.times import moment

    now = time.time()
    try:
        loaded = reference.load(Path(baseline_dir))
        begin = moment(start, now, "start") if start else None
        finish = moment(end, now, "end") if end else None
        result = run.data_quality(
            loaded, [Path(s) for s in sources], begin, finish, Path(out), title=", ".join(sources)
        )
    except ValidationError as e:
        raise click.ClickException(str(e)) from None
    report = result.report
    if as_json:
        click.echo(json.dumps(report, indent=1))
    else:
        _summary(report)
    raise SystemExit(1 if report["violations"] else 0)


def _summary(report: dict[str, object]) -> None:
    from rich.console import Console

    from sluice.cli.common import table

    counts = report["counts"]
    assert isinstance(counts, dict)
    console = Console()
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
