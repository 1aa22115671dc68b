"""Dynamic batching benchmark: one command, prints its figures, writes JSON.

    python benchmarks/batching.py [--duration 5] [--rounds 3] [--out results/batching.json]

One `sluice server` (authentication off) with four endpoints of one instance each: a
per-call-overhead-bound model (a random forest of 20 trees on the digits data: about
1.5 ms a call whether it holds 1 row or 64) and the digits logistic regression (a fast
model, where a tenth of a millisecond shows), each with batching as it comes (the
default: work-conserving, cap 32) and with `SLUICE_BATCH_MAX_SIZE=1` (off). wrk sends one
JSON row per request at c=64 (throughput) and c=1 (latency at no load), in interleaved
rounds; medians. wrk, the gateway and the workers share this machine's cores.

Bars: the forest at c=64 batched >= 3x unbatched; p50 at c=1 batched <= unbatched + 0.1 ms.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import httpx
import joblib

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from gateway import Gateway, build_artifacts, report_bars, wrk  # noqa: E402

ENDPOINTS = {
    "forest": ("forest", {}),
    "forest-unbatched": ("forest", {"SLUICE_BATCH_MAX_SIZE": "1"}),
    "digits": ("digits", {}),
    "digits-unbatched": ("digits", {"SLUICE_BATCH_MAX_SIZE": "1"}),
}


def build_forest(root: Path) -> Path:
    from sklearn.datasets import load_digits
    from sklearn.ensemble import RandomForestClassifier

    x, y = load_digits(return_X_y=True)
    folder = root / "forest"
    folder.mkdir()
    model = RandomForestClassifier(n_estimators=20, max_depth=8, random_state=0).fit(x, y)
    joblib.dump(model, folder / "model.joblib")
    return folder


def mean_batch(gw: Gateway, endpoint: str) -> float:
    """The mean batch size the endpoint's requests were answered in, from /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    total = count = 0.0
    for family in text_string_to_metric_families(httpx.get(f"{gw.url}/metrics").text):
        if family.name == "sluice_batch_size":
            for s in family.samples:
                if s.labels.get("endpoint") == endpoint:
                    if s.name.endswith("_sum"):
                        total += s.value
                    elif s.name.endswith("_count"):
                        count += s.value
    return total / count if count else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "batching.json")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sluice-batching-"))
    artifacts = {**build_artifacts(work), "forest": build_forest(work)}
    home = work / "home"
    home.mkdir()
    gw = Gateway(home, auth=False, roots=(work,))
    runs: dict[str, list[dict[str, float]]] = {}
    try:
        for name, (artifact, environment) in ENDPOINTS.items():
            gw.api.post(
                "/models",
                json={"name": name, "artifact": str(artifacts[artifact]),
                      "environment": environment},
            ).raise_for_status()  # fmt: skip
            gw.endpoint(name, name)
        body = work / "body.json"  # one digits row, written with the artifacts
        for round_ in range(args.rounds):
            for name in ENDPOINTS:
                for c in (64, 1):
                    url = f"{gw.url}/endpoints/{name}/invocations"
                    r = wrk(url, c, args.duration, body)
                    rps = r["requests"] / (r["duration_us"] / 1e6)
                    failed = int(r["socket_errors"] + r["non_2xx"])
                    runs.setdefault(f"{name} c={c}", []).append(
                        {"rps": rps, "p50_ms": r["p50_us"] / 1000, "failed": failed}
                    )
                    print(
                        f"  round {round_ + 1} {name:<17} c={c:<2} {rps:8.0f} req/s  "
                        f"p50 {r['p50_us'] / 1000:6.3f} ms  failed {failed}",
                        flush=True,
                    )
        fills = {name: mean_batch(gw, name) for name in ENDPOINTS}
    finally:
        gw.stop()
        shutil.rmtree(work, ignore_errors=True)

    results: dict[str, float] = {}
    for key, rows in runs.items():
        results[f"{key} req/s"] = statistics.median(r["rps"] for r in rows)
        results[f"{key} p50 ms"] = statistics.median(r["p50_ms"] for r in rows)
        results[f"{key} failed"] = sum(r["failed"] for r in rows)
    for name, fill in fills.items():
        results[f"{name} mean batch"] = fill
    speedup = results["forest c=64 req/s"] / results["forest-unbatched c=64 req/s"]
    results["forest c=64 speed-up"] = speedup
    added = {
        model: results[f"{model} c=1 p50 ms"] - results[f"{model}-unbatched c=1 p50 ms"]
        for model in ("digits", "forest")
    }
    failed = sum(int(v) for k, v in results.items() if k.endswith("failed"))
    print(json.dumps(results, indent=2))
    bars = [
        (
            "forest at c=64: batched >= 3x unbatched",
            f"{speedup:.2f}x ({results['forest c=64 req/s']:.0f} vs "
            f"{results['forest-unbatched c=64 req/s']:.0f} req/s, mean batch "
            f"{fills['forest']:.1f})",
            speedup >= 3,
        ),
        *(
            (
                f"{model} p50 at c=1: batched <= unbatched + 0.1 ms",
                f"{added[model]:+.3f} ms ({results[f'{model} c=1 p50 ms']:.3f} vs "
                f"{results[f'{model}-unbatched c=1 p50 ms']:.3f} ms)",
                added[model] <= 0.1,
            )
            for model in ("digits", "forest")
        ),
        ("no failed request", str(failed), failed == 0),
    ]
    report_bars(args.out, results, bars, duration_s=args.duration, rounds=args.rounds)


if __name__ == "__main__":
    main()
