"""Ray backend benchmark: one command, prints its figures, writes JSON.

    python benchmarks/ray_backend.py [--duration 5] [--rounds 3] [--out results/ray_backend.json]

The digits logistic regression (one JSON row per request), one instance, behind three
servers on this machine, measured with wrk at c=64 (throughput) and c=1 (latency):

1. `sluice server` on the local backend (a worker process on a Unix socket), measured
   first, before any Ray process runs;
2. `sluice server --backend ray` joined to a Ray cluster started here (`ray start --head`,
   two CPUs): the worker is a Ray actor's process, reached over TCP;
3. Ray Serve on that cluster: the same model in one replica (max_ongoing_requests=64,
   as the peer measurement used), called through Serve's HTTP proxy.

wrk, the servers, the workers and Ray's own processes share this machine's cores.
Bars: Ray backend >= 60 % of the local backend's req/s at c=64, and >= 10x Ray Serve's.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from gateway import Gateway, build_artifacts, free_port, report_bars, wait_http, wrk  # noqa: E402

RAY = str(Path(sys.executable).with_name("ray"))
CONCURRENCY = (64, 1)

SERVE_APP = textwrap.dedent("""
    import sys, time

    import joblib
    import numpy as np
    import ray
    from ray import serve
    from starlette.requests import Request

    @serve.deployment(max_ongoing_requests=64, ray_actor_options={"num_cpus": 1})
    class Digits:
        def __init__(self, path: str) -> None:
            self.model = joblib.load(path)

        async def __call__(self, request: Request) -> dict:
            rows = np.asarray(await request.json())
            return {"predictions": self.model.predict(rows).tolist()}

    address, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    ray.init(address=address)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(Digits.bind(path), route_prefix="/")
    print("ready", flush=True)
    while True:
        time.sleep(3600)
""")


def measure(name: str, url: str, duration: float, body: Path, runs: dict[str, list]) -> None:
    for c in CONCURRENCY:
        r = wrk(url, c, duration, body)
        rps = r["requests"] / (r["duration_us"] / 1e6)
        failed = int(r["socket_errors"] + r["non_2xx"])
        runs.setdefault(f"{name} c={c}", []).append(
            {"rps": rps, "p50_ms": r["p50_us"] / 1000, "p99_ms": r["p99_us"] / 1000,
             "failed": failed}
        )  # fmt: skip
        print(
            f"  {name:<12} c={c:<2} {rps:8.0f} req/s  p50 {r['p50_us'] / 1000:7.3f} ms  "
            f"p99 {r['p99_us'] / 1000:7.3f} ms  failed {failed}",
            flush=True,
        )


def sluice_endpoint(gw: Gateway, model_dir: Path) -> str:
    gw.api.post("/models", json={"name": "digits", "artifact": str(model_dir)}).raise_for_status()
    gw.endpoint("digits", "digits")
    return f"{gw.url}/endpoints/digits/invocations"


def start_ray(temp_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    head = subprocess.Popen(
        [RAY, "start", "--head", "--block", f"--port={port}", "--num-cpus=2",
         "--include-dashboard=false", f"--temp-dir={temp_dir}",
         f"--ray-client-server-port={free_port()}"],
        stdout=(temp_dir.parent / "ray.log").open("wb"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"},
    )  # fmt: skip
    address = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while subprocess.run([RAY, "status", f"--address={address}"], capture_output=True).returncode:
        if time.monotonic() > deadline or head.poll() is not None:
            raise RuntimeError("the Ray head did not start")
        time.sleep(0.5)
    return head, address


def stop_tree(process: subprocess.Popen[bytes]) -> None:
    """Stop a process and everything it started (a Ray node's daemons): SIGTERM, then, after
    5 s, SIGKILL to whatever is left (a Ray head can take half a minute to stop)."""
    import psutil

    try:
        tree = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    process.send_signal(signal.SIGTERM)
    _, alive = psutil.wait_procs(tree, timeout=5)
    for leftover in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            leftover.kill()
    process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "ray_backend.json")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sluice-ray-bench-"))
    artifacts = build_artifacts(work)
    body = work / "body.json"
    runs: dict[str, list] = {}
    processes: list[subprocess.Popen[bytes]] = []
    gateways: list[Gateway] = []
    try:
        (work / "local").mkdir()
        local = Gateway(work / "local", auth=False, roots=(work,))
        gateways.append(local)
        url = sluice_endpoint(local, artifacts["digits"])
        for _ in range(args.rounds):
            measure("local", url, args.duration, body, runs)
        local.stop()
        gateways.remove(local)

        head, address = start_ray(Path(tempfile.mkdtemp(prefix="ray-")))
        processes.append(head)
        (work / "ray").mkdir()
        on_ray = Gateway(
            work / "ray",
            auth=False,
            roots=(work,),
            env={"SLUICE_BACKEND": "ray", "SLUICE_RAY_ADDRESS": address},
        )
        gateways.append(on_ray)
        ray_url = sluice_endpoint(on_ray, artifacts["digits"])

        serve_port = free_port()
        (work / "serve_app.py").write_text(SERVE_APP)
        serve = subprocess.Popen(
            [sys.executable, str(work / "serve_app.py"), address, str(serve_port),
             str(artifacts["digits"] / "model.joblib")],
            stdout=subprocess.PIPE,
            stderr=(work / "serve.log").open("wb"),
        )  # fmt: skip
        processes.append(serve)
        assert serve.stdout is not None
        if serve.stdout.readline().strip() != b"ready":
            raise RuntimeError(f"Ray Serve did not start: {(work / 'serve.log').read_text()}")
        serve_url = f"http://127.0.0.1:{serve_port}/"
        wait_http(serve_url)
        for _ in range(args.rounds):
            measure("ray backend", ray_url, args.duration, body, runs)
            measure("ray serve", serve_url, args.duration, body, runs)
    finally:
        for gw in gateways:
            gw.stop()
        for process in reversed(processes):
            stop_tree(process)
        shutil.rmtree(work, ignore_errors=True)

    results: dict[str, float] = {}
    for key, rows in runs.items():
        for figure in ("rps", "p50_ms", "p99_ms"):
            results[f"{key} {figure}"] = statistics.median(r[figure] for r in rows)
        results[f"{key} failed"] = sum(r["failed"] for r in rows)
    share = results["ray backend c=64 rps"] / results["local c=64 rps"]
    over_serve = results["ray backend c=64 rps"] / results["ray serve c=64 rps"]
    failed = sum(int(v) for k, v in results.items() if k.endswith("failed"))
    print(json.dumps(results, indent=2))
    bars = [
        (
            "Ray backend at c=64 >= 60 % of the local backend",
            f"{share:.0%} ({results['ray backend c=64 rps']:.0f} vs "
            f"{results['local c=64 rps']:.0f} req/s)",
            share >= 0.6,
        ),
        (
            "Ray backend at c=64 >= 10x Ray Serve",
            f"{over_serve:.1f}x ({results['ray backend c=64 rps']:.0f} vs "
            f"{results['ray serve c=64 rps']:.0f} req/s)",
            over_serve >= 10,
        ),
        ("no failed request", str(failed), failed == 0),
    ]
    report_bars(args.out, results, bars, duration_s=args.duration, rounds=args.rounds)


if __name__ == "__main__":
    main()
