"""`sluice lineage`: back from an endpoint, variant or inference to the package; forward
from a package to the endpoints that served it. A readable tree, or JSON."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import click

from sluice.cli.common import client

if TYPE_CHECKING:
    from rich.tree import Tree


@click.command()
@click.option("--endpoint", help="Start from an endpoint (or where to look for --inference-id).")
@click.option("--variant", help="Only this variant of --endpoint.")
@click.option("--inference-id", help="Start from a captured inference.")
@click.option("--package", metavar="GROUP/VERSION", help="Start from a package, going forward.")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a tree.")
@click.pass_context
def lineage(
    ctx: click.Context,
    endpoint: str | None,
    variant: str | None,
    inference_id: str | None,
    package: str | None,
    as_json: bool,
) -> None:
    """Where a prediction's model came from, or where a package went.

    \b
    sluice lineage --endpoint churn                  # what it serves, back to the data
    sluice lineage --inference-id req-123 --endpoint churn
    sluice lineage --package churn/4                 # every endpoint that served it
    """
    with client(ctx) as c:
        found = c.lineage(endpoint, variant, inference_id, package)
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    from rich.console import Console

    Console().print(render(found))


def render(found: dict[str, Any]) -> Tree:
    from rich.tree import Tree

    if "package" in found and "models" in found:
        tree = Tree(f"[bold]package {found['package']['ref']}[/]")
        _package(tree, found["package"])
        models = tree.add("models made from it")
        for name in found["models"] or ["(none)"]:
            models.add(name)
        served = tree.add("served by")
        for period in found["endpoints"]:
            _period(served, period)
        if not found["endpoints"]:
            served.add("(no endpoint)")
        return tree
    if "inference_id" in found:
        tree = Tree(
            f"[bold]inference {found['inference_id']}[/] on {found['endpoint']}/"
            f"{found['variant']} at {found['time']}"
        )
        if found["ambiguous"]:
            tree.add("[yellow]answered during a deployment: either config below[/]")
        for entry in found["served_by"]:
            _variant(tree.add(f"config {entry['config']}"), entry)
        return tree
    tree = Tree(f"[bold]endpoint {found['endpoint']}[/] (config {found['config']})")
    for entry in found["variants"]:
        _variant(tree, entry)
    history = tree.add("served over time")
    for period in found["history"]:
        _period(history, period)
    return tree


def _period(parent: Tree, period: dict[str, Any]) -> None:
    until = period["until"] or "now"
    via = f", deployment {period['deployment']}" if period["deployment"] else ""
    parent.add(
        f"{period['endpoint']}/{period['variant']} ({period['kind']}): model {period['model']}"
        f" (config {period['config']}{via}) from {period['since']} to {until}"
    )


def _variant(parent: Tree, entry: dict[str, Any]) -> None:
    model = entry["model"]
    node = parent.add(f"variant {entry['variant']} ({entry['kind']}) -> model {model['name']}")
    if model.get("deleted"):
        node.add("[red]model deleted[/]")
        return
    node.add(f"artifact {model['artifact']} ({model['runtime']})")
    package = entry.get("package")
    if package is None:
        node.add("[dim]not from the registry[/]")
    elif package.get("deleted"):
        node.add(f"[red]package {package['ref']} deleted[/]")
    else:
        _package(node.add(f"package {package['ref']}"), package)


def _package(node: Tree, package: dict[str, Any]) -> None:
    approval = package["approval"]
    if package.get("approval_by"):
        approval += f" by {package['approval_by']}"
    if package.get("approval_reason"):
        approval += f": {package['approval_reason']}"
    node.add(f"approval {approval}")
    code = package["code"]
    if code["commit"]:
        dirty = " [yellow](uncommitted changes)[/]" if code["dirty"] else ""
        node.add(f"code {code['repository'] or ''} @ {code['commit'][:12]}{dirty}")
    for data in package["data"]:
        node.add(f"data {data['uri']} sha256:{data['sha256'][:16]} ({data['size_bytes']} B)")
    if package["parameters"]:
        node.add("parameters " + ", ".join(f"{k}={v}" for k, v in package["parameters"].items()))
    build = package["build"]
    if build["id"]:
        node.add(f"build {build['system']} {build['id']} {build['url'] or ''}".rstrip())
    for parent in package["parents"]:
        node.add(f"derived from {parent['ref']}")
