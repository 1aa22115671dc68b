"""`sluice demo`: the whole story end to end on bundled data."""

from __future__ import annotations

import sys

import click


@click.command()
@click.option("--keep-home", is_flag=True, help="Keep the temporary home (capture, logs).")
def demo(keep_home: bool) -> None:
    """Train two models, shadow-test the candidate on live traffic, compare them."""
    from sluice.demo import run

    sys.exit(run(keep_home=keep_home))
