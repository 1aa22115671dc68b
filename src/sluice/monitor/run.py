"""One data-quality check, start to finish: the baseline, the window's capture, the files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sluice.monitor import outputs
from sluice.monitor.capture import Columns, WindowReader
from sluice.monitor.check import CheckResult, check
from sluice.monitor.reference import Reference
from sluice.monitor.times import iso


def data_quality(
    reference: Reference,
    sources: Sequence[Path],
    start: float | None,
    end: float | None,
    out: Path | None = None,
    title: str = "",
) -> CheckResult:
    """Check the inputs captured in [start, end) under `sources` (capture folders of one
    variant each, or files) and, with `out`, write the execution's files there."""
    reader = WindowReader(sources, Columns(reference.names, reference.numeric), start, end)
    window = {
        "start": iso(start) if start is not None else None,
        "end": iso(end) if end is not None else None,
        "sources": [str(s) for s in sources],
    }
    result = check(reference, reader.blocks(), reader.counts, window)
    if out is not None:
        result.report["files"] = outputs.write(result, out, title)
    return result
