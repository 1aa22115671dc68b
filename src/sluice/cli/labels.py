"""`sluice ground-truth` and `sluice outcomes`: labels and business outcomes, posted later
by inference id, for shadow tests, A/B tests and monitors to join."""

from __future__ import annotations

from pathlib import Path

import click

from sluice.cli.common import client

CONTENT_TYPES = {".jsonl": "application/jsonlines", ".json": "application/json", ".csv": "text/csv"}


def _content_type(path: Path) -> str:
    kind = CONTENT_TYPES.get(path.suffix.lower())
    if kind is None:
        raise click.BadParameter(
            f"{path.name}: use a .jsonl, .json or .csv file", param_hint="FILE"
        )
    return kind


@click.group("ground-truth")
def ground_truth() -> None:
    """Ground truth: the right answer for captured inferences, by inference id."""


@ground_truth.command("put")
@click.argument("endpoint")
@click.argument("inference_id")
@click.argument("label")
@click.pass_context
def put_label(ctx: click.Context, endpoint: str, inference_id: str, label: str) -> None:
    """Post one label."""
    with client(ctx) as c:
        c.put_ground_truth(endpoint, [{"inference_id": inference_id, "label": label}])
    click.echo(f"1 label stored for {endpoint}")


@ground_truth.command("upload")
@click.argument("endpoint")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
def upload_labels(ctx: click.Context, endpoint: str, file: Path) -> None:
    """Post a file of labels: JSON Lines ({"inference_id", "label"} or SageMaker
    ground-truth records) or CSV with a header row (inference_id,label)."""
    with client(ctx) as c:
        count = c.put_ground_truth(endpoint, file.read_bytes(), _content_type(file))
    click.echo(f"{count} labels stored for {endpoint}")


@click.group("outcomes")
def outcomes() -> None:
    """Business outcomes of inferences (conversions, clicks, revenue), for A/B tests."""


@outcomes.command("put")
@click.argument("endpoint")
@click.argument("inference_id")
@click.argument("name")
@click.argument("value", type=float)
@click.pass_context
def put_outcome(
    ctx: click.Context, endpoint: str, inference_id: str, name: str, value: float
) -> None:
    """Post one outcome."""
    with client(ctx) as c:
        c.put_outcomes(endpoint, [{"inference_id": inference_id, "name": name, "value": value}])
    click.echo(f"1 outcome stored for {endpoint}")


@outcomes.command("upload")
@click.argument("endpoint")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
def upload_outcomes(ctx: click.Context, endpoint: str, file: Path) -> None:
    """Post a file of outcomes: JSON Lines or CSV (inference_id,name,value)."""
    with client(ctx) as c:
        count = c.put_outcomes(endpoint, file.read_bytes(), _content_type(file))
    click.echo(f"{count} outcomes stored for {endpoint}")
