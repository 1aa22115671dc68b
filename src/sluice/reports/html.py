"""The report as one self-contained HTML page (inline CSS and SVG; opens offline)."""

from __future__ import annotations

import time
from typing import Any

import jinja2

from sluice.reports import charts

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("sluice.reports", "templates"),
    autoescape=True,
    undefined=jinja2.ChainableUndefined,
)


def render(report: dict[str, Any]) -> str:
    quality_charts = []
    for c in report["comparisons"]:
        q = c["quality"]
        if q.get("status") != "ok":
            quality_charts.append("")
            continue
        metric = q["metric"]
        rows = [
            (name, q[side][metric]["value"], *q[side][metric]["ci95"])
            for side, name in (("baseline", c["baseline"]), ("candidate", c["candidate"]))
        ]
        quality_charts.append(charts.interval_bars(f"{metric} with 95 % intervals", rows))
    return _env.get_template("report.html.j2").render(
        report=report,
        generated=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(report["generated_at"])),
        latency_chart=charts.latency_histograms(report["variants"]),
        quality_charts=quality_charts,
        heat=charts.heat,
        num=number,
        pct=percent,
        mb=lambda b: "–" if _missing(b) else f"{b / 1e6:.0f}",
    )


def _missing(x: Any) -> bool:
    return x is None or isinstance(x, jinja2.Undefined)


def number(x: Any) -> str:
    """A figure as text: 4 significant digits, a dash when missing."""
    if _missing(x) or x == "":
        return "–"
    if isinstance(x, float):
        return f"{x:.4g}"
    return str(x)


def percent(x: Any) -> str:
    return "–" if _missing(x) else f"{100 * x:.2f} %"
