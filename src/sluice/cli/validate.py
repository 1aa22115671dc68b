"""`sluice validate`: the CI gate. A candidate package against a baseline package or the
model an endpoint serves, on a fixed validation set, through the serving runtimes."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from sluice.cli.common import client
from sluice.gate import CLASSIFICATION, REGRESSION

if TYPE_CHECKING:
    from sluice.client import Client
    from sluice.gate.run import ModelSource


def share(text: str, option: str) -> tuple[float, bool]:
    """'0.01' -> (0.01, False); '2%' -> (0.02, True): absolute, or relative to the baseline."""
    raw = text.strip()
    relative = raw.endswith("%")
    try:
        value = float(raw.rstrip("%")) / (100 if relative else 1)
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not a number or a percentage", param_hint=option
        ) from None
    if value < 0:
        raise click.BadParameter("a limit cannot be negative", param_hint=option)
    return value, relative


@click.command()
@click.option("--candidate", required=True, metavar="GROUP/VERSION", help="The package to gate.")
@click.option(
    "--baseline",
    required=True,
    metavar="GROUP/VERSION|ENDPOINT",
    help="A package, or an endpoint (the model its heaviest production variant serves).",
)
@click.option(
    "--data", required=True, type=click.Path(dir_okay=False), help="Validation CSV or JSONL."
)
@click.option("--label", required=True, help="The label column.")
@click.option(
    "--metric",
    default="accuracy",
    show_default=True,
    type=click.Choice([*CLASSIFICATION, *REGRESSION]),
    help="The gated metric (classification: the first four; regression: the rest).",
)
@click.option(
    "--max-drop",
    default="0",
    show_default=True,
    help="Allowed worsening of the metric: absolute (0.01) or relative to the baseline (2%).",
)
@click.option("--max-latency-increase", help="Allowed rise of median latency, e.g. 20%.")
@click.option(
    "--significant", is_flag=True, help="Fail only when the drop is significant (CI beyond it)."
)
@click.option("--confidence", default=0.95, show_default=True, type=click.FloatRange(0.5, 0.999))
@click.option("--problem", type=click.Choice(["classification", "regression"]))
@click.option("--junit", type=click.Path(dir_okay=False), help="Write JUnit XML here.")
@click.option("--markdown", type=click.Path(dir_okay=False), help="Write a Markdown summary here.")
@click.option(
    "--report",
    type=click.Path(dir_okay=False),
    help="Where the JSON result goes (default: sluice-validation-GROUP-VERSION.json).",
)
@click.option(
    "--record/--no-record",
    default=True,
    show_default=True,
    help="Attach the result to the candidate as an evaluation report.",
)
@click.pass_context
def validate(
    ctx: click.Context,
    candidate: str,
    baseline: str,
    data: str,
    label: str,
    metric: str,
    max_drop: str,
    max_latency_increase: str | None,
    significant: bool,
    confidence: float,
    problem: str | None,
    junit: str | None,
    markdown: str | None,
    report: str | None,
    record: bool,
) -> None:
    """Fail the build when a candidate model is worse than the baseline.

    \b
    sluice validate --candidate churn/5 --baseline churn --data validation.csv \\
        --label churned --metric auc --max-drop 0.01 --max-latency-increase 20% \\
        --junit gate.xml --markdown gate.md

    Exit status: 0 passed, 1 failed (or could not run), 2 bad usage.
    """
    from rich.console import Console

    from sluice.gate import check, outputs
    from sluice.gate.data import load
    from sluice.gate.run import run_both

    drop, relative = share(max_drop, "--max-drop")
    latency = (
        share(max_latency_increase, "--max-latency-increase")[0] if max_latency_increase else None
    )
    limits = check.Limits(metric, drop, relative, latency, significant, confidence)
    started = time.perf_counter()
    validation = load(Path(data), label, problem)
    with client(ctx) as c:
        package = c.get_package(candidate)
        chosen = _package_source(c, candidate)
        against = (
            _package_source(c, baseline)
            if re.search(r"[/@]", baseline)
            else _endpoint_source(c, baseline)
        )
        answers = run_both(chosen, against, validation)
        verdict = check.judge(validation, *answers, limits, (chosen.label, against.label))
        seconds = time.perf_counter() - started
        target = Path(report or f"sluice-validation-{package.group}-{package.version}.json")
        document = json.dumps({**verdict.to_dict(), "seconds": round(seconds, 3)}, indent=1)
        target.write_text(document)
        if record:  # the server keeps a copy: a CI workspace does not last
            quality = {
                f"validation.{x.name}": x.candidate for x in verdict.checks if x.unit != "ms"
            }
            c.attach_report(
                package.ref,
                f"validation-vs-{_slug(against.label)}.json",
                metrics=quality,
                content=document,
            )
    Console().print(outputs.table(verdict))
    if junit:
        Path(junit).write_text(outputs.junit_xml(verdict, seconds))
    summary = markdown or os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with Path(summary).open("a" if not markdown else "w") as f:
            f.write(outputs.markdown(verdict))
    if not verdict.passed:
        failed = ", ".join(x.name for x in verdict.failures)
        click.echo(f"validation gate failed: {failed}", err=True)
        ctx.exit(1)


def _package_source(c: Client, ref: str) -> ModelSource:
    from sluice.gate.run import ModelSource

    package = c.get_package(ref)
    container = package.containers[0]
    return ModelSource(
        package.ref,
        container["artifact_uri"],
        container.get("runtime"),
        container.get("image"),
        dict(container.get("environment") or {}),
    )


def _endpoint_source(c: Client, name: str) -> ModelSource:
    from sluice.gate.run import ModelSource

    endpoint = c.get_endpoint(name)
    production = [v for v in endpoint.variants if v.kind == "production"]
    if not production:
        raise click.ClickException(f"endpoint {name!r} has no production variant")
    variant = max(production, key=lambda v: v.current_weight)
    model = c.get_model(variant.model)
    return ModelSource(
        f"endpoint {name} ({variant.name}: {model.name})",
        model.artifact,
        model.runtime,
        model.image,
        dict(model.environment),
    )


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")[:60] or "baseline"
