"""`sluice endpoint-configs`, `sluice endpoints` and `sluice invoke`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from sluice.cli.common import client, parse_assignments, parse_pairs, show_json, show_table

VARIANT_KEYS = {"name", "model", "weight", "instances"}
SHADOW_KEYS = {"name", "model", "instances", "sampling", "sampling_percentage"}


@click.group("endpoint-configs")
def endpoint_configs() -> None:
    """Endpoint configs: immutable recipes of variants, shadows and data capture."""


@endpoint_configs.command("create")
@click.argument("name")
@click.option(
    "--variant",
    "variants",
    multiple=True,
    metavar="name=A,model=M[,weight=1][,instances=1]",
    help="A production variant (repeat for several).",
)
@click.option(
    "--shadow",
    "shadows",
    multiple=True,
    metavar="name=S,model=M[,sampling=100][,instances=1]",
    help="A shadow variant that gets copies of production requests.",
)
@click.option("--capture/--no-capture", default=False, help="Capture requests and answers.")
@click.option("--capture-percent", type=click.IntRange(0, 100), default=100, show_default=True)
@click.option("--capture-dir", help="Capture destination (directory or file://).")
@click.option("--sticky-header", help="Header whose value keeps a caller on one variant.")
@click.option(
    "--file",
    "file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A JSON file with the whole config (the native API's body).",
)
@click.pass_context
def create_config(
    ctx: click.Context,
    name: str,
    variants: tuple[str, ...],
    shadows: tuple[str, ...],
    capture: bool,
    capture_percent: int,
    capture_dir: str | None,
    sticky_header: str | None,
    file: Path | None,
) -> None:
    """Create an endpoint config."""
    if file is not None:
        doc = json.loads(file.read_text())
        doc.setdefault("name", name)
    else:
        if not variants:
            raise click.UsageError("give at least one --variant (or --file)")
        doc = {
            "name": name,
            "variants": [variant_spec(v, VARIANT_KEYS, "--variant") for v in variants],
            "shadows": [variant_spec(s, SHADOW_KEYS, "--shadow") for s in shadows],
            "data_capture": {"sampling_percentage": capture_percent, "destination": capture_dir}
            if capture
            else None,
            "sticky_header": sticky_header,
        }
    with client(ctx) as c:
        show_json(
            c.create_endpoint_config(
                doc["name"],
                doc["variants"],
                doc.get("shadows", []),
                doc.get("data_capture"),
                doc.get("sticky_header"),
            )
        )


def variant_spec(text: str, allowed: set[str], option: str) -> dict[str, Any]:
    pairs = parse_pairs(text, option)
    unknown = set(pairs) - allowed
    if unknown:
        raise click.BadParameter(
            f"unknown keys {sorted(unknown)}; use {sorted(allowed)}", param_hint=option
        )
    if "name" not in pairs or "model" not in pairs:
        raise click.BadParameter("name= and model= are required", param_hint=option)
    result: dict[str, Any] = {"name": pairs["name"], "model": pairs["model"]}
    try:
        if "weight" in pairs:
            result["weight"] = float(pairs["weight"])
        if "instances" in pairs:
            result["instances"] = int(pairs["instances"])
        sampling = pairs.get("sampling", pairs.get("sampling_percentage"))
        if sampling is not None:
            result["sampling_percentage"] = int(sampling)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from exc
    return result


@endpoint_configs.command("list")
@click.pass_context
def list_configs(ctx: click.Context) -> None:
    """List endpoint configs."""
    with client(ctx) as c:
        rows = [
            (
                cfg.name,
                ", ".join(f"{v.name}:{v.model}" for v in cfg.variants),
                ", ".join(f"{s.name}:{s.model}" for s in cfg.shadows),
                "on" if cfg.data_capture and cfg.data_capture.enabled else "off",
            )
            for cfg in c.list_endpoint_configs()
        ]
    show_table("endpoint configs", ("name", "variants", "shadows", "capture"), rows)


@endpoint_configs.command("describe")
@click.argument("name")
@click.pass_context
def describe_config(ctx: click.Context, name: str) -> None:
    """Show one endpoint config."""
    with client(ctx) as c:
        show_json(c.get_endpoint_config(name))


@endpoint_configs.command("delete")
@click.argument("name")
@click.pass_context
def delete_config(ctx: click.Context, name: str) -> None:
    """Delete an endpoint config."""
    with client(ctx) as c:
        c.delete_endpoint_config(name)
    click.echo(f"deleted endpoint config {name}")


@click.group()
def endpoints() -> None:
    """Endpoints: live entry points built from an endpoint config."""


@endpoints.command("create")
@click.argument("name")
@click.option("--config", required=True, help="The endpoint config to build it from.")
@click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="Wait until it is InService (or Failed).",
)
@click.option("--timeout", type=float, default=300, show_default=True)
@click.pass_context
def create_endpoint(ctx: click.Context, name: str, config: str, wait: bool, timeout: float) -> None:
    """Create an endpoint and start its workers."""
    with client(ctx) as c:
        endpoint = c.create_endpoint(name, config)
        if wait:
            from rich.console import Console

            with Console(stderr=True).status(f"starting {name} ..."):
                endpoint = c.wait_for_endpoint(name, timeout)
    show_json(endpoint)


@endpoints.command("list")
@click.pass_context
def list_endpoints(ctx: click.Context) -> None:
    """List endpoints."""
    with client(ctx) as c:
        rows = [
            (
                ep.name,
                ep.status,
                ep.config,
                ", ".join(
                    f"{v.name}={v.current_weight:g}" for v in ep.variants if v.kind == "production"
                ),
                ", ".join(v.name for v in ep.variants if v.kind == "shadow"),
            )
            for ep in c.list_endpoints()
        ]
    show_table("endpoints", ("name", "status", "config", "weights", "shadows"), rows)


@endpoints.command("describe")
@click.argument("name")
@click.pass_context
def describe_endpoint(ctx: click.Context, name: str) -> None:
    """Show one endpoint with its variants."""
    with client(ctx) as c:
        show_json(c.get_endpoint(name))


@endpoints.command("update-weights")
@click.argument("name")
@click.argument("weights", nargs=-1, metavar="[VARIANT=WEIGHT]...")
@click.option(
    "--instances",
    "instances",
    multiple=True,
    metavar="VARIANT=COUNT",
    help="New instance count of a variant (repeat); reached in the background.",
)
@click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="Wait until new instance counts are reached.",
)
@click.pass_context
def update_weights(
    ctx: click.Context, name: str, weights: tuple[str, ...], instances: tuple[str, ...], wait: bool
) -> None:
    """Change weights and instance counts live, e.g. `A=0.9 B=0.1 --instances A=3`."""
    if not weights and not instances:
        raise click.UsageError("give VARIANT=WEIGHT pairs, --instances VARIANT=COUNT, or both")
    try:
        parsed = {k: float(v) for k, v in parse_assignments(weights, "WEIGHTS").items()}
        counts = {k: int(v) for k, v in parse_assignments(instances, "--instances").items()}
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="WEIGHTS") from exc
    with client(ctx) as c:
        endpoint = c.update_weights(name, parsed, counts)
        if counts and wait:
            endpoint = c.wait_for_endpoint(name)
        show_json(endpoint)


@endpoints.command("delete")
@click.argument("name")
@click.pass_context
def delete_endpoint(ctx: click.Context, name: str) -> None:
    """Delete an endpoint: finish in-flight requests, flush capture, stop workers."""
    with client(ctx) as c:
        c.delete_endpoint(name)
    click.echo(f"deleted endpoint {name}")


@click.command()
@click.argument("endpoint")
@click.option("--data", "-d", help="The request body; '@FILE' reads a file, '-' reads stdin.")
@click.option("--content-type", default="application/json", show_default=True)
@click.option("--accept", default="application/json", show_default=True)
@click.option("--target-variant", help="Send to this production variant.")
@click.option("--inference-id", help="Id recorded with the captured request.")
@click.option("--target-model", help="A multi-model endpoint's model: its key under the prefix.")
@click.option("--target-container", help="The container to invoke (containers invoked directly).")
@click.option("--header", "-H", "headers", multiple=True, metavar="NAME=VALUE")
@click.option(
    "--async",
    "asynchronous",
    is_flag=True,
    help="Queue the request on an async endpoint (InvokeEndpointAsync); --input names the body.",
)
@click.option(
    "--input",
    "input_location",
    help="--async: the body's s3:// or file:// URI on the server, or a file here (uploaded).",
)
@click.option("--priority", type=int, default=0, show_default=True, help="--async: higher first.")
@click.option("--wait", is_flag=True, help="--async: wait for the answer and print it.")
@click.pass_context
def invoke(
    ctx: click.Context,
    endpoint: str,
    data: str | None,
    content_type: str,
    accept: str,
    target_variant: str | None,
    inference_id: str | None,
    target_model: str | None,
    target_container: str | None,
    headers: tuple[str, ...],
    asynchronous: bool,
    input_location: str | None,
    priority: int,
    wait: bool,
) -> None:
    """Send one request to an endpoint and print the answer (or, with --async, queue it
    and print where its answer will be)."""
    if asynchronous:
        if input_location is None:
            raise click.UsageError("--async needs --input (the request body's location)")
        _invoke_async(
            ctx, endpoint, input_location, content_type, accept, inference_id, priority, wait
        )
        return
    if input_location is not None or wait:
        raise click.UsageError("--input and --wait go with --async")
    if data is None or data == "-":
        body = sys.stdin.buffer.read()
    elif data.startswith("@"):
        body = Path(data[1:]).read_bytes()
    else:
        body = data.encode()
    with client(ctx) as c:
        answer = c.invoke(
            endpoint,
            body,
            content_type,
            accept,
            target_variant,
            inference_id,
            parse_assignments(headers, "--header"),
            target_model=target_model,
            target_container=target_container,
        )
    click.echo(f"variant: {answer.variant}", err=True)
    sys.stdout.buffer.write(answer.body + (b"" if answer.body.endswith(b"\n") else b"\n"))


def _invoke_async(
    ctx: click.Context,
    endpoint: str,
    input_location: str,
    content_type: str,
    accept: str,
    inference_id: str | None,
    priority: int,
    wait: bool,
) -> None:
    with client(ctx) as c:
        state = c.invoke_async(
            endpoint, input_location, content_type, accept, inference_id, priority
        )
        if not wait:
            show_json(state)
            return
        state = c.wait_for_async(endpoint, state.inference_id)
        click.echo(f"{state.inference_id}: {state.status.value}", err=True)
        if state.status.value in ("Succeeded", "Failed"):
            output = c.async_output(endpoint, state.inference_id)
            sys.stdout.buffer.write(output + (b"" if output.endswith(b"\n") else b"\n"))
    if state.status.value != "Succeeded":
        ctx.exit(1)


# Guarded updates live in their own module; importing it adds them to `sluice endpoints`.
from sluice.cli import deploy  # noqa: E402, F401
