"""How long the shadow-test report takes over a large capture, and its peak memory.

Writes N production answers, N shadow answers to the same requests and N ground-truth
labels (SageMaker's capture and ground-truth formats), then times `shadow_report` in a
fresh process and reads that process's peak resident memory.

    python benchmarks/report.py --requests 1000000
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = """
import json, resource, sys, time
from pathlib import Path
from sluice.reports.compare import Source, shadow_report
root = Path(sys.argv[1])
started = time.perf_counter()
report = shadow_report(Source("ep", root / "capture", root / "truth"), "A", ["shadow"])
elapsed = time.perf_counter() - started
c = report["comparisons"][0]
print(json.dumps({
    "seconds": elapsed,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "peak_rss_worker_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    "paired_rows": c["paired_rows"],
    "labelled_rows": c["quality"]["labelled_rows"],
    "verdict": c["verdict"]["summary"],
}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1_000_000)
    parser.add_argument("--probabilities", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/report.json"))
    args = parser.parse_args()
    from sluice.reports import synthetic

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        began = time.perf_counter()
        synthetic.write(
            synthetic.Scenario(
                requests=args.requests,
                baseline_accuracy=0.90,
                candidate_accuracy=0.91,
                candidate_latency_ms=2.2,
                probabilities=args.probabilities,
            ),
            root / "capture",
            root / "truth",
        )
        written = time.perf_counter() - began
        size = sum(p.stat().st_size for p in root.rglob("*.jsonl"))
        run = subprocess.run(
            [sys.executable, "-c", CHILD, str(root)], capture_output=True, text=True, check=True
        )
    result = json.loads(run.stdout)
    result.update(
        {
            "requests": args.requests,
            "capture_and_truth_mb": round(size / 1e6, 1),
            "seconds_to_write_fixture": round(written, 1),
            "machine": f"{platform.processor() or platform.machine()}, "
            f"{resource.getpagesize()} B pages, Python {platform.python_version()}",
        }
    )
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
