"""How long the CI gate (`sluice validate`) takes: both models through real workers, one
request per row, then every metric with its paired-bootstrap interval.

Uses scikit-learn's bundled digits (1,797 rows, repeated with --repeat) and two models
trained on it (logistic regression as the baseline, a decision tree as the candidate).

    python benchmarks/gate.py --repeat 5
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import joblib
import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from sluice.gate.check import Limits, judge
from sluice.gate.data import ValidationSet
from sluice.gate.run import ModelSource, run_both


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="copies of the 1,797 rows")
    parser.add_argument("--rounds", type=int, default=1000, help="bootstrap rounds")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/gate.json"))
    args = parser.parse_args()

    x, y = load_digits(return_X_y=True)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        sources = []
        for name, estimator in (
            ("tree", DecisionTreeClassifier(max_depth=8, random_state=0)),
            ("logreg", LogisticRegression(max_iter=2000)),
        ):
            folder = root / name
            folder.mkdir()
            joblib.dump(estimator.fit(x[::2], y[::2]), folder / "model.joblib")
            sources.append(ModelSource(name, str(folder), "sklearn"))
        data = ValidationSet(
            np.tile(x, (args.repeat, 1)), np.tile(y, args.repeat),
            tuple(f"p{i}" for i in range(x.shape[1])), "classification",
        )  # fmt: skip
        started = time.perf_counter()
        candidate, baseline = run_both(sources[0], sources[1], data)
        ran = time.perf_counter() - started
        started = time.perf_counter()
        verdict = judge(data, candidate, baseline, Limits("accuracy", 0.01, rounds=args.rounds))
        judged = time.perf_counter() - started
    rows = len(data.labels)
    result = {
        "rows": rows,
        "run_seconds": round(ran, 2),
        "requests_per_second": round(2 * rows / ran),
        "judge_seconds": round(judged, 2),
        "bootstrap_rounds": args.rounds,
        "metrics": {c.name: [round(c.baseline, 4), round(c.candidate, 4)] for c in verdict.checks},
        "passed": verdict.passed,
        "machine": f"{platform.processor() or platform.machine()}, {platform.python_version()}",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"{rows} rows: both models answered in {ran:.1f} s ({2 * rows / ran:,.0f} requests/s); "
          f"metrics and {args.rounds}-round intervals in {judged:.2f} s")  # fmt: skip
    json.dump(result, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
