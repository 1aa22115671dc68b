"""Multi-model endpoint benchmark: one command, prints its figures, writes JSON.

    python benchmarks/multi_model.py [--models 100] [--duration 5] [--rounds 3]

One `sluice server` (authentication off). The model: a random forest of 40 trees on the
digits data (about 2 MiB on disk); `--models` copies of it, each with a file of its own
so that every one is a distinct artifact, packed as `.tar.gz` under one prefix. A
multi-model endpoint (one instance) over that prefix, with SLUICE_MODEL_CACHE_MB set to
hold 10 of them: 10.5 times a model's size on disk (the worker counts each model as the
resident memory its load added, and at least its size on disk, so no more than 10 fit;
the memory a load keeps, measured in a fresh process as resident memory grown by a second
load, is reported beside it), beside a single-model endpoint of the same model.

- Cache hits: wrk at c=1 and c=16 against one warm target model and against the
  single-model endpoint, in interleaved rounds; medians of p50, p99 and req/s.
- Churn: requests over all the models from an async HTTP client (c=8), first uniformly
  at random, then skewed (90 % to 8 hot models): every request must succeed, the loaded
  count (LoadedModelCount, polled) must stay within the budget; the hit ratio and the
  load wait are reported.

wrk, the client, the gateway and the workers share this machine's cores.

Bars: 100 models served under a budget that holds 10; cache-hit latency (p50 at c=1)
within 10 % of a single-model endpoint's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import joblib

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from gateway import Gateway, report_bars, wrk  # noqa: E402

HOLDS = 10
MEASURE = """
import gc, os, sys, joblib
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
first = joblib.load(sys.argv[1])  # imports, and buffers a load frees and the next reuses
gc.collect(); before = rss()
second = joblib.load(sys.argv[1])
print(rss() - before)
"""


def build(root: Path, count: int) -> tuple[Path, Path, int]:
    """The prefix of `count` model archives, one unpacked model, and the memory a load of
    it keeps."""
    from sklearn.datasets import load_digits
    from sklearn.ensemble import RandomForestClassifier

    x, y = load_digits(return_X_y=True)
    single = root / "single"
    single.mkdir()
    forest = RandomForestClassifier(n_estimators=40, random_state=0).fit(x, y)
    joblib.dump(forest, single / "model.joblib")
    (root / "body.json").write_text(json.dumps([x[0].tolist()]))
    prefix = root / "prefix"
    prefix.mkdir()
    for i in range(count):
        (single / "id.txt").write_text(str(i))  # a distinct artifact each
        subprocess.run(
            ["tar", "-czf", str(prefix / f"m{i:03d}.tar.gz"), "-C", str(single), "."], check=True
        )
    (single / "id.txt").unlink()
    loaded = int(
        subprocess.run(
            [sys.executable, "-c", MEASURE, str(single / "model.joblib")],
            capture_output=True, text=True, check=True,
        ).stdout
    )  # fmt: skip
    return prefix, single, loaded


def loaded_models(gw: Gateway, endpoint: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(httpx.get(f"{gw.url}/metrics").text):
        if family.name == "sluice_loaded_models":
            for s in family.samples:
                if s.labels.get("endpoint") == endpoint:
                    return s.value
    return 0.0


def cache_counts(gw: Gateway, endpoint: str) -> dict[str, float]:
    from prometheus_client.parser import text_string_to_metric_families

    counts: dict[str, float] = {}
    text = httpx.get(f"{gw.url}/metrics").text
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.labels.get("endpoint") != endpoint:
                continue
            if s.name == "sluice_model_cache_requests_total":
                counts[s.labels["outcome"]] = s.value
            elif s.name in ("sluice_model_loading_wait_seconds_sum",
                            "sluice_model_loading_wait_seconds_count"):  # fmt: skip
                counts[s.name.rsplit("_", 1)[1]] = s.value
    return counts


def churn(
    gw: Gateway, keys: list[str], weights: list[float], requests: int, body: bytes
) -> dict[str, Any]:
    """`requests` over `keys` (drawn with `weights`), 8 at a time; failures, peak loaded."""
    before = cache_counts(gw, "many")
    peak = [0.0]
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], loaded_models(gw, "many"))
            time.sleep(0.2)

    poller = threading.Thread(target=poll)
    poller.start()
    rng = random.Random(7)
    chosen = rng.choices(keys, weights, k=requests)
    failures: list[str] = []

    async def run() -> None:
        queue = iter(chosen)
        async with httpx.AsyncClient(base_url=gw.url, timeout=120) as http:

            async def client() -> None:
                for key in queue:
                    r = await http.post(
                        "/endpoints/many/invocations",
                        content=body,
                        headers={"Content-Type": "application/json",
                                 "X-Amzn-SageMaker-Target-Model": key},
                    )  # fmt: skip
                    if r.status_code != 200:
                        failures.append(f"{r.status_code} {r.text[:200]}")

            await asyncio.gather(*(client() for _ in range(8)))

    started = time.perf_counter()
    asyncio.run(run())
    elapsed = time.perf_counter() - started
    stop.set()
    poller.join()
    peak[0] = max(peak[0], loaded_models(gw, "many"))
    after = cache_counts(gw, "many")
    hits = after.get("hit", 0) - before.get("hit", 0)
    misses = after.get("miss", 0) - before.get("miss", 0)
    waits = after.get("count", 0) - before.get("count", 0)
    wait_s = after.get("sum", 0) - before.get("sum", 0)
    return {
        "requests": requests,
        "failed": len(failures),
        "first failure": failures[0] if failures else "",
        "req/s": requests / elapsed,
        "hit ratio": hits / max(hits + misses, 1),
        "mean load wait ms": 1000 * wait_s / max(waits, 1),
        "peak loaded models": peak[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=1000, help="per churn pattern")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "multi_model.json")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sluice-mme-"))
    prefix, single, in_memory = build(work, args.models)
    on_disk = sum(p.stat().st_size for p in single.iterdir()) + 8  # and its id.txt
    budget_mb = (HOLDS + 0.5) * on_disk / 2**20
    print(
        f"model: {on_disk / 2**20:.2f} MiB on disk, {in_memory / 2**20:.2f} MiB kept in "
        f"memory by a load; budget {budget_mb:.1f} MiB",
        flush=True,
    )
    home = work / "home"
    home.mkdir()
    gw = Gateway(home, auth=False, roots=(work,))
    runs: dict[str, list[dict[str, float]]] = {}
    results: dict[str, object] = {
        "model MiB on disk": on_disk / 2**20,
        "model MiB in memory": in_memory / 2**20,
        "budget MiB": budget_mb,
    }
    try:
        gw.api.post("/models", json={"name": "single", "artifact": str(single)}).raise_for_status()
        gw.endpoint("single", "single")
        sm = __import__("boto3").client(
            "sagemaker", endpoint_url=gw.url, region_name="us-east-1",
            aws_access_key_id="bench", aws_secret_access_key="bench",
        )  # fmt: skip
        sm.create_model(
            ModelName="many",
            PrimaryContainer={"Mode": "MultiModel", "ModelDataUrl": f"{prefix}/",
                              "Environment": {"SLUICE_MODEL_CACHE_MB": f"{budget_mb:.1f}"}},
        )  # fmt: skip
        gw.endpoint("many", "many")
        body_file = work / "body.json"
        body = body_file.read_bytes()
        target = {"X-Amzn-SageMaker-Target-Model": "m000.tar.gz"}
        warm = {"Content-Type": "application/json", **target}
        httpx.post(
            f"{gw.url}/endpoints/many/invocations", content=body, headers=warm
        ).raise_for_status()
        for round_ in range(args.rounds):
            for name, headers in (("single", {}), ("many", target)):
                for c in (1, 16):
                    r = wrk(f"{gw.url}/endpoints/{name}/invocations", c, args.duration,
                            body_file, headers)  # fmt: skip
                    row = {"rps": r["requests"] / (r["duration_us"] / 1e6),
                           "p50_ms": r["p50_us"] / 1000, "p99_ms": r["p99_us"] / 1000,
                           "failed": r["socket_errors"] + r["non_2xx"]}  # fmt: skip
                    runs.setdefault(f"{name} c={c}", []).append(row)
                    print(f"  round {round_ + 1} {name:<6} c={c:<2} {row['rps']:7.0f} req/s  "
                          f"p50 {row['p50_ms']:6.3f} ms  p99 {row['p99_ms']:6.3f} ms  "
                          f"failed {row['failed']}", flush=True)  # fmt: skip
        keys = [f"m{i:03d}.tar.gz" for i in range(args.models)]
        uniform = churn(gw, keys, [1.0] * len(keys), args.requests, body)
        print(f"  uniform over {args.models}: {uniform}", flush=True)
        hot = [9.0 if i < 8 else 0.1 * 8 / max(len(keys) - 8, 1) for i in range(len(keys))]
        skewed = churn(gw, keys, hot, args.requests, body)
        print(f"  skewed (90 % to 8): {skewed}", flush=True)
    finally:
        gw.stop()
        shutil.rmtree(work, ignore_errors=True)

    for key, rows in runs.items():
        for field in ("rps", "p50_ms", "p99_ms"):
            results[f"{key} {field}"] = statistics.median(r[field] for r in rows)
        results[f"{key} failed"] = sum(r["failed"] for r in rows)
    results["uniform"] = uniform
    results["skewed"] = skewed
    hit_p50, single_p50 = results["many c=1 p50_ms"], results["single c=1 p50_ms"]
    assert isinstance(hit_p50, float) and isinstance(single_p50, float)
    ratio = hit_p50 / single_p50
    failed = int(uniform["failed"] + skewed["failed"])
    peak = max(uniform["peak loaded models"], skewed["peak loaded models"])
    bars = [
        (
            f"{args.models} models under a budget that holds {HOLDS}: all answered",
            f"{failed} failed of {2 * args.requests}; at most {peak:.0f} loaded",
            failed == 0 and peak <= HOLDS,
        ),
        (
            "cache-hit p50 at c=1 within 10 % of a single-model endpoint",
            f"{hit_p50:.3f} vs {single_p50:.3f} ms ({100 * (ratio - 1):+.1f} %)",
            ratio <= 1.10,
        ),
    ]
    report_bars(args.out, results, bars, duration_s=args.duration, rounds=args.rounds)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
