"""Known-answer data for monitoring tests: a table with correlated, missing, whole and
text columns, its training file, and capture files written by the gateway's own writer."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from sluice.gateway.capture import CaptureEvent, CaptureTarget, to_record

T0 = 1_790_000_000.0  # 2026-09-21T14:13:20Z
COLOURS = np.array(["red", "green", "blue"])
SHARES = [0.5, 0.3, 0.2]


def make_table(rng: np.random.Generator, rows: int, **changes: Any) -> dict[str, np.ndarray]:
    """x1, x2 correlated 0.9; x3 (10 % missing), x4 normal; age whole; colour of three."""
    x1 = rng.normal(size=rows)
    rho = changes.get("rho", 0.9)
    x2 = rho * x1 + math.sqrt(1 - rho**2) * rng.normal(size=rows)
    x3 = rng.normal(10, 2, size=rows) + changes.get("x3_shift", 0.0) * 2
    x3[rng.random(rows) < changes.get("x3_missing", 0.1)] = np.nan
    x4 = rng.normal(size=rows) * changes.get("x4_scale", 1.0)
    age = rng.integers(18, 80, size=rows).astype(float)
    colours = rng.choice(COLOURS, size=rows, p=SHARES).astype(object)
    new = changes.get("new_colour", 0.0)
    if new:
        colours[rng.random(rows) < new] = "purple"
    return {"x1": x1, "x2": x2, "x3": x3, "x4": x4, "age": age, "colour": colours}


def cell_text(value: Any) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return str(value)


def table_rows(table: dict[str, np.ndarray]) -> list[list[str]]:
    names = list(table)
    return [
        [cell_text(v.item() if hasattr(v, "item") else v) for v in row]
        for row in zip(*(table[n] for n in names), strict=True)
    ]


def write_training(path: Path, table: dict[str, np.ndarray]) -> None:
    with path.open("w") as f:
        f.write(",".join(table) + "\n")
        f.writelines(",".join(row) + "\n" for row in table_rows(table))


def write_capture(
    folder: Path,
    table: dict[str, np.ndarray],
    start: float = T0,
    step: float = 0.01,
    content_type: str = "text/csv",
) -> Path:
    """Capture records of one variant, one request per row, in hour folders."""
    target = CaptureTarget(folder, 100, True, True)
    variant = folder / "ep" / "AllTraffic"
    lines: dict[Path, list[str]] = {}
    for i, row in enumerate(table_rows(table)):
        when = start + i * step
        if content_type == "application/json":
            body = json.dumps({"instances": [dict(zip(table, row, strict=True))]}).encode()
        else:
            body = ",".join(row).encode()
        event = CaptureEvent(
            target, "ep", "AllTraffic", f"id-{i}", when, content_type, body,
            "application/json", b'{"predictions": [1]}', 1.0, 200, None,  # type: ignore[arg-type]
        )  # fmt: skip
        hour = variant / hour_folder(when)
        lines.setdefault(hour / "00-00-000-test.jsonl", []).append(to_record(event) + "\n")
    for path, records in lines.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as f:
            f.writelines(records)
    return variant


def hour_folder(when: float) -> str:
    import time

    return time.strftime("%Y/%m/%d/%H", time.gmtime(when))
