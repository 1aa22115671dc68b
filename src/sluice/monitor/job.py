"""One scheduled execution, run by the server in a process of its own:
`python -m sluice.monitor.job SPEC.json`.

The analysis (Arrow, scipy, scikit-learn) thus never loads into the server, and a slow or
crashing check cannot touch the gateway. The spec says what to check; the execution's files
go to its `out` folder, with summary.json: what the server records and publishes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from sluice.monitor.check import CheckResult
from sluice.processes import die_with_parent

SUMMARY = "summary.json"


def main(argv: list[str]) -> int:
    die_with_parent()  # a check never outlives the server that asked for it
    spec = json.loads(Path(argv[1]).read_text())
    out = Path(spec["out"])
    result = execute(spec)
    (out / SUMMARY).write_text(json.dumps(summarise(result), indent=1))
    return 0


def execute(spec: dict[str, Any]) -> CheckResult:
    from sluice.monitor import run

    sources = [Path(s) for s in spec["sources"]]
    baseline = Path(spec["baseline"])
    out = Path(spec["out"])
    if spec["kind"] == "DataQuality":
        from sluice.monitor import reference

        return run.data_quality(
            reference.load(baseline), sources, spec["start"], spec["end"], out, spec["title"]
        )
    from sluice.monitor.ground_truth import Attributes

    statistics = baseline / "statistics.json"
    return run.model_quality(
        spec["problem_type"],
        json.loads((baseline / "constraints.json").read_text()),
        sources,
        Path(spec["ground_truth"]),
        spec["start"],
        spec["end"],
        Attributes(**spec["attributes"]),
        out,
        spec["title"],
        json.loads(statistics.read_text()) if statistics.exists() else None,
        spec["min_rows"],
    )


def summarise(result: CheckResult) -> dict[str, Any]:
    """What the server keeps of an execution: status, counts, violations by check, and
    per feature its drift distance and completeness, or each metric's value."""
    report = result.report
    by_check: dict[str, int] = {}
    for violation in report["violations"]:
        check = violation["constraint_check_type"]
        by_check[check] = by_check.get(check, 0) + 1
    summary: dict[str, Any] = {
        "status": result.status,
        "reason": report.get("reason", ""),
        "counts": {k: v for k, v in report["counts"].items() if not isinstance(v, dict)},
        "violations": len(report["violations"]),
        "violations_by_check": by_check,
    }
    if report["kind"] == "data_quality":
        summary["features"] = {
            f["name"]: {
                "drift": f.get("drift", {}).get("ks", f.get("drift", {}).get("linf")),
                "completeness": f.get("completeness"),
                "flagged": bool(f.get("drift", {}).get("flagged")),
            }
            for f in report["features"]
        }
        summary["drifted"] = report["summary"]["drifted"]
    else:
        summary["metrics"] = {
            name: m["value"]
            for name, m in report["metrics"].items()
            if isinstance(m, dict) and isinstance(m.get("value"), int | float)
        }
    return summary


if __name__ == "__main__":
    sys.exit(main(sys.argv))
