"""`sluice registry`: package groups, packages (with their lineage), approvals."""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Any

import click

from sluice.cli.common import client, parse_assignments, show_json, show_table
from sluice.cli.deploy import policy_from, policy_options


@click.group()
def registry() -> None:
    """The model registry: versioned model packages with approvals and lineage."""


def _user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


@registry.command("create-group")
@click.argument("name")
@click.option("--description")
@click.option(
    "--requires-approval", is_flag=True, help="Only Approved packages can be deployed from it."
)
@click.pass_context
def create_group(
    ctx: click.Context, name: str, description: str | None, requires_approval: bool
) -> None:
    """Create a model package group."""
    with client(ctx) as c:
        show_json(c.create_package_group(name, description, requires_approval))


@registry.command("groups")
@click.pass_context
def groups(ctx: click.Context) -> None:
    """List package groups."""
    with client(ctx) as c:
        rows = [
            (g.name, g.latest_version, "yes" if g.requires_approval else "no", g.description or "")
            for g in c.list_package_groups()
        ]
    show_table("model package groups", ("group", "versions", "approval", "description"), rows)


@registry.command("delete-group")
@click.argument("name")
@click.pass_context
def delete_group(ctx: click.Context, name: str) -> None:
    """Delete an empty package group."""
    with client(ctx) as c:
        c.delete_package_group(name)


@registry.command("register")
@click.argument("group")
@click.option("--artifact", required=True, help="A directory or model.tar.gz (path or URI).")
@click.option("--runtime", help="sklearn, onnx or python; detected from the files if absent.")
@click.option("--image", help="A container image name, used as a runtime hint.")
@click.option("--env", "env", multiple=True, metavar="KEY=VALUE", help="Model environment.")
@click.option("--description")
@click.option("--metric", "metrics", multiple=True, metavar="NAME=NUMBER")
@click.option("--meta", "metadata", multiple=True, metavar="KEY=VALUE", help="Free metadata.")
@click.option(
    "--data", "data", multiple=True, metavar="PATH", help="Training data (hashed; repeat)."
)
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="Training parameter.")
@click.option(
    "--params-file", type=click.Path(exists=True, dir_okay=False), help="Parameters as JSON."
)
@click.option("--parent", metavar="GROUP/VERSION", help="The package this one derives from.")
@click.option(
    "--code",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False),
    help="The git checkout whose commit is recorded.",
)
@click.option("--no-code", is_flag=True, help="Record no code version.")
@click.option("--approve", is_flag=True, help="Register as Approved.")
@click.pass_context
def register(
    ctx: click.Context,
    group: str,
    artifact: str,
    runtime: str | None,
    image: str | None,
    env: tuple[str, ...],
    description: str | None,
    metrics: tuple[str, ...],
    metadata: tuple[str, ...],
    data: tuple[str, ...],
    params: tuple[str, ...],
    params_file: str | None,
    parent: str | None,
    code: str,
    no_code: bool,
    approve: bool,
) -> None:
    """Register the next version of GROUP, with its lineage read from here.

    \b
    sluice registry register churn --artifact model.tar.gz --data train.csv \\
        --param C=0.5 --metric accuracy=0.93 --parent churn/3
    """
    from sluice import lineage
    from sluice.store.objects import local_path

    parameters: dict[str, Any] = json.loads(Path(params_file).read_text()) if params_file else {}
    parameters.update(parse_assignments(params, "--param"))
    numbers = {}
    for name, value in parse_assignments(metrics, "--metric").items():
        try:
            numbers[name] = float(value)
        except ValueError:
            raise click.BadParameter(
                f"{name}={value} is not a number", param_hint="--metric"
            ) from None
    found = lineage.collect(None if no_code else Path(code), data, parameters, parent)
    location = str(local_path(artifact)) if "://" not in artifact else artifact
    with client(ctx) as c:
        show_json(
            c.register_package(
                group,
                location,
                runtime=runtime,
                image=image,
                environment=parse_assignments(env, "--env"),
                description=description,
                approval="Approved" if approve else "PendingManualApproval",
                metrics=numbers,
                metadata=parse_assignments(metadata, "--meta"),
                lineage=found.to_dict(),
                created_by=_user(),
            )
        )


@registry.command("list")
@click.argument("group")
@click.option("--approval", type=click.Choice(["PendingManualApproval", "Approved", "Rejected"]))
@click.pass_context
def list_(ctx: click.Context, group: str, approval: str | None) -> None:
    """List the packages of a group."""
    with client(ctx) as c:
        packages = c.list_packages(group, approval)
    rows = [
        (
            p.ref,
            p.approval,
            ", ".join(f"{k}={v:g}" for k, v in sorted(p.metrics.items())),
            (p.lineage.get("code_commit") or "")[:12],
            p.created_at.isoformat(timespec="seconds"),
        )
        for p in packages
    ]
    show_table(group, ("package", "approval", "metrics", "commit", "registered"), rows)


@registry.command("describe")
@click.argument("package", metavar="GROUP/VERSION|GROUP@latest-approved")
@click.pass_context
def describe(ctx: click.Context, package: str) -> None:
    """Show one package, its lineage and history."""
    with client(ctx) as c:
        show_json(c.get_package(package))


@registry.command("approve")
@click.argument("package", metavar="GROUP/VERSION")
@click.option("--reason")
@click.option("--by", default=_user, show_default="the current user")
@click.option(
    "--deploy-to", "deploy_to", multiple=True, metavar="ENDPOINT", help="Update this endpoint."
)
@policy_options
@click.pass_context
def approve(
    ctx: click.Context,
    /,
    package: str,
    reason: str | None,
    by: str | None,
    deploy_to: tuple[str, ...],
    **policy: Any,
) -> None:
    """Approve a package; optionally update endpoints to it under a deployment policy.

    \b
    sluice registry approve churn/4 --reason "beats v3" --deploy-to churn --canary 10% --wait 5m
    """
    doc = policy_from(policy)
    with client(ctx) as c:
        answer = c.set_approval(package, "Approved", by, reason, deploy_to, doc)
    show_json(answer)
    if any(r.error for r in answer.rollouts):
        ctx.exit(1)


@registry.command("reject")
@click.argument("package", metavar="GROUP/VERSION")
@click.option("--reason")
@click.option("--by", default=_user, show_default="the current user")
@click.pass_context
def reject(ctx: click.Context, package: str, reason: str | None, by: str | None) -> None:
    """Reject a package (a group that requires approval will not deploy it)."""
    with client(ctx) as c:
        show_json(c.set_approval(package, "Rejected", by, reason).package)


@registry.command("update")
@click.argument("package", metavar="GROUP/VERSION")
@click.option("--description")
@click.option("--meta", "metadata", multiple=True, metavar="KEY=VALUE")
@click.option("--remove-meta", "remove", multiple=True, metavar="KEY")
@click.pass_context
def update(
    ctx: click.Context,
    package: str,
    description: str | None,
    metadata: tuple[str, ...],
    remove: tuple[str, ...],
) -> None:
    """Change a package's description or metadata (nothing else changes)."""
    with client(ctx) as c:
        show_json(
            c.update_package(
                package, description, parse_assignments(metadata, "--meta"), remove, _user()
            )
        )


@registry.command("delete")
@click.argument("package", metavar="GROUP/VERSION")
@click.pass_context
def delete(ctx: click.Context, package: str) -> None:
    """Delete a package no model uses."""
    with client(ctx) as c:
        c.delete_package(package)
