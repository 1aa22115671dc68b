"""`sluice endpoints update|watch|history|deployment|cancel-update`: guarded updates."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from sluice.cli.common import client, show_json, show_table
from sluice.cli.endpoints import endpoints

if TYPE_CHECKING:
    from rich.console import RenderableType

    from sluice.api.schemas import DeploymentOut, LiveOut
    from sluice.client import Client

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)?$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}


def seconds(text: str, option: str) -> int:
    """'90', '90s', '5m', '1h' -> seconds."""
    match = _DURATION.fullmatch(text.strip())
    if not match:
        raise click.BadParameter(
            f"expected a duration such as 30s, 5m or 1h, got {text!r}", param_hint=option
        )
    return round(float(match.group(1)) * _UNITS[match.group(2)])


def capacity(text: str, option: str) -> dict[str, Any]:
    """'10%' -> CAPACITY_PERCENT 10; '2' -> INSTANCE_COUNT 2."""
    value = text.strip()
    try:
        if value.endswith("%"):
            return {"Type": "CAPACITY_PERCENT", "Value": int(value[:-1])}
        return {"Type": "INSTANCE_COUNT", "Value": int(value)}
    except ValueError:
        raise click.BadParameter(
            f"expected a percentage (10%) or an instance count (2), got {text!r}",
            param_hint=option,
        ) from None


def deployment_config(
    canary: str | None,
    linear: str | None,
    all_at_once: bool,
    rolling: str | None,
    rollback_batch: str | None,
    wait: str,
    bake: str,
    timeout: str | None,
    alarms: tuple[str, ...],
    guard: bool,
    guard_error_margin: float,
    guard_latency_margin: float,
) -> dict[str, Any] | None:
    """The DeploymentConfig document the flags describe (None: no policy)."""
    chosen = [
        n
        for n, v in (
            ("--canary", canary),
            ("--linear", linear),
            ("--all-at-once", all_at_once),
            ("--rolling", rolling),
        )
        if v
    ]
    if len(chosen) > 1:
        raise click.UsageError(f"choose one of {', '.join(chosen)}")
    doc: dict[str, Any] = {}
    wait_s = seconds(wait, "--wait")
    if rolling:
        policy: dict[str, Any] = {
            "MaximumBatchSize": capacity(rolling, "--rolling"),
            "WaitIntervalInSeconds": wait_s,
        }
        if rollback_batch:
            policy["RollbackMaximumBatchSize"] = capacity(rollback_batch, "--rollback-batch")
        if timeout:
            policy["MaximumExecutionTimeoutInSeconds"] = seconds(timeout, "--timeout")
        doc["RollingUpdatePolicy"] = policy
    elif chosen:
        routing: dict[str, Any] = {"WaitIntervalInSeconds": wait_s}
        if canary:
            routing.update(Type="CANARY", CanarySize=capacity(canary, "--canary"))
        elif linear:
            routing.update(Type="LINEAR", LinearStepSize=capacity(linear, "--linear"))
        else:
            routing["Type"] = "ALL_AT_ONCE"
        blue_green: dict[str, Any] = {
            "TrafficRoutingConfiguration": routing,
            "TerminationWaitInSeconds": seconds(bake, "--bake"),
        }
        if timeout:
            blue_green["MaximumExecutionTimeoutInSeconds"] = seconds(timeout, "--timeout")
        doc["BlueGreenUpdatePolicy"] = blue_green
    if alarms:
        doc["AutoRollbackConfiguration"] = {"Alarms": [{"AlarmName": a} for a in alarms]}
    if guard:
        doc["ComparativeGuard"] = {
            "ErrorRateMargin": guard_error_margin,
            "LatencyMargin": guard_latency_margin,
        }
    return doc or None


POLICY_FLAGS = (
    "canary",
    "linear",
    "all_at_once",
    "rolling",
    "rollback_batch",
    "wait_interval",
    "bake",
    "timeout",
    "alarms",
    "guard",
    "guard_error_margin",
    "guard_latency_margin",
)


def policy_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The flags that describe a deployment policy (see `deployment_config`)."""
    for option in reversed(_POLICY_OPTIONS):
        command = option(command)
    return command


def policy_from(flags: dict[str, Any]) -> dict[str, Any] | None:
    """Pops the policy flags from a command's keyword arguments; their DeploymentConfig."""
    return deployment_config(*(flags.pop(name) for name in POLICY_FLAGS))


_POLICY_OPTIONS = [
    click.option("--canary", metavar="SIZE", help="Canary first: 10% of capacity, or 2 instances."),
    click.option("--linear", metavar="SIZE", help="Linear steps of this size (10% to 50%)."),
    click.option("--all-at-once", is_flag=True, help="All traffic to green at once, then bake."),
    click.option(
        "--rolling", metavar="BATCH", help="Rolling update, BATCH instances (or %) a time."
    ),
    click.option(
        "--rollback-batch", metavar="BATCH", help="Rolling: batch size when rolling back."
    ),
    click.option(
        "--wait",
        "wait_interval",
        default="0s",
        show_default=True,
        help="Bake after each step (WaitIntervalInSeconds), e.g. 60s or 5m.",
    ),
    click.option(
        "--bake",
        default="0s",
        show_default=True,
        help="Final bake with blue still up (TerminationWaitInSeconds).",
    ),
    click.option("--timeout", help="MaximumExecutionTimeoutInSeconds, e.g. 1h."),
    click.option(
        "--alarm", "alarms", multiple=True, help="Roll back when this alarm fires (repeat)."
    ),
    click.option(
        "--guard/--no-guard",
        default=False,
        help="Roll back when green is significantly worse than blue.",
    ),
    click.option(
        "--guard-error-margin",
        default=0.0,
        show_default=True,
        help="Tolerated rise of the 5xx rate (absolute, 0.01 = 1 point).",
    ),
    click.option(
        "--guard-latency-margin",
        default=0.2,
        show_default=True,
        help="Tolerated latency rise (relative, 0.2 = 20 %).",
    ),
]


@endpoints.command("update")
@click.argument("name")
@click.option("--config", required=True, help="The endpoint config to move to.")
@policy_options
@click.option(
    "--follow/--no-follow",
    default=True,
    show_default=True,
    help="Show the update live until it ends; exit 1 if it rolled back.",
)
@click.pass_context
def update(ctx: click.Context, /, name: str, config: str, follow: bool, **policy: Any) -> None:
    """Move an endpoint to another endpoint config under a deployment policy.

    \b
    sluice endpoints update digits --config digits-v2 --canary 10% --wait 5m \\
        --alarm digits-5xx --alarm digits-p99
    """
    doc = policy_from(policy)
    with client(ctx) as c:
        deployment = c.update_endpoint(name, config, doc)
        if not follow:
            show_json(deployment)
            return
        finished = _follow(c, name, deployment.id)
    _print_outcome(finished)
    if finished.state != "Completed":
        ctx.exit(1)


@endpoints.command("watch")
@click.argument("name")
@click.option("--interval", default=1.0, show_default=True, help="Seconds between refreshes.")
@click.option("--once", is_flag=True, help="Print one frame and exit.")
@click.pass_context
def watch(ctx: click.Context, name: str, interval: float, once: bool) -> None:
    """Live split, step, alarm states and per-fleet errors and latency (Ctrl-C to stop)."""
    from rich.console import Console
    from rich.live import Live

    with client(ctx) as c:
        if once:
            Console().print(_frame(c.live(name)))
            return
        with Live(_frame(c.live(name)), refresh_per_second=4) as live:
            try:
                while True:
                    time.sleep(interval)
                    live.update(_frame(c.live(name)))
            except KeyboardInterrupt:
                pass


@endpoints.command("history")
@click.argument("name")
@click.pass_context
def history(ctx: click.Context, name: str) -> None:
    """Every update of an endpoint: policy, outcome, duration."""
    with client(ctx) as c:
        rows = [
            (
                d.id,
                d.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                f"{d.from_config} -> {d.to_config}",
                d.kind,
                d.state,
                f"{d.duration_s:.1f} s",
                len(d.steps),
                d.reason or "",
            )
            for d in c.list_deployments(name)
        ]
    show_table(
        f"updates of {name}",
        ("id", "started", "configs", "policy", "outcome", "took", "steps", "reason"),
        rows,
    )


@endpoints.command("deployment")
@click.argument("deployment_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="The whole record as JSON.")
@click.pass_context
def deployment(ctx: click.Context, deployment_id: int, as_json: bool) -> None:
    """One update step by step: split, fleets' figures, alarms, decisions, events."""
    from rich.console import Console

    with client(ctx) as c:
        record = c.get_deployment(deployment_id)
    if as_json:
        show_json(record)
        return
    console = Console()
    console.print(_steps_table(record))
    for event in record.events:
        console.print(f"[dim]{event.at:%H:%M:%S.%f}[/] {event.kind:6} {event.message}")
    for t in record.alarm_transitions:
        console.print(
            f"[dim]{t.at:%H:%M:%S.%f}[/] alarm  {t.alarm} {t.old_state} -> "
            f"{t.new_state}: {t.reason}"
        )
    _print_outcome(record)


@endpoints.command("cancel-update")
@click.argument("name")
@click.pass_context
def cancel_update(ctx: click.Context, name: str) -> None:
    """Roll back the endpoint's running update (on an UpdateRollbackFailed endpoint: retry
    the rollback)."""
    with client(ctx) as c:
        record = c.cancel_update(name)
        finished = c.wait_for_deployment(record.id, 600)
    _print_outcome(finished)


def _follow(c: Client, name: str, deployment_id: int) -> DeploymentOut:
    from rich.live import Live

    with Live(_frame(c.live(name)), refresh_per_second=4, transient=False) as live:
        while True:
            record = c.get_deployment(deployment_id)
            if record.finished_at is not None:
                return record
            live.update(_frame(c.live(name)))
            time.sleep(0.5)


def _frame(view: LiveOut) -> RenderableType:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    endpoint = view.endpoint
    parts: list[RenderableType] = [
        Text.assemble((endpoint.name, "bold"), f"  {endpoint.status}  config {endpoint.config}")
    ]
    d = view.deployment
    if d is not None:
        step = d.plan[d.step_index] if 0 <= d.step_index < len(d.plan) else None
        left = max(0.0, (view.bake_until or 0) - time.time())
        where = (
            f"step {d.step_index + 1}/{len(d.plan)}: {step['label']}"
            if step
            else "starting the green fleet"
        )
        parts.append(
            Text(
                f"update {d.id} {d.from_config} -> {d.to_config} ({d.kind}) "
                f"{d.state}  {where}  bake left {left:.0f} s"
            )
        )
    fleets = Table(title="fleets (this step)" if d else "fleets")
    for column in (
        "fleet",
        "variant",
        "config",
        "share",
        "requests",
        "5xx rate",
        "p50 ms",
        "p99 ms",
    ):
        fleets.add_column(column)
    for f in view.fleets:
        w = f.window
        rate = w.get("rate_5xx")
        fleets.add_row(
            f.role,
            f.variant,
            f.config,
            "" if f.green_share is None else f"{f.green_share:.0%}",
            str(w.get("invocations", 0)),
            "" if rate is None else f"{rate:.2%}",
            _num(w.get("model_latency_p50_ms")),
            _num(w.get("model_latency_p99_ms")),
        )
    parts.append(fleets)
    if view.alarms:
        alarms = Table(title="alarms")
        for column in ("alarm", "state", "rule", "recent datapoints"):
            alarms.add_column(column)
        for a in view.alarms:
            style = {"ALARM": "bold red", "OK": "green"}.get(a.state, "yellow")
            recent = ", ".join("-" if v is None else f"{v:.4g}" for _, v in a.recent[-5:])
            alarms.add_row(
                Text(a.name),
                Text(a.state, style=style),
                f"{a.metric} {a.statistic} {a.comparison} {a.threshold:g}",
                recent,
            )
        parts.append(alarms)
    for check in view.checks:
        parts.append(
            Text(
                f"guard {check['name']}: {'WORSE' if check['worse'] else 'ok'} - {check['detail']}"
            )
        )
    return Group(*parts)


def _steps_table(record: DeploymentOut) -> RenderableType:
    from rich.table import Table

    table = Table(
        title=f"update {record.id}: {record.from_config} -> {record.to_config} ({record.kind})"
    )
    for column in (
        "step",
        "green",
        "baked",
        "blue 5xx / p99",
        "green 5xx / p99",
        "alarms",
        "decision",
        "reason",
    ):
        table.add_column(column)
    for s in record.steps:
        baked = (s.ended_at - s.started_at).total_seconds() if s.ended_at else None
        table.add_row(
            f"{s.index + 1} {s.label}",
            ", ".join(f"{v}={x:.0%}" for v, x in s.green_shares.items()),
            "" if baked is None else f"{baked:.1f} s",
            _fleet(s.fleets.get("blue")),
            _fleet(s.fleets.get("green")),
            ", ".join(f"{n}={x}" for n, x in s.alarms.items()),
            s.decision or "running",
            s.reason or "",
        )
    return table


def _fleet(summary: dict[str, Any] | None) -> str:
    if not summary or not summary.get("invocations"):
        return "-"
    return (
        f"{summary['errors_5xx']}/{summary['invocations']} / "
        f"{_num(summary.get('model_latency_p99_ms'))} ms"
    )


def _num(value: object) -> str:
    return "" if value is None else f"{float(value):.2f}"  # type: ignore[arg-type]


def _print_outcome(record: DeploymentOut) -> None:
    from rich.console import Console

    style = "green" if record.state == "Completed" else "bold red"
    Console().print(
        f"[{style}]update {record.id}: {record.state}[/] after "
        f"{record.duration_s:.1f} s" + (f": {record.reason}" if record.reason else "")
    )
