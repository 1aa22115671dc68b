"""`sluice monitor`: baselines for data-quality monitoring."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.group()
def monitor() -> None:
    """Model monitoring: baselines and checks of captured data."""


@monitor.command("baseline")
@click.option(
    "--data", required=True, type=click.Path(dir_okay=False), help="Training CSV or JSONL."
)
@click.option(
    "--schema",
    type=click.Path(dir_okay=False, exists=True),
    help='JSON of column types: {"zip": "String", "age": "Integral", ...}.',
)
@click.option(
    "--out",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where statistics.json and constraints.json go.",
)
def baseline(data: str, schema: str | None, out: str) -> None:
    """Statistics (as sketches) and suggested constraints from training data, in
    SageMaker Model Monitor's formats."""
    from sluice.monitor.baseline import baseline as compute

    types = json.loads(Path(schema).read_text()) if schema else None
    statistics, constraints = compute(Path(data), types)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "statistics.json").write_text(json.dumps(statistics, indent=1))
    (folder / "constraints.json").write_text(json.dumps(constraints, indent=1))
    features = len(statistics["features"])
    rows = statistics["dataset"]["item_count"]
    click.echo(f"{rows} rows, {features} features: {folder / 'statistics.json'}, "
               f"{folder / 'constraints.json'}")  # fmt: skip
