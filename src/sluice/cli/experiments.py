"""`sluice experiments`: shadow tests on a live endpoint, their report, and promotion."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from sluice.cli.common import client, parse_assignments, show_json, show_table, table
from sluice.cli.deploy import policy_from, policy_options, seconds
from sluice.cli.endpoints import SHADOW_KEYS, variant_spec

if TYPE_CHECKING:
    from rich.console import RenderableType

    from sluice.api.schemas import ExperimentOut
    from sluice.client import Client


@click.group()
def experiments() -> None:
    """Inference experiments: shadow tests with a comparison report and promotion."""


def _when(text: str | None, option: str) -> datetime | None:
    """An ISO time (UTC if no zone) or an offset from now such as +10m."""
    if text is None:
        return None
    if text.startswith("+"):
        return datetime.now(UTC) + timedelta(seconds=seconds(text[1:], option))
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            f"expected an ISO time (2026-05-01T09:00) or +DURATION (+10m), got {text!r}",
            param_hint=option,
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@experiments.command("create")
@click.argument("name")
@click.option("--endpoint", required=True)
@click.option("--source", required=True, help="The production variant whose requests are copied.")
@click.option(
    "--shadow",
    "shadows",
    multiple=True,
    required=True,
    metavar="name=S,model=M[,sampling=100][,instances=1]",
    help="A shadow variant to test (repeat for several).",
)
@click.option("--start", help="When it starts: ISO time or +10m. Default: now.")
@click.option("--end", help="When it ends: ISO time or +2h. Default: 7 days after the start.")
@click.option("--duration", help="How long it runs (instead of --end), e.g. 30m or 24h.")
@click.option("--description", default="")
@click.option("--destination", help="Where the pairs are captured (directory or file://).")
@click.pass_context
def create(
    ctx: click.Context,
    name: str,
    endpoint: str,
    source: str,
    shadows: tuple[str, ...],
    start: str | None,
    end: str | None,
    duration: str | None,
    description: str,
    destination: str | None,
) -> None:
    """Create a shadow test; it starts at its start time (now by default).

    \b
    sluice experiments create tree-vs-logreg --endpoint digits --source A \\
        --shadow name=candidate,model=digits-v2,sampling=50 --duration 1h
    """
    if end and duration:
        raise click.UsageError("give --end or --duration, not both")
    begins = _when(start, "--start")
    ends = _when(end, "--end")
    if duration:
        ends = (begins or datetime.now(UTC)) + timedelta(seconds=seconds(duration, "--duration"))
    variants = [variant_spec(s, SHADOW_KEYS, "--shadow") for s in shadows]
    with client(ctx) as c:
        created = c.create_experiment(
            name, endpoint, source, variants, begins, ends, description, destination
        )
    _describe(created)


@experiments.command("start")
@click.argument("name")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Until it runs.")
@click.pass_context
def start(ctx: click.Context, name: str, wait: bool) -> None:
    """Start a Created experiment now, ahead of its scheduled start."""
    with client(ctx) as c:
        experiment = c.start_experiment(name, wait=wait)
    _describe(experiment)
    if experiment.status == "Cancelled":
        ctx.exit(1)


@experiments.command("describe")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="The whole record as JSON.")
@click.pass_context
def describe(ctx: click.Context, name: str, as_json: bool) -> None:
    """Status, schedule, variants and timeline of an experiment."""
    with client(ctx) as c:
        experiment = c.get_experiment(name)
    if as_json:
        show_json(experiment)
    else:
        _describe(experiment, events=True)


@experiments.command("list")
@click.option("--endpoint", help="Only this endpoint's experiments.")
@click.pass_context
def list_experiments(ctx: click.Context, endpoint: str | None) -> None:
    """List experiments."""
    with client(ctx) as c:
        rows = [
            (
                x.name,
                x.status,
                x.endpoint,
                x.source_variant,
                ", ".join(
                    f"{v.variant_name}:{v.model_name} {v.sampling_percentage}%"
                    for v in x.variants
                    if v.role == "shadow"
                ),
                _short(x.start),
                _short(x.end),
            )
            for x in c.list_experiments(endpoint)
        ]
    show_table(
        "inference experiments",
        ("name", "status", "endpoint", "source", "shadows", "start", "end"),
        rows,
    )


@experiments.command("update")
@click.argument("name")
@click.option("--start", help="New start (Created only): ISO time or +10m.")
@click.option("--end", help="New end: ISO time or +2h.")
@click.option("--sampling", multiple=True, metavar="SHADOW=PERCENT", help="New sampling.")
@click.option("--instances", multiple=True, metavar="SHADOW=COUNT", help="New instance count.")
@click.option("--description")
@click.pass_context
def update(
    ctx: click.Context,
    name: str,
    start: str | None,
    end: str | None,
    sampling: tuple[str, ...],
    instances: tuple[str, ...],
    description: str | None,
) -> None:
    """Change an experiment: its end, sampling and instances even while it runs."""
    changes: dict[str, Any] = {
        "start": _when(start, "--start"),
        "end": _when(end, "--end"),
        "description": description,
    }
    try:
        changes["sampling"] = {
            k: int(v) for k, v in parse_assignments(sampling, "--sampling").items()
        }
        changes["instances"] = {
            k: int(v) for k, v in parse_assignments(instances, "--instances").items()
        }
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    with client(ctx) as c:
        _describe(c.update_experiment(name, **{k: v for k, v in changes.items() if v}))


@experiments.command("stop")
@click.argument("name")
@click.option("--promote", metavar="VARIANT", help="Put this shadow's model in production.")
@click.option("--retain", multiple=True, metavar="VARIANT", help="Keep this shadow running.")
@click.option("--cancel", is_flag=True, help="End as Cancelled rather than Completed.")
@click.option("--reason", help="Recorded as the experiment's status reason.")
@policy_options
@click.option(
    "--follow/--no-follow", default=True, show_default=True, help="Wait until it has ended."
)
@click.pass_context
def stop(
    ctx: click.Context,
    /,
    name: str,
    promote: str | None,
    retain: tuple[str, ...],
    cancel: bool,
    reason: str | None,
    follow: bool,
    **policy: Any,
) -> None:
    """End an experiment: remove its shadows, retain some, or promote one.

    A promoted shadow reaches production through the deployment policy given by the
    flags (--canary 10% --wait 5m ...), all at once if none.

    \b
    sluice experiments stop tree-vs-logreg --promote candidate --canary 20% --wait 2m
    """
    document = policy_from(policy)
    if document and not promote:
        raise click.UsageError("a deployment policy applies to --promote only")
    actions = {v: "Retain" for v in retain}
    if promote:
        actions[promote] = "Promote"
    with client(ctx) as c:
        experiment = c.stop_experiment(
            name,
            actions,
            "Cancelled" if cancel else "Completed",
            reason,
            document,
            wait=follow,
        )
    _describe(experiment)
    if follow and experiment.status == "Cancelled" and not cancel:
        ctx.exit(1)


@experiments.command("delete")
@click.argument("name")
@click.pass_context
def delete(ctx: click.Context, name: str) -> None:
    """Delete an experiment that has ended (or has not started)."""
    with client(ctx) as c:
        c.delete_experiment(name)
    click.echo(f"deleted inference experiment {name}")


@experiments.command("report")
@click.argument("name")
@click.option("--json", "json_out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--html", "html_out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--refresh", is_flag=True, help="Recompute now rather than serve the last one.")
@click.pass_context
def report(
    ctx: click.Context, name: str, json_out: Path | None, html_out: Path | None, refresh: bool
) -> None:
    """The comparison report: so far while it runs, final once it has ended."""
    from sluice.cli.report import print_report

    with client(ctx) as c:
        result = c.experiment_report(name, refresh)
        print_report(result)
        if json_out:
            json_out.write_text(json.dumps(result, indent=2) + "\n")
            click.echo(f"JSON: {json_out}")
        if html_out:
            html_out.write_text(c.experiment_report_html(name))
            click.echo(f"HTML: {html_out}")


@experiments.command("watch")
@click.argument("name")
@click.option("--interval", default=10.0, show_default=True, help="Seconds between refreshes.")
@click.pass_context
def watch(ctx: click.Context, name: str, interval: float) -> None:
    """The live comparison, refreshed until the experiment ends (Ctrl-C to leave)."""
    from rich.live import Live

    with client(ctx) as c, Live(_frame(c, name, True), refresh_per_second=1) as live:
        try:
            while c.get_experiment(name).status not in ("Completed", "Cancelled"):
                time.sleep(interval)
                live.update(_frame(c, name, True))
            live.update(_frame(c, name, False))
        except KeyboardInterrupt:
            pass


def _frame(c: Client, name: str, refresh: bool) -> RenderableType:
    from rich.console import Group

    from sluice.cli.report import report_parts

    experiment = c.get_experiment(name)
    head = (
        f"{experiment.name}: {experiment.status}"
        + (f" ({experiment.status_reason})" if experiment.status_reason else "")
        + f"; ends {_short(experiment.end)}"
    )
    if experiment.started_at is None:
        return Group(head, "no report before the experiment starts")
    return Group(head, *report_parts(c.experiment_report(name, refresh)))


def _describe(x: ExperimentOut, events: bool = False) -> None:
    from rich.console import Console

    console = Console()
    console.print(
        f"[bold]{x.name}[/bold]: {x.status}" + (f", {x.status_reason}" if x.status_reason else "")
    )
    console.print(
        f"endpoint {x.endpoint}, from {_short(x.start)} to {_short(x.end)}"
        + (f"; {x.description}" if x.description else "")
    )
    console.print(
        table(
            "variants",
            ("variant", "role", "model", "instances", "sampling", "status"),
            [
                (
                    v.variant_name,
                    v.role,
                    v.model_name,
                    v.instance_count,
                    f"{v.sampling_percentage} %" if v.sampling_percentage is not None else "",
                    v.status,
                )
                for v in x.variants
            ],
        )
    )
    if events:
        console.print(
            table("timeline", ("at", "event"), [(_short(ev.at), ev.message) for ev in x.events])
        )


def _short(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if moment else ""
