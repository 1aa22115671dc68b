"""`sluice credentials`: the principals in a server's credentials file.

These commands edit the file under the home directly (as the operator who owns it); a
running server picks a change up within a second.
"""

from __future__ import annotations

from pathlib import Path

import click

from sluice.cli.common import show_table

HOME = click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The server's data directory  [default: $SLUICE_HOME, else ~/.sluice]",
)


def _path(home: Path | None) -> Path:
    from sluice.security.credentials import FILE_NAME
    from sluice.settings import default_home

    return (home or default_home()).expanduser() / FILE_NAME


@click.group()
def credentials() -> None:
    """Principals (role, bearer token, AWS key pair) a server accepts."""


@credentials.command("create")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(["invoke", "admin"]),
    required=True,
    help="invoke: inference and ground truth only; admin: everything.",
)
@HOME
def create(name: str, role: str, home: Path | None) -> None:
    """Add a principal with a new token and AWS key pair, and print them (once)."""
    from sluice.security.credentials import Role, new_principal, read_file, write_file

    path = _path(home)
    existing = read_file(path)
    if any(p.name == name for p in existing):
        raise click.ClickException(f"a principal named {name!r} exists in {path}")
    principal = new_principal(name, Role(role))
    write_file(path, [*existing, principal])
    _print(principal, env=False)


@credentials.command("list")
@HOME
def list_(home: Path | None) -> None:
    """Names, roles and access key ids (no secrets)."""
    from sluice.security.credentials import read_file

    show_table(
        "principals",
        ["name", "role", "token", "aws access key id"],
        [
            (p.name, p.role.value, "yes" if p.token else "no", p.aws_access_key_id or "")
            for p in read_file(_path(home))
        ],
    )


@credentials.command("show")
@click.argument("name", default="admin")
@click.option("--env", is_flag=True, help="As shell export lines.")
@HOME
def show(name: str, env: bool, home: Path | None) -> None:
    """Print one principal's token and AWS key pair."""
    from sluice.security.credentials import read_file

    path = _path(home)
    for principal in read_file(path):
        if principal.name == name:
            _print(principal, env)
            return
    raise click.ClickException(f"no principal named {name!r} in {path}")


@credentials.command("delete")
@click.argument("name")
@HOME
def delete(name: str, home: Path | None) -> None:
    """Remove a principal: its token and key stop working within a second."""
    from sluice.security.credentials import read_file, write_file

    path = _path(home)
    principals = read_file(path)
    kept = [p for p in principals if p.name != name]
    if len(kept) == len(principals):
        raise click.ClickException(f"no principal named {name!r} in {path}")
    write_file(path, kept)
    click.echo(f"deleted {name}")


def _print(principal: object, env: bool) -> None:
    from sluice.security.credentials import Principal

    assert isinstance(principal, Principal)
    values = {
        "SLUICE_TOKEN": principal.token,
        "AWS_ACCESS_KEY_ID": principal.aws_access_key_id,
        "AWS_SECRET_ACCESS_KEY": principal.aws_secret_access_key,
    }
    if not env:
        click.echo(f"{principal.name} ({principal.role.value})")
    for key, value in values.items():
        if value:
            click.echo(f"export {key}={value}" if env else f"  {key}={value}")


@credentials.command("webhook-secret")
@HOME
def webhook_secret(home: Path | None) -> None:
    """Print the key that signs webhook bodies (X-Sluice-Signature), creating it if new."""
    from sluice.security.credentials import secret_file
    from sluice.settings import default_home

    click.echo(secret_file((home or default_home()).expanduser() / "webhook-secret").decode())
