"""`sluice report shadow|ab`: a comparison report from capture files, no server needed."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from sluice.cli.common import table
from sluice.reports.html import number, percent

if TYPE_CHECKING:
    from rich.console import Console, RenderableType


@click.group()
def report() -> None:
    """Compare variants from their data capture (and ground truth, and outcomes)."""


def _options(command: Any) -> Any:
    for option in reversed(
        [
            click.option("--endpoint", required=True),
            click.option("--baseline", required=True, help="The production variant."),
            click.option("--candidate", "candidates", multiple=True, required=True),
            click.option(
                "--capture",
                type=click.Path(file_okay=False, path_type=Path),
                required=True,
                help="The capture root (holding ENDPOINT/VARIANT/YYYY/MM/DD/HH/*.jsonl).",
            ),
            click.option(
                "--ground-truth",
                type=click.Path(file_okay=False, path_type=Path),
                help="The ground-truth root (holding ENDPOINT/YYYY/MM/DD/HH/*.jsonl).",
            ),
            click.option("--outcomes", type=click.Path(file_okay=False, path_type=Path)),
            click.option("--start", type=click.DateTime(), help="Window start (UTC)."),
            click.option("--end", type=click.DateTime(), help="Window end (UTC)."),
            click.option(
                "--problem", type=click.Choice(["classification", "regression"]), default=None
            ),
            click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path)),
            click.option("--html", "html_out", type=click.Path(dir_okay=False, path_type=Path)),
        ]
    ):
        command = option(command)
    return command


@report.command("shadow")
@_options
def shadow(**kw: Any) -> None:
    """A shadow test: each candidate's answers paired with the baseline's, request by request."""
    _run("shadow", **kw)


@report.command("ab")
@_options
def ab(**kw: Any) -> None:
    """An A/B test: production variants that each answered their own share of traffic."""
    _run("ab", **kw)


@report.command("replay")
@click.option("--endpoint", required=True)
@click.option("--baseline", required=True, help="The production variant whose requests replay.")
@click.option(
    "--capture",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="The capture root (holding ENDPOINT/VARIANT/YYYY/MM/DD/HH/*.jsonl).",
)
@click.option("--model", "artifact", required=True, help="The candidate: a directory or .tar.gz.")
@click.option("--runtime", help="sklearn, onnx or python; detected if absent.")
@click.option("--candidate", default="replay", show_default=True, help="Its name in the report.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("replay-capture"),
    show_default=True,
    help="Where the candidate's capture is written.",
)
@click.option("--ground-truth", type=click.Path(file_okay=False, path_type=Path))
@click.option("--start", type=click.DateTime(), help="Window start (UTC).")
@click.option("--end", type=click.DateTime(), help="Window end (UTC).")
@click.option("--instances", default=1, show_default=True, help="Worker processes.")
@click.option("--concurrency", default=4, show_default=True, help="Requests in flight.")
@click.option("--problem", type=click.Choice(["classification", "regression"]), default=None)
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--html", "html_out", type=click.Path(dir_okay=False, path_type=Path))
def replay(
    endpoint: str,
    baseline: str,
    capture: Path,
    artifact: str,
    runtime: str | None,
    candidate: str,
    out: Path,
    ground_truth: Path | None,
    start: datetime | None,
    end: datetime | None,
    instances: int,
    concurrency: int,
    problem: str | None,
    json_out: Path | None,
    html_out: Path | None,
) -> None:
    """Send a window of captured requests through a candidate model, offline, and compare.

    \b
    sluice report replay --endpoint digits --baseline A --capture ~/.sluice/capture \\
        --model ./digits-v2 --ground-truth ~/.sluice/ground-truth --html replay.html
    """
    from sluice.reports.compare import ReportOptions, Source
    from sluice.reports.replay import replay_report

    if not (capture / endpoint / baseline).is_dir():
        raise click.BadParameter(f"no capture for {endpoint}/{baseline} under {capture}")
    source = Source(endpoint, capture, ground_truth, None, _epoch(start), _epoch(end))
    result = replay_report(
        source,
        baseline,
        artifact,
        out,
        candidate,
        runtime,
        instances,
        concurrency,
        ReportOptions(problem_type=problem),
    )
    facts = result["replay"]
    click.echo(
        f"replayed {facts['requests']:,} requests ({facts['errors']:,} errors) in "
        f"{facts['seconds']:.1f} s; candidate capture in {facts['capture']}"
    )
    _write(result, json_out, html_out)


def _run(
    kind: str,
    endpoint: str,
    baseline: str,
    candidates: tuple[str, ...],
    capture: Path,
    ground_truth: Path | None,
    outcomes: Path | None,
    start: datetime | None,
    end: datetime | None,
    problem: str | None,
    json_out: Path | None,
    html_out: Path | None,
) -> None:
    from sluice.reports.compare import ReportOptions, Source, ab_report, shadow_report

    for name in (baseline, *candidates):
        if not (capture / endpoint / name).is_dir():
            raise click.BadParameter(f"no capture for {endpoint}/{name} under {capture}")
    source = Source(endpoint, capture, ground_truth, outcomes, _epoch(start), _epoch(end))
    build = shadow_report if kind == "shadow" else ab_report
    result = build(source, baseline, list(candidates), ReportOptions(problem_type=problem))
    _write(result, json_out, html_out)


def _write(result: dict[str, Any], json_out: Path | None, html_out: Path | None) -> None:
    from sluice.reports.html import render

    print_report(result)
    if json_out:
        json_out.write_text(json.dumps(result, indent=2) + "\n")
        click.echo(f"JSON: {json_out}")
    if html_out:
        html_out.write_text(render(result))
        click.echo(f"HTML: {html_out}")


def _epoch(when: datetime | None) -> float | None:
    if when is None:
        return None
    from datetime import UTC

    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def print_report(result: dict[str, Any], console: Console | None = None) -> None:
    """The report as rich tables: operations per variant, then each comparison's verdict."""
    from rich.console import Console

    console = console or Console()
    for part in report_parts(result):
        console.print(part)


def report_parts(result: dict[str, Any]) -> list[RenderableType]:
    """Tables and verdict lines of a report, for printing or a live view."""
    parts: list[RenderableType] = [
        table(
            result["title"],
            ["variant", "role", "requests", "share", "4xx", "5xx", "p50 ms", "p99 ms", "CPU s"],
            [
                [
                    name,
                    v["role"],
                    v["requests"],
                    percent(v["share"]),
                    v["errors"]["4xx"],
                    v["errors"]["5xx"],
                    number(v["latency_ms"]["p50"]),
                    number(v["latency_ms"]["p99"]),
                    number(v.get("cpu_seconds")),
                ]
                for name, v in result["variants"].items()
            ],
        )
    ]
    for c in result["comparisons"]:
        rows: list[list[Any]] = []
        q = c["quality"]
        if "agreement" in c:
            rows.append(["agreement", percent(c["agreement"]["rate"]["value"]), "", ""])
        if q.get("status") == "ok":
            metric = q["metric"]
            rows.append(
                [
                    metric,
                    number(q["baseline"][metric]["value"]),
                    number(q["candidate"][metric]["value"]),
                    f"{number(q['difference'][metric]['value'])} "
                    f"[{number(q['difference'][metric]['ci95'][0])}, "
                    f"{number(q['difference'][metric]['ci95'][1])}]",
                ]
            )
        else:
            rows.append(["quality", q.get("status"), "", ""])
        latency = c["latency"]
        if latency.get("status") == "ok":
            rows.append(["latency ratio", "", "", number(latency["ratio"]["value"])])
        for name, o in c.get("outcomes", {}).items():
            k = o["kind"]
            rows.append(
                [
                    f"{name} ({k})",
                    number(o["baseline"][k]["value"]),
                    number(o["candidate"][k]["value"]),
                    f"{number(o['difference'][k]['value'])}, "
                    f"always-valid p {number(o['test']['always_valid_p_value'])}",
                ]
            )
        parts.append(
            table(
                f"{c['candidate']} against {c['baseline']}",
                ["", c["baseline"], c["candidate"], "difference"],
                rows,
            )
        )
        parts.append(c["verdict"]["summary"])
    return parts
