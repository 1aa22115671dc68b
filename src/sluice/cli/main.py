"""The `sluice` root group: subcommands load lazily; errors become one line and exit code 1."""

from __future__ import annotations

import importlib
import os
from typing import Any

import click

from sluice import __version__

SUBCOMMANDS = {
    "server": "sluice.cli.server:server",
    "demo": "sluice.cli.demo:demo",
    "models": "sluice.cli.models:models",
    "endpoint-configs": "sluice.cli.endpoints:endpoint_configs",
    "endpoints": "sluice.cli.endpoints:endpoints",
    "invoke": "sluice.cli.endpoints:invoke",
    "alarms": "sluice.cli.alarms:alarms",
    "ground-truth": "sluice.cli.labels:ground_truth",
    "outcomes": "sluice.cli.labels:outcomes",
    "report": "sluice.cli.report:report",
    "experiments": "sluice.cli.experiments:experiments",
    "registry": "sluice.cli.registry:registry",
    "lineage": "sluice.cli.lineage:lineage",
    "validate": "sluice.cli.validate:validate",
    "monitor": "sluice.cli.monitor:monitor",
    "credentials": "sluice.cli.credentials:credentials",
    "transform": "sluice.cli.transform:transform",
    "jobs": "sluice.cli.jobs:jobs",
    "pipeline": "sluice.cli.pipelines:pipeline",
}


class LazyGroup(click.Group):
    """Imports a subcommand only when it runs, so `sluice --help` stays fast."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = SUBCOMMANDS.get(name)
        if target is None:
            return None
        module, _, attr = target.partition(":")
        command = getattr(importlib.import_module(module), attr)
        assert isinstance(command, click.Command)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        from sluice.errors import SluiceError

        try:
            return super().invoke(ctx)
        except SluiceError as exc:
            where = f" ({exc.field})" if exc.field else ""
            raise click.ClickException(f"{exc.code}{where}: {exc.message}") from exc
        except Exception as exc:
            import httpx

            if isinstance(exc, httpx.TransportError):
                url = ctx.obj.get("url") if isinstance(ctx.obj, dict) else "the server"
                raise click.ClickException(
                    f"cannot reach {url} ({exc}); is `sluice server` running there? "
                    "Set --url or SLUICE_URL."
                ) from exc
            raise


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sluice")
@click.option(
    "--url",
    default=lambda: os.environ.get("SLUICE_URL", "http://127.0.0.1:8080"),
    show_default="$SLUICE_URL or http://127.0.0.1:8080",
    help="Address of the sluice server for client commands.",
)
@click.option(
    "--token",
    default=None,
    envvar="SLUICE_TOKEN",
    show_default="$SLUICE_TOKEN, else the admin token in the home's credentials file "
    "(for a server on this machine)",
    help="Bearer token for client commands.",
)
@click.pass_context
def cli(ctx: click.Context, url: str, token: str | None) -> None:
    """sluice: put models into production safely, on one laptop or a cluster."""
    ctx.obj = {"url": url, "token": token}


def main() -> None:
    cli(prog_name="sluice")


if __name__ == "__main__":
    main()
