"""`sluice alarms`: thresholds on endpoint or custom metrics, their states and history."""

from __future__ import annotations

import click

from sluice.cli.common import client, show_json, show_table

COMPARISONS = {
    ">": "GreaterThanThreshold",
    ">=": "GreaterThanOrEqualToThreshold",
    "<": "LessThanThreshold",
    "<=": "LessThanOrEqualToThreshold",
}


@click.group()
def alarms() -> None:
    """Alarms: a metric, a threshold, periods; deployments roll back when one fires."""


@alarms.command("put")
@click.argument("name")
@click.option(
    "--metric",
    required=True,
    help="Invocation5XXErrors, Invocation4XXErrors, InvocationErrors, Invocations, "
    "ModelLatency, OverheadLatency (ms), or a custom metric.",
)
@click.option(
    "--statistic",
    default="Average",
    show_default=True,
    help="Average (the rate, for error metrics), Sum, SampleCount, Minimum, Maximum, "
    "or a percentile such as p99.",
)
@click.option(
    "--comparison", type=click.Choice(sorted(COMPARISONS)), default=">", show_default=True
)
@click.option("--threshold", type=float, required=True)
@click.option(
    "--period", "period_s", type=int, default=60, show_default=True, help="Seconds per datapoint."
)
@click.option("--evaluation-periods", type=int, default=1, show_default=True)
@click.option("--datapoints-to-alarm", type=int, help="Default: all evaluation periods.")
@click.option("--endpoint")
@click.option("--variant")
@click.option(
    "--treat-missing-data",
    type=click.Choice(["missing", "notBreaching", "breaching", "ignore"]),
    default="missing",
    show_default=True,
)
@click.option("--webhook", "webhook_url", help="POSTed a JSON body on every transition.")
@click.option("--description", default="")
@click.pass_context
def put(ctx: click.Context, /, name: str, comparison: str, **definition: object) -> None:
    """Create an alarm or replace its definition, e.g.

    \b
    sluice alarms put digits-5xx --endpoint digits --metric Invocation5XXErrors \\
        --threshold 0.01 --period 10
    """
    with client(ctx) as c:
        show_json(c.put_alarm(name, comparison=COMPARISONS[comparison], **definition))


@alarms.command("list")
@click.option("--endpoint")
@click.pass_context
def list_alarms(ctx: click.Context, endpoint: str | None) -> None:
    """List alarms with their state."""
    symbols = {v: k for k, v in COMPARISONS.items()}
    with client(ctx) as c:
        rows = [
            (
                a.name,
                a.state,
                f"{a.endpoint or '-'}{'/' + a.variant if a.variant else ''}",
                f"{a.metric} {a.statistic} {symbols[a.comparison]} {a.threshold:g}",
                f"{a.datapoints_to_alarm} of {a.evaluation_periods} x {a.period_s} s",
                a.state_reason,
            )
            for a in c.list_alarms(endpoint)
        ]
    show_table("alarms", ("name", "state", "on", "rule", "periods", "reason"), rows)


@alarms.command("describe")
@click.argument("name")
@click.pass_context
def describe(ctx: click.Context, name: str) -> None:
    """One alarm with its recent datapoints."""
    with client(ctx) as c:
        show_json(c.get_alarm(name))


@alarms.command("history")
@click.argument("name")
@click.option("--limit", default=50, show_default=True)
@click.pass_context
def history(ctx: click.Context, name: str, limit: int) -> None:
    """State transitions, newest first."""
    with client(ctx) as c:
        rows = [
            (
                t.at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
                f"{t.old_state} -> {t.new_state}",
                t.scope,
                t.reason,
            )
            for t in c.alarm_history(name, limit)
        ]
    show_table(f"history of {name}", ("at", "transition", "evaluated on", "reason"), rows)


@alarms.command("delete")
@click.argument("name")
@click.pass_context
def delete(ctx: click.Context, name: str) -> None:
    """Delete an alarm."""
    with client(ctx) as c:
        c.delete_alarm(name)
    click.echo(f"deleted alarm {name}")


@alarms.command("put-metric")
@click.argument("metric")
@click.argument("value", type=float)
@click.option("--endpoint")
@click.option("--variant")
@click.pass_context
def put_metric(
    ctx: click.Context, metric: str, value: float, endpoint: str | None, variant: str | None
) -> None:
    """Push one value of a custom metric (for alarms on business figures)."""
    with client(ctx) as c:
        c.put_metrics([{"name": metric, "value": value, "endpoint": endpoint, "variant": variant}])
