"""`sluice transform`: batch transform jobs: create, describe, list, stop, wait."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from sluice.cli.common import client, parse_assignments, show_json, show_table

if TYPE_CHECKING:
    from sluice.api.transform_routes import TransformJobOut
    from sluice.client import Client


@click.group()
def transform() -> None:
    """Batch transform jobs: score whole datasets with a model, resumably."""


@transform.command("create")
@click.argument("name")
@click.option("--model", required=True, help="The model that scores the records.")
@click.option("--input", "input_uri", required=True, help="s3:// or file:// prefix, or manifest.")
@click.option("--output", required=True, help="Where <name>.out files go (s3:// or file://).")
@click.option("--manifest", is_flag=True, help="--input is a manifest file.")
@click.option("--content-type", default="text/csv", show_default=True)
@click.option("--accept", help="The answers' type (default: the model's, JSON).")
@click.option(
    "--split", type=click.Choice(["Line", "RecordIO", "None"]), default="Line", show_default=True
)
@click.option("--gzip", "gzipped", is_flag=True, help="The input objects are gzip files.")
@click.option(
    "--batch-strategy",
    type=click.Choice(["MultiRecord", "SingleRecord"]),
    default="MultiRecord",
    show_default=True,
)
@click.option("--max-payload-mb", type=int, default=6, show_default=True)
@click.option("--assemble", type=click.Choice(["Line", "None"]), default="Line", show_default=True)
@click.option("--instances", type=int, default=1, show_default=True)
@click.option(
    "--on-bad-record",
    type=click.Choice(["fail", "continue"]),
    default="fail",
    show_default=True,
    help="fail: the file gets no output (SageMaker's); continue: to <name>.out.errors.",
)
@click.option("--input-filter", default="$", show_default=True, help="JSONPath on each record.")
@click.option("--join-input", is_flag=True, help="Join each answer with its input record.")
@click.option("--output-filter", default="$", show_default=True, help="JSONPath on each output.")
@click.option("--env", "env", multiple=True, metavar="KEY=VALUE", help="Model environment.")
@click.option("--wait", is_flag=True, help="Follow the job with a progress bar until it ends.")
@click.pass_context
def create(
    ctx: click.Context,
    name: str,
    model: str,
    input_uri: str,
    output: str,
    manifest: bool,
    content_type: str,
    accept: str | None,
    split: str,
    gzipped: bool,
    batch_strategy: str,
    max_payload_mb: int,
    assemble: str,
    instances: int,
    on_bad_record: str,
    input_filter: str,
    join_input: bool,
    output_filter: str,
    env: tuple[str, ...],
    wait: bool,
) -> None:
    """Start a transform job."""
    with client(ctx) as c:
        job = c.create_transform(
            name,
            model,
            input_uri,
            output,
            data_type="ManifestFile" if manifest else "S3Prefix",
            content_type=content_type,
            accept=accept,
            split_type=split,
            compression="Gzip" if gzipped else "None",
            batch_strategy=batch_strategy,
            max_payload_mb=max_payload_mb,
            assemble_with=assemble,
            instance_count=instances,
            on_bad_record=on_bad_record,
            input_filter=input_filter,
            join_source="Input" if join_input else "None",
            output_filter=output_filter,
            environment=parse_assignments(env, "--env"),
        )
        if wait:
            _follow(c, job.name)
        else:
            show_json(job)


@transform.command("describe")
@click.argument("name")
@click.pass_context
def describe(ctx: click.Context, name: str) -> None:
    """A job's state, progress and options."""
    with client(ctx) as c:
        show_json(c.describe_transform(name))


@transform.command("list")
@click.option("--status", type=click.Choice(["InProgress", "Completed", "Failed", "Stopped"]))
@click.pass_context
def list_(ctx: click.Context, status: str | None) -> None:
    """List transform jobs."""
    with client(ctx) as c:
        rows = [
            (
                j.name,
                j.model,
                j.status.value,
                f"{j.progress.records_done:,}/{j.progress.records:,}",
                j.created_at.isoformat(timespec="seconds"),
            )
            for j in c.list_transforms(status)
        ]
    show_table("transform jobs", ("name", "model", "status", "records", "created"), rows)


@transform.command("stop")
@click.argument("name")
@click.pass_context
def stop(ctx: click.Context, name: str) -> None:
    """Stop a job: nothing new starts; files not yet complete get no output."""
    with client(ctx) as c:
        show_json(c.stop_transform(name))


@transform.command("wait")
@click.argument("name")
@click.pass_context
def wait_(ctx: click.Context, name: str) -> None:
    """Follow a job with a progress bar (records/s, time left) until it ends."""
    with client(ctx) as c:
        _follow(c, name)


def _follow(c: Client, name: str) -> None:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=False) as progress:
        task = progress.add_task(name, total=None, rate="")

        def show(job: TransformJobOut) -> None:
            p = job.progress
            rate = f"{p.records_per_s:,.0f} records/s" if p.records_per_s else ""
            progress.update(
                task,
                total=p.records or None,
                completed=p.records_done + p.records_failed,
                rate=rate,
            )

        job = c.wait_for_transform(name, on_progress=show)
    click.echo(f"{job.name}: {job.status.value}")
    if job.failure_reason:
        click.echo(job.failure_reason)
    click.echo(f"summary: {job.summary}")
    if job.status.value != "Completed":
        raise SystemExit(1)
