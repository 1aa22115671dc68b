"""Small inline SVG charts for the HTML report (no scripts, nothing fetched: it opens offline)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

COLOURS = ("#4063d8", "#d8743f", "#389826", "#9558b2", "#cb3c33")
WIDTH, HEIGHT, PAD = 640, 220, 40


def latency_histograms(variants: Mapping[str, Mapping[str, Any]]) -> str:
    """Each variant's latency distribution as a line over shared log-spaced bins (shares)."""
    series = []
    for name, v in variants.items():
        h = v["latency_ms"]["histogram"]
        total = sum(h["counts"]) or 1
        mids = [math.sqrt(a * b) for a, b in zip(h["edges_ms"], h["edges_ms"][1:], strict=False)]
        series.append((name, mids, [c / total for c in h["counts"]]))
    xs = [x for _, mids, _ in series for x in mids if x > 0]
    if not xs:
        return "<p>No latencies recorded.</p>"
    low, high = math.log(min(xs)), math.log(max(xs))
    top = max((y for _, _, ys in series for y in ys), default=1.0) or 1.0

    def px(x: float) -> float:
        span = (high - low) or 1.0
        return PAD + (math.log(x) - low) / span * (WIDTH - 2 * PAD)

    def py(y: float) -> float:
        return HEIGHT - PAD + -(y / top) * (HEIGHT - 2 * PAD)

    parts = [_frame("model latency (ms, log scale)", "share of requests")]
    for i, (name, mids, ys) in enumerate(series):
        points = " ".join(
            f"{px(x):.1f},{py(y):.1f}" for x, y in zip(mids, ys, strict=True) if x > 0
        )
        colour = COLOURS[i % len(COLOURS)]
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>'
        )
        parts.append(_legend(i, name, colour))
    for tick in _log_ticks(min(xs), max(xs)):
        parts.append(
            f'<text x="{px(tick):.1f}" y="{HEIGHT - PAD + 14}" font-size="10" '
            f'text-anchor="middle">{tick:g}</text>'
        )
    return _svg(parts)


def interval_bars(
    title: str, rows: Sequence[tuple[str, float | None, float | None, float | None]]
) -> str:
    """Estimates with 95 % intervals, one row each: (label, value, low, high)."""
    known = [r for r in rows if r[1] is not None]
    if not known:
        return ""
    lows = [r[2] if r[2] is not None else r[1] for r in known]
    highs = [r[3] if r[3] is not None else r[1] for r in known]
    lo, hi = min(lows), max(highs)  # type: ignore[type-var]
    span = (hi - lo) or 1.0  # type: ignore[operator]
    lo, hi = lo - 0.1 * span, hi + 0.1 * span  # type: ignore[operator]
    height = PAD + 28 * len(known)

    def px(x: float) -> float:
        return 160 + (x - lo) / (hi - lo) * (WIDTH - 200)

    parts = [f'<text x="10" y="16" font-size="12" font-weight="bold">{escape(title)}</text>']
    for i, (label, value, low, high) in enumerate(known):
        y = PAD + 28 * i
        colour = COLOURS[i % len(COLOURS)]
        parts.append(f'<text x="10" y="{y + 4}" font-size="11">{escape(label)}</text>')
        if low is not None and high is not None:
            parts.append(
                f'<line x1="{px(low):.1f}" x2="{px(high):.1f}" y1="{y}" y2="{y}" '
                f'stroke="{colour}" stroke-width="3"/>'
            )
        assert value is not None
        parts.append(f'<circle cx="{px(value):.1f}" cy="{y}" r="5" fill="{colour}"/>')
        parts.append(
            f'<text x="{px(value):.1f}" y="{y - 8}" font-size="10" text-anchor="middle">'
            f"{value:.4g}</text>"
        )
    return _svg(parts, height)


def heat(count: int, largest: int) -> str:
    """A background colour for a confusion-table cell."""
    share = count / largest if largest else 0.0
    return f"rgba(64, 99, 216, {0.08 + 0.8 * share:.2f})" if count else "transparent"


def _frame(x_label: str, y_label: str) -> str:
    return (
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" '
        'stroke="#888"/>'
        f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{HEIGHT - PAD}" stroke="#888"/>'
        f'<text x="{WIDTH / 2}" y="{HEIGHT - 6}" font-size="11" text-anchor="middle">'
        f"{x_label}</text>"
        f'<text x="12" y="{HEIGHT / 2}" font-size="11" transform="rotate(-90 12 {HEIGHT / 2})" '
        f'text-anchor="middle">{y_label}</text>'
    )


def _legend(i: int, name: str, colour: str) -> str:
    y = PAD + 14 * i
    return (
        f'<rect x="{WIDTH - 150}" y="{y - 8}" width="10" height="10" fill="{colour}"/>'
        f'<text x="{WIDTH - 135}" y="{y + 1}" font-size="11">{escape(name)}</text>'
    )


def _log_ticks(low: float, high: float) -> list[float]:
    ticks = []
    for exponent in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1):
        for m in (1, 2, 5):
            t = m * 10.0**exponent
            if low <= t <= high:
                ticks.append(t)
    return ticks


def _svg(parts: list[str], height: int = HEIGHT) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" role="img">' + "".join(parts) + "</svg>"
    )


def paired_bars(
    title: str, labels: Sequence[str], series: Sequence[tuple[str, Sequence[float]]]
) -> str:
    """Shares side by side per label (e.g. reference and current per bin or category)."""
    if not labels:
        return ""
    top = max((y for _, ys in series for y in ys), default=0.0) or 1.0
    slot = (WIDTH - 2 * PAD) / len(labels)
    bar = slot * 0.8 / max(len(series), 1)
    parts = [_frame(escape(title), "share")]
    for i, (name, ys) in enumerate(series):
        colour = COLOURS[i % len(COLOURS)]
        for j, y in enumerate(ys):
            height = (y / top) * (HEIGHT - 2 * PAD)
            x = PAD + j * slot + slot * 0.1 + i * bar
            parts.append(
                f'<rect x="{x:.1f}" y="{HEIGHT - PAD - height:.1f}" width="{bar:.1f}" '
                f'height="{height:.1f}" fill="{colour}" fill-opacity="0.8"/>'
            )
        parts.append(_legend(i, name, colour))
    step = max(1, len(labels) // 10)
    for j in range(0, len(labels), step):
        parts.append(
            f'<text x="{PAD + (j + 0.5) * slot:.1f}" y="{HEIGHT - PAD + 14}" font-size="10" '
            f'text-anchor="middle">{escape(labels[j][:12])}</text>'
        )
    return _svg(parts)
