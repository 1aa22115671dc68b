"""`sluice server`: the platform on one port."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option("--host", default=None, help="Interface to listen on  [default: 127.0.0.1]")
@click.option("--port", type=int, default=None, help="Port  [default: 8080]")
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Data directory  [default: $SLUICE_HOME, else ~/.sluice]",
)
@click.option(
    "--insecure-local",
    is_flag=True,
    default=None,
    help="Turn authentication off (loopback --host only): anyone on this machine may then "
    "deploy models, and a model is code.",
)
@click.option(
    "--backend",
    type=click.Choice(["local", "ray"]),
    default=None,
    help="Where instances run: worker processes here, or Ray actors  [default: local]",
)
@click.option(
    "--ray-address",
    default=None,
    help="The Ray cluster to join (auto, or the head's host:port)  [default: a Ray of its own]",
)
def server(
    host: str | None,
    port: int | None,
    home: Path | None,
    insecure_local: bool | None,
    backend: str | None,
    ray_address: str | None,
) -> None:
    """Run the sluice server until SIGTERM or Ctrl-C, then stop cleanly.

    Every request needs credentials (a bearer token or an AWS signature) unless
    --insecure-local is given; on first start with none configured, an admin principal is
    written to <home>/credentials.json (`sluice credentials show`)."""
    from sluice.server import serve
    from sluice.settings import Settings

    overrides: dict[str, object] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    if home is not None:
        overrides["home"] = home.expanduser().resolve()
    if insecure_local:
        overrides["insecure_local"] = True
    if backend is not None:
        overrides["backend"] = backend
    if ray_address is not None:
        overrides["ray_address"] = ray_address
    serve(Settings(**overrides))  # type: ignore[arg-type]
