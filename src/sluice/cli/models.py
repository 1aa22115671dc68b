"""`sluice models`: create, list, describe and delete models."""

from __future__ import annotations

import click

from sluice.cli.common import client, parse_assignments, show_json, show_table


@click.group()
def models() -> None:
    """Models: an artifact plus the runtime that loads it."""


@models.command("create")
@click.argument("name")
@click.option("--artifact", help="A directory or model.tar.gz (path, file:// or s3://).")
@click.option(
    "--package",
    metavar="GROUP/VERSION|GROUP@latest-approved",
    help="Make the model from a registry package instead of an artifact.",
)
@click.option("--runtime", help="sklearn, onnx or python; detected from the files if absent.")
@click.option("--image", help="A container image name, used as a runtime hint.")
@click.option("--env", "env", multiple=True, metavar="KEY=VALUE", help="Model environment.")
@click.option(
    "--multi-model",
    is_flag=True,
    help="--artifact is a prefix (a folder or s3:// prefix): every model under it is "
    "served, named per request (`sluice invoke --target-model`).",
)
@click.pass_context
def create(
    ctx: click.Context,
    name: str,
    artifact: str | None,
    package: str | None,
    runtime: str | None,
    image: str | None,
    env: tuple[str, ...],
    multi_model: bool,
) -> None:
    """Register a model, from an artifact or from a registry package."""
    from sluice.store.objects import local_path

    if (artifact is None) == (package is None):
        raise click.UsageError("give --artifact or --package")
    with client(ctx) as c:
        if package is not None:
            show_json(c.create_model(name, package=package))
            return
        assert artifact is not None
        # The server reads the artifact, so hand it an absolute path.
        location = str(local_path(artifact)) if "://" not in artifact else artifact
        environment = parse_assignments(env, "--env")
        show_json(
            c.create_model(name, location, runtime, image, environment, multi_model=multi_model)
        )


@models.command("list")
@click.pass_context
def list_(ctx: click.Context) -> None:
    """List models."""
    with client(ctx) as c:
        rows = [
            (m.name, m.runtime, m.artifact, m.created_at.isoformat(timespec="seconds"))
            for m in c.list_models()
        ]
    show_table("models", ("name", "runtime", "artifact", "created"), rows)


@models.command("describe")
@click.argument("name")
@click.pass_context
def describe(ctx: click.Context, name: str) -> None:
    """Show one model."""
    with client(ctx) as c:
        show_json(c.get_model(name))


@models.command("delete")
@click.argument("name")
@click.pass_context
def delete(ctx: click.Context, name: str) -> None:
    """Delete a model (endpoints already running it keep running)."""
    with client(ctx) as c:
        c.delete_model(name)
    click.echo(f"deleted model {name}")
