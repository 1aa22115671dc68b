"""An execution's files: SageMaker's constraint_violations.json and statistics.json, the
full report.json, and report.html (self-contained: inline CSS and SVG, no data rows)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import jinja2

from sluice.monitor.check import CheckResult
from sluice.reports import charts
from sluice.reports.html import number, percent

FILES = ("constraint_violations.json", "statistics.json", "report.json", "report.html")

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("sluice.monitor", "templates"),
    autoescape=True,
    undefined=jinja2.ChainableUndefined,
)


def write(result: CheckResult, folder: Path, title: str = "") -> dict[str, str]:
    """Write every file into `folder`; returns {name: path}."""
    folder.mkdir(parents=True, exist_ok=True)
    documents: dict[str, Any] = {
        "constraint_violations.json": result.violations,
        "statistics.json": result.statistics,
        "report.json": result.report,
    }
    paths = {}
    for name, document in documents.items():
        (folder / name).write_text(json.dumps(document, indent=1, default=_plain))
        paths[name] = str(folder / name)
    (folder / "report.html").write_text(html(result.report, title))
    paths["report.html"] = str(folder / "report.html")
    return paths


def html(report: dict[str, Any], title: str = "") -> str:
    if report["kind"] == "model_quality":
        return _env.get_template("model_quality.html.j2").render(
            report=report,
            title=title or "ad hoc check",
            generated=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            num=number,
        )
    return _env.get_template("data_quality.html.j2").render(
        report=report,
        title=title or "ad hoc check",
        generated=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        charts={f["name"]: _chart(f) for f in report["features"]},
        num=number,
        pct=percent,
    )


def _chart(feature: dict[str, Any]) -> str:
    chart = feature.get("chart")
    if not chart:
        return ""
    if "categories" in chart:
        labels = [str(c) for c in chart["categories"]]
        reference, current = chart["reference"], chart["current"]
    else:
        edges = chart["edges"]
        labels = ["below"] + [f"{edges[i]:.3g}" for i in range(len(edges) - 1)] + ["above"]
        reference = [0.0, *chart["reference"], 0.0]
        current = [chart["current_below"], *chart["current"], chart["current_above"]]
    return charts.paired_bars(
        f"{feature['name']}: share of rows", labels, [("baseline", reference), ("current", current)]
    )


def _plain(value: Any) -> Any:
    """numpy scalars and the like as plain JSON values."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON")
