"""Helpers shared by the client subcommands: the client, key=value parsing, output."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from pydantic import BaseModel
    from rich.table import Table

    from sluice.client import Client


def client(ctx: click.Context) -> Client:
    from sluice.client import Client

    return Client(ctx.obj["url"], token=ctx.obj.get("token"))


def parse_pairs(text: str, option: str) -> dict[str, str]:
    """'name=A,model=m,weight=1' -> {'name': 'A', 'model': 'm', 'weight': '1'}."""
    pairs: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected key=value, got {part!r}", param_hint=option)
        pairs[key.strip().replace("-", "_")] = value.strip()
    return pairs


def parse_assignments(values: Iterable[str], option: str) -> dict[str, str]:
    """('A=0.5', 'B=0.5') -> {'A': '0.5', 'B': '0.5'}."""
    result: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected NAME=VALUE, got {item!r}", param_hint=option)
        result[key] = value
    return result


def show_json(value: BaseModel | Sequence[BaseModel]) -> None:
    from rich.console import Console

    data: Any = (
        [v.model_dump(mode="json") for v in value]
        if isinstance(value, Sequence)
        else value.model_dump(mode="json")
    )
    Console().print_json(json.dumps(data))


def show_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    from rich.console import Console

    Console().print(table(title, columns, rows))


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    from rich.table import Table

    result = Table(title=title)
    for column in columns:
        result.add_column(column)
    for row in rows:
        result.add_row(*("" if cell is None else str(cell) for cell in row))
    return result
