"""Drift detection at scale: sluice's data-quality check against a stored baseline, read
straight from capture files, beside Evidently's data-drift report on the same data.

Synthetic tables of 20 numeric and 5 categorical columns (seeded); the current table has
drift injected into 5 columns (mean shifts of 0.25 and 1 sigma, a wider spread, a new
category, a moved category share). The reference becomes a training CSV (for the
baseline) and a Parquet file (for Evidently); the current table becomes capture files as
the gateway writes them (one record per request, 100,000 records per file, hour folders)
and a Parquet file (for Evidently). Every case runs in a process of its own, which reports
its time and peak resident memory. Data generation is not timed.

    python benchmarks/monitoring.py --rows 200000 --rows 1000000 \\
        --evidently-python /path/to/venv-with-evidently/bin/python

Evidently is never a dependency of sluice: install it in an environment of its own
(`pip install evidently==0.7.23 'pandas<3'`; it does not import with pandas 3) and pass
that interpreter. Without it the Evidently cases are skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

NUMERIC = 20
CATEGORICAL = 5
DRIFTED = ["n0", "n1", "n2", "c0", "c1"]
RECORDS_PER_FILE = 100_000
T0 = 1_790_000_000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, action="append", help="rows per side (repeatable)")
    parser.add_argument("--work", type=Path, default=Path("benchmarks/results/monitoring-data"))
    parser.add_argument("--evidently-python", help="interpreter with evidently installed")
    parser.add_argument("--runs", type=int, default=1, help="timed runs per case (median)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/monitoring.json"))
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        print(json.dumps(CASES[args.case](args.data)))
        return
    results: list[dict[str, Any]] = []
    for rows in args.rows or [200_000]:
        data = args.work / f"{rows}"
        if not (data / "ready").exists():
            print(f"generating {rows:,} + {rows:,} rows in {data} ...", flush=True)
            generate(data, rows)
        cases = ["baseline", "check"] + (["evidently"] if args.evidently_python else [])
        for case in cases:
            python = args.evidently_python if case == "evidently" else sys.executable
            runs = [_child(python, case, data) for _ in range(args.runs)]
            runs.sort(key=lambda r: r["seconds"])
            best = runs[len(runs) // 2]
            results.append({"rows": rows, "case": case, **best})
            print(
                f"{rows:>9,} rows  {case:<10} {best['seconds']:8.2f} s  "
                f"peak {best['peak_mb']:7.0f} MB  {best.get('found', '')}",
                flush=True,
            )
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
    machine += f"Python {platform.python_version()}"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine, "results": results}, indent=1))
    print(f"\n{machine}")
    for rows in sorted({r["rows"] for r in results}):
        by = {r["case"]: r for r in results if r["rows"] == rows}
        if "evidently" in by:
            ratio = by["evidently"]["seconds"] / by["check"]["seconds"]
            print(f"{rows:,} rows: the check is {ratio:.1f}x faster than Evidently")


def _child(python: str, case: str, data: Path) -> dict[str, Any]:
    done = subprocess.run(
        [python, __file__, "--case", case, "--data", str(data)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"case {case} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def generate(folder: Path, rows: int) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    from sluice.gateway.capture import CaptureEvent, CaptureTarget, to_record

    folder.mkdir(parents=True, exist_ok=True)
    for side, seed in (("reference", 1), ("current", 2)):
        rng = np.random.default_rng(seed)
        columns: dict[str, Any] = {}
        for i in range(NUMERIC):
            columns[f"n{i}"] = rng.normal(i, 1 + i / 10, size=rows).round(5)
        for i in range(CATEGORICAL):
            columns[f"c{i}"] = rng.choice(["a", "b", "c", "d", "e"], size=rows)
        if side == "current":
            columns["n0"] = columns["n0"] + 0.25  # sigma 1: SageMaker's D > 0.1 misses this
            columns["n1"] = columns["n1"] + 1.1  # one sigma
            columns["n2"] = (columns["n2"] - 2) * 1.5 + 2  # wider
            new = rng.random(rows) < 0.15
            columns["c0"] = np.where(new, "z", columns["c0"])  # a new category
            columns["c1"] = np.where(rng.random(rows) < 0.2, "a", columns["c1"])  # share moved
        table = pa.table(columns)
        pq.write_table(table, folder / f"{side}.parquet")
        if side == "reference":
            pcsv.write_csv(table, folder / "reference.csv")
            continue
        target = CaptureTarget(folder / "capture", 100, True, True)
        variant = folder / "capture" / "bench" / "AllTraffic"
        names = list(columns)
        text = [columns[n].astype(str) for n in names]
        handle = None
        for i in range(rows):
            if i % RECORDS_PER_FILE == 0:
                if handle:
                    handle.close()
                when = T0 + i * 0.01
                hour = time.strftime("%Y/%m/%d/%H", time.gmtime(when))
                (variant / hour).mkdir(parents=True, exist_ok=True)
                handle = (variant / hour / f"{i:09d}.jsonl").open("w")
            body = ",".join(t[i] for t in text).encode()
            event = CaptureEvent(
                target, "bench", "AllTraffic", f"r{i}", T0 + i * 0.01, "text/csv", body,
                "application/json", b'{"predictions":[0]}', 1.0, 200, None,  # type: ignore[arg-type]
            )  # fmt: skip
            assert handle is not None
            handle.write(to_record(event) + "\n")
        if handle:
            handle.close()
    (folder / "ready").touch()


def _peak_mb() -> float:
    """This process's peak resident memory (VmHWM: ru_maxrss can carry the parent's
    peak across fork and exec)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def case_baseline(data: Path) -> dict[str, Any]:
    from sluice.monitor.baseline import baseline

    began = time.perf_counter()
    statistics, constraints = baseline(data / "reference.csv")
    seconds = time.perf_counter() - began
    (data / "statistics.json").write_text(json.dumps(statistics))
    (data / "constraints.json").write_text(json.dumps(constraints))
    return {"seconds": seconds, "peak_mb": _peak_mb()}


def case_check(data: Path) -> dict[str, Any]:
    from sluice.monitor import reference, run

    before = _peak_mb()
    began = time.perf_counter()
    loaded = reference.load(data)
    result = run.data_quality(loaded, [data / "capture" / "bench" / "AllTraffic"], None, None)
    seconds = time.perf_counter() - began
    drifted = sorted(result.report["summary"]["drifted"])
    return {
        "seconds": seconds,
        "peak_mb": _peak_mb(),
        "peak_mb_at_start": before,
        "rows_checked": result.report["counts"]["rows"],
        "found": ",".join(drifted),
        "expected": ",".join(sorted(DRIFTED)),
    }


def case_evidently(data: Path) -> dict[str, Any]:
    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset

    reference = pd.read_parquet(data / "reference.parquet")
    current = pd.read_parquet(data / "current.parquet")
    loaded = _peak_mb()
    began = time.perf_counter()
    snapshot = Report([DataDriftPreset()]).run(current_data=current, reference_data=reference)
    document = json.loads(snapshot.json())
    seconds = time.perf_counter() - began
    drifted = []
    for metric in document.get("metrics", []):
        value = metric.get("value")
        name = str(metric.get("metric_name", ""))
        if "ValueDrift" in name and isinstance(value, int | float):
            column = name.split("column=")[1].split(",")[0] if "column=" in name else name
            threshold = 0.1
            if value >= threshold:
                drifted.append(column)
    return {
        "seconds": seconds,
        "peak_mb": _peak_mb(),
        "peak_mb_with_data_loaded": loaded,
        "found": ",".join(sorted(drifted)),
    }


CASES = {"baseline": case_baseline, "check": case_check, "evidently": case_evidently}

if __name__ == "__main__":
    main()
