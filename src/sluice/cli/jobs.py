"""`sluice jobs`: processing and training jobs: list, describe, log, stop."""

from __future__ import annotations

import time

import click

from sluice.cli.common import client, show_json, show_table

KINDS = click.Choice(["processing", "training"])


@click.group()
def jobs() -> None:
    """Processing and training jobs (created through the SageMaker API or its SDK)."""


@jobs.command("list")
@click.option("--kind", type=KINDS)
@click.option("--status", type=click.Choice(["InProgress", "Completed", "Failed", "Stopped"]))
@click.pass_context
def list_(ctx: click.Context, kind: str | None, status: str | None) -> None:
    """List jobs, oldest first."""
    with client(ctx) as c:
        rows = [
            (
                j.kind.value,
                j.name,
                j.status.value,
                j.secondary_status or "",
                f"{j.duration_s:.1f}" if j.duration_s is not None else "",
                ", ".join(f"{k}={v:g}" for k, v in sorted(j.metrics.items())),
                j.failure_reason or "",
            )
            for j in c.list_jobs(kind, status)
        ]
    show_table("jobs", ("kind", "name", "status", "stage", "seconds", "metrics", "failure"), rows)


@jobs.command("describe")
@click.argument("kind", type=KINDS)
@click.argument("name")
@click.pass_context
def describe(ctx: click.Context, kind: str, name: str) -> None:
    """A job's state, metrics, folder and request."""
    with client(ctx) as c:
        show_json(c.describe_job(kind, name))


@jobs.command("logs")
@click.argument("kind", type=KINDS)
@click.argument("name")
@click.option("--lines", type=int, default=200, show_default=True)
@click.option("--follow", is_flag=True, help="Keep printing new lines until the job ends.")
@click.pass_context
def logs(ctx: click.Context, kind: str, name: str, lines: int, follow: bool) -> None:
    """A job's output (its program's stdout and stderr)."""
    with client(ctx) as c:
        shown = c.job_log(kind, name, lines)
        for line in shown:
            click.echo(line)
        while follow:
            done = c.describe_job(kind, name).status.finished
            latest = c.job_log(kind, name, 10000)
            fresh = _after(shown, latest)
            for line in fresh:
                click.echo(line)
            shown = latest
            if done:
                return
            time.sleep(1)


def _after(shown: list[str], latest: list[str]) -> list[str]:
    """The lines of `latest` that come after what `shown` ended with."""
    if not shown:
        return latest
    for start in range(len(latest) - 1, -1, -1):
        end = start + 1
        if latest[max(0, end - len(shown)) : end] == shown[-min(len(shown), end) :]:
            return latest[end:]
    return latest


@jobs.command("stop")
@click.argument("kind", type=KINDS)
@click.argument("name")
@click.pass_context
def stop(ctx: click.Context, kind: str, name: str) -> None:
    """Stop a job (SIGTERM to its program, then SIGKILL after the grace period)."""
    with client(ctx) as c:
        show_json(c.stop_job(kind, name))
