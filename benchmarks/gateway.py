"""Gateway benchmark: one command, prints a table, writes JSON.

    python benchmarks/gateway.py [--duration 8] [--out benchmarks/results/gateway.json]

Measures requests/s and p50/p99 latency for a trivial model and the digits model
(logistic regression, one JSON row per request) at concurrency 1, 16 and 64, along three
paths: a bare Starlette app running the model in-process (the baseline), a sluice worker
called directly over its socket, and the full gateway (`sluice server`). Through the
gateway it also measures: a 100 % shadow of the same model, a 100 % shadow 10x slower
than production, and 100 % data capture; all with authentication on (the default: a
bearer token on every request), beside the same endpoint called with an AWS SigV4
signature and on a second server with authentication off (--insecure-local). Then the
gateway's start-up time and its memory with 10 endpoints. HTTP load comes from `wrk`
(Debian package `wrk`), on the same machine as the servers: all of them share its cores,
as they would in a one-box deployment.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx
import joblib
import numpy as np
import psutil

HERE = Path(__file__).resolve().parent
CONCURRENCY = (1, 16, 64)


@dataclass
class Row:
    scenario: str
    model: str
    path: str
    concurrency: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 30) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        try:
            httpx.get(url, timeout=0.5)
            return time.perf_counter() - started
        except httpx.TransportError:
            time.sleep(0.01)
    raise RuntimeError(f"{url} not ready in {timeout} s")


def build_artifacts(root: Path) -> dict[str, Path]:
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    x, y = load_digits(return_X_y=True)
    digits = root / "digits"
    digits.mkdir()
    joblib.dump(LogisticRegression(max_iter=3000).fit(x, y), digits / "model.joblib")
    trivial = root / "trivial" / "code"
    trivial.mkdir(parents=True)
    (trivial / "inference.py").write_text(
        textwrap.dedent("""
        def model_fn(model_dir):
            return None

        def predict_fn(data, model):
            return [0] * len(data)
    """)
    )
    slow = root / "slow"
    shutil.copytree(digits, slow)
    (slow / "code").mkdir()
    (slow / "code" / "inference.py").write_text(
        textwrap.dedent("""
        import os, time

        DELAY = float(os.environ["SLOW_SECONDS"])

        def predict_fn(data, model):
            started = time.perf_counter()
            result = model.predict_proba(data).argmax(axis=1)
            time.sleep(max(DELAY - (time.perf_counter() - started), 0))
            return result
    """)
    )
    (root / "body.json").write_text(json.dumps([x[0].tolist()]))
    return {"digits": digits, "trivial": root / "trivial", "slow": slow}


def wrk(
    url: str,
    concurrency: int,
    duration: float,
    body: Path,
    headers: dict[str, str] | None = None,
    pace_ms: int | None = None,
) -> dict[str, float]:
    """One wrk run POSTing `body` with `headers` (each request the same bytes); with
    `pace_ms`, each connection pauses that long before each request."""
    lines = "\n".join(f"{k}: {v}" for k, v in (headers or {}).items())
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{concurrency}",
            f"-d{max(int(duration), 1)}s",
            "--timeout",
            "10s",
            "-s",
            str(HERE / "wrk_report.lua"),
            url,
        ],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "WRK_BODY_FILE": str(body),
            "WRK_HEADERS": lines,
            **({"WRK_PACE_MS": str(pace_ms)} if pace_ms else {}),
        },
        check=True,
    )
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def http_rows(
    scenario: str, model: str, path: str, url: str, duration: float, body: Path
) -> list[Row]:
    rows = []
    for c in CONCURRENCY:
        r = wrk(url, c, duration, body)
        rows.append(
            Row(
                scenario,
                model,
                path,
                c,
                r["requests"] / (r["duration_us"] / 1e6),
                r["p50_us"] / 1000,
                r["p99_us"] / 1000,
                int(r["socket_errors"] + r["non_2xx"]),
            )
        )
        print_row(rows[-1])
    return rows


def print_row(row: Row) -> None:
    print(
        f"  {row.scenario:<22} {row.model:<8} {row.path:<10} c={row.concurrency:<3} "
        f"{row.requests_per_s:9.0f} req/s  p50 {row.p50_ms:7.3f} ms  p99 {row.p99_ms:7.3f} ms"
        f"  errors {row.errors}",
        flush=True,
    )


def inprocess(artifacts: dict[str, Path], duration: float, body: Path) -> list[Row]:
    rows = []
    for model, runtime in (("trivial", "python"), ("digits", "sklearn")):
        port = free_port()
        proc = subprocess.Popen(
            [
                sys.executable,
                str(HERE / "inprocess_app.py"),
                "--model-dir",
                str(artifacts[model]),
                "--runtime",
                runtime,
                "--port",
                str(port),
            ]
        )
        try:
            wait_http(f"http://127.0.0.1:{port}/healthz")
            rows += http_rows(
                "baseline",
                model,
                "in-process",
                f"http://127.0.0.1:{port}/invocations",
                duration,
                body,
            )
        finally:
            proc.terminate()
            proc.wait()
    return rows


async def _direct(
    model_dir: Path, runtime: str, duration: float, payload: bytes, model: str
) -> list[Row]:
    from sluice.workers.pool import PoolSettings, WorkerPool, WorkerSpec

    sockets = Path(tempfile.mkdtemp(prefix="sl-bench-"))
    pool = WorkerPool(WorkerSpec(model, model_dir, runtime), PoolSettings(sockets))
    await pool.start(1)
    rows = []
    try:
        for c in CONCURRENCY:
            latencies: list[float] = []
            deadline = time.perf_counter() + duration

            async def loop(deadline: float = deadline, latencies: list[float] = latencies) -> None:
                while time.perf_counter() < deadline:
                    started = time.perf_counter()
                    await pool.invoke(payload, "application/json", "application/json")
                    latencies.append(time.perf_counter() - started)

            started = time.perf_counter()
            await asyncio.gather(*(loop() for _ in range(c)))
            elapsed = time.perf_counter() - started
            p50, p99 = np.percentile(latencies, [50, 99]) * 1000
            rows.append(
                Row(
                    "worker direct",
                    model,
                    "direct",
                    c,
                    len(latencies) / elapsed,
                    float(p50),
                    float(p99),
                    0,
                )
            )
            print_row(rows[-1])
    finally:
        await pool.stop()
        shutil.rmtree(sockets, ignore_errors=True)
    return rows


def direct(artifacts: dict[str, Path], duration: float, body: Path) -> list[Row]:
    import uvloop

    rows = []
    for model, runtime in (("trivial", "python"), ("digits", "sklearn")):
        rows += uvloop.run(_direct(artifacts[model], runtime, duration, body.read_bytes(), model))
    return rows


class Gateway:
    """A `sluice server`; with `auth` (the default), its generated admin principal signs
    or carries every request."""

    def __init__(
        self,
        home: Path,
        auth: bool = True,
        roots: tuple[Path, ...] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        """`roots`: folders the server may read model artifacts from (the benchmark's);
        `env`: settings for the server (SLUICE_...)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (home / "server.log").open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sluice.cli.main",
                "server",
                "--port",
                str(self.port),
                "--home",
                str(home),
                *([] if auth else ["--insecure-local"]),
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={
                **os.environ,
                "SLUICE_ALLOWED_ROOTS": json.dumps([str(r) for r in roots]),
                **(env or {}),
            },
        )
        self.ready_s = wait_http(f"{self.url}/healthz")
        self.admin = None
        if auth:
            from sluice.security.credentials import FILE_NAME, read_file

            self.admin = next(p for p in read_file(home / FILE_NAME) if p.name == "admin")
        self.api = httpx.Client(base_url=f"{self.url}/api/v1", timeout=120, headers=self.bearer())

    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin.token}"} if self.admin else {}

    def signed(self, path: str, body: bytes) -> dict[str, str]:
        """SigV4 headers for one POST, as boto3's sagemaker-runtime client signs it (valid
        for 15 minutes: wrk replays them, the server verifies every request in full)."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        assert self.admin is not None
        request = AWSRequest(
            "POST", self.url + path, data=body, headers={"Content-Type": "application/json"}
        )
        key, secret = self.admin.aws_access_key_id, self.admin.aws_secret_access_key
        SigV4Auth(Credentials(key, secret), "sagemaker", "us-east-1").add_auth(request)
        return {k: v for k, v in request.headers.items() if k.lower() != "content-type"}

    def headers_for(self, kind: str, path: str, body: bytes) -> dict[str, str]:
        return self.signed(path, body) if kind == "sigv4" else self.bearer()

    def endpoint(
        self, name: str, model: str, shadow: str | None = None, capture: bool = False
    ) -> None:
        self.api.post(
            "/endpoint-configs",
            json={
                "name": name,
                "variants": [{"name": "prod", "model": model}],
                "shadows": [{"name": "shadow", "model": shadow}] if shadow else [],
                "data_capture": {} if capture else None,
            },
        ).raise_for_status()
        self.api.post("/endpoints", json={"name": name, "config": name}).raise_for_status()
        while (status := self.api.get(f"/endpoints/{name}").json()["status"]) != "InService":
            if status == "Failed":
                raise RuntimeError(self.api.get(f"/endpoints/{name}").json()["failure_reason"])
            time.sleep(0.1)

    def shadow_counts(self, endpoint: str) -> dict[str, float]:
        from prometheus_client.parser import text_string_to_metric_families

        counts: dict[str, float] = {}
        text = httpx.get(f"{self.url}/metrics", headers=self.bearer()).text
        for family in text_string_to_metric_families(text):
            if family.name == "sluice_shadow_copies":
                for s in family.samples:
                    if s.labels["endpoint"] == endpoint and s.labels["variant"] == "shadow":
                        counts[s.labels["outcome"]] = counts.get(s.labels["outcome"], 0) + s.value
        return counts

    def rss_mb(self) -> float:
        return psutil.Process(self.proc.pid).memory_info().rss / 2**20

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def median_row(runs: list[Row]) -> Row:
    first = runs[0]
    return Row(
        first.scenario,
        first.model,
        first.path,
        first.concurrency,
        float(np.median([r.requests_per_s for r in runs])),
        float(np.median([r.p50_ms for r in runs])),
        float(np.median([r.p99_ms for r in runs])),
        sum(r.errors for r in runs),
    )


def gateway(
    artifacts: dict[str, Path],
    duration: float,
    rounds: int,
    body: Path,
    slow_seconds: float,
    extra: dict[str, object],
) -> list[Row]:
    """Every gateway scenario, in interleaved rounds (medians), so that drift in the
    machine's speed during the run does not favour one scenario over another."""
    home = Path(tempfile.mkdtemp(prefix="sluice-bench-"))
    open_home = Path(tempfile.mkdtemp(prefix="sluice-bench-open-"))
    roots = tuple({path.parent for path in artifacts.values()})
    gw = Gateway(home, roots=roots)
    extra["ready_s"] = gw.ready_s
    open_gw = Gateway(open_home, auth=False, roots=roots)
    rows: list[Row] = []
    payload = body.read_bytes()
    try:
        open_gw.api.post(
            "/models", json={"name": "digits", "artifact": str(artifacts["digits"])}
        ).raise_for_status()
        open_gw.endpoint("digits", "digits")
        for name in ("digits", "trivial"):
            gw.api.post(
                "/models", json={"name": name, "artifact": str(artifacts[name])}
            ).raise_for_status()
        gw.api.post(
            "/models",
            json={
                "name": "slow",
                "artifact": str(artifacts["slow"]),
                "environment": {"SLOW_SECONDS": f"{slow_seconds:.6f}"},
            },
        ).raise_for_status()
        scenarios = [
            ("gateway", "trivial", "trivial", {}),
            ("gateway", "digits", "digits", {}),
            ("+ capture 100 %", "digits", "digits-capture", {"capture": True}),
            ("+ shadow (same model)", "digits", "digits-shadow", {"shadow": "digits"}),
            ("+ shadow 10x slower", "digits", "digits-slow", {"shadow": "slow"}),
        ]
        for _, model, endpoint, options in scenarios:
            gw.endpoint(endpoint, model, **options)  # type: ignore[arg-type]
        # (scenario, model, endpoint, server, credentials): bearer unless said otherwise.
        runs_of = [(name, model, endpoint, gw, "bearer") for name, model, endpoint, _ in scenarios]
        runs_of += [
            ("gateway, SigV4", "digits", "digits", gw, "sigv4"),
            ("gateway, auth off", "digits", "digits", open_gw, "none"),
        ]
        for c in CONCURRENCY:
            runs: dict[str, list[Row]] = {}
            for _ in range(rounds):
                for scenario, model, endpoint, server, kind in runs_of:
                    path = f"/endpoints/{endpoint}/invocations"
                    headers = server.headers_for(kind, path, payload)
                    r = wrk(server.url + path, c, duration, body, headers)
                    runs.setdefault(scenario + endpoint, []).append(
                        Row(
                            scenario,
                            model,
                            "gateway",
                            c,
                            r["requests"] / (r["duration_us"] / 1e6),
                            r["p50_us"] / 1000,
                            r["p99_us"] / 1000,
                            int(r["socket_errors"] + r["non_2xx"]),
                        )
                    )
            for scenario_runs in runs.values():
                rows.append(median_row(scenario_runs))
                print_row(rows[-1])
        for _, _, endpoint, options in scenarios:
            if "shadow" in options:
                extra[f"shadow_copies[{endpoint}]"] = gw.shadow_counts(endpoint)
                print(f"  shadow copies of {endpoint}: {extra[f'shadow_copies[{endpoint}]']}")
        for i in range(len(scenarios), 10):
            gw.endpoint(f"extra-{i}", "digits")
        extra["gateway_rss_mb_10_endpoints"] = gw.rss_mb()
    finally:
        gw.stop()
        open_gw.stop()
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(open_home, ignore_errors=True)
    return rows


def find(rows: list[Row], scenario: str, model: str, c: int) -> Row:
    return next(
        r for r in rows if r.scenario == scenario and r.model == model and r.concurrency == c
    )


def bars(rows: list[Row], extra: dict[str, object]) -> list[tuple[str, str, bool]]:
    base64 = find(rows, "baseline", "digits", 64)
    gw64 = find(rows, "gateway", "digits", 64)
    gw1, direct1 = find(rows, "gateway", "digits", 1), find(rows, "worker direct", "digits", 1)
    results = [
        (
            "throughput via gateway >= 70 % of in-process (digits, c=64)",
            f"{gw64.requests_per_s:.0f} / {base64.requests_per_s:.0f} = "
            f"{gw64.requests_per_s / base64.requests_per_s:.0%}",
            gw64.requests_per_s >= 0.7 * base64.requests_per_s,
        ),
        (
            "gateway adds <= 0.3 ms to p50 at c=1 (vs. worker direct)",
            f"{gw1.p50_ms:.3f} - {direct1.p50_ms:.3f} = {gw1.p50_ms - direct1.p50_ms:.3f} ms",
            gw1.p50_ms - direct1.p50_ms <= 0.3,
        ),
    ]
    for c in CONCURRENCY:
        plain = find(rows, "gateway", "digits", c)
        slow = find(rows, "+ shadow 10x slower", "digits", c)
        results.append(
            (
                f"10x slower 100 % shadow: production p99 +<= 10 %, no errors (c={c})",
                f"p99 {plain.p99_ms:.3f} -> {slow.p99_ms:.3f} ms "
                f"({slow.p99_ms / plain.p99_ms - 1:+.0%}), errors {slow.errors}",
                slow.p99_ms <= 1.1 * plain.p99_ms and slow.errors == 0,
            )
        )
    plain, cap = find(rows, "gateway", "digits", 64), find(rows, "+ capture 100 %", "digits", 64)
    results.append(
        (
            "capture of every request costs <= 10 % throughput (c=64)",
            f"{plain.requests_per_s:.0f} -> {cap.requests_per_s:.0f} req/s "
            f"({cap.requests_per_s / plain.requests_per_s - 1:+.0%})",
            cap.requests_per_s >= 0.9 * plain.requests_per_s,
        )
    )
    off = find(rows, "gateway, auth off", "digits", 64)
    for scenario in ("gateway", "gateway, SigV4"):
        on = find(rows, scenario, "digits", 64)
        kind = "bearer token" if scenario == "gateway" else "SigV4"
        results.append(
            (
                f"auth on ({kind}) within 5 % of auth off (digits, c=64)",
                f"{off.requests_per_s:.0f} -> {on.requests_per_s:.0f} req/s "
                f"({on.requests_per_s / off.requests_per_s - 1:+.1%})",
                on.requests_per_s >= 0.95 * off.requests_per_s,
            )
        )
    rss = float(extra["gateway_rss_mb_10_endpoints"])  # type: ignore[arg-type]
    results.append(("gateway RSS < 150 MB with 10 endpoints", f"{rss:.0f} MB", rss < 150))
    ready = float(extra["ready_s"])  # type: ignore[arg-type]
    results.append(("`sluice server` ready in < 2 s", f"{ready:.2f} s", ready < 2))
    return results


def report_bars(
    out: Path, results: dict[str, float], bars: list[tuple[str, str, bool]], **extra: object
) -> None:
    """Print each bar (met or not, and what was measured) and write the run's JSON."""
    for bar, measured, met in bars:
        print(f"  {'yes' if met else 'NO ':>3}  {bar}: {measured}")
    out.parent.mkdir(parents=True, exist_ok=True)
    machine = {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version()}
    document = {
        "machine": machine,
        **extra,
        "results": results,
        "bars": [{"bar": b, "measured": m, "met": ok} for b, m, ok in bars],
    }
    out.write_text(json.dumps(document, indent=2))
    print(f"written to {out}")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="interleaved rounds of the gateway scenarios (medians reported)",
    )
    parser.add_argument("--out", type=Path, default=HERE / "results" / "gateway.json")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")
    workdir = Path(tempfile.mkdtemp(prefix="sluice-bench-artifacts-"))
    try:
        artifacts = build_artifacts(workdir)
        body = workdir / "body.json"
        print("in-process baseline (bare Starlette + uvicorn, model in the server process)")
        rows = inprocess(artifacts, args.duration, body)
        print("sluice worker called directly over its socket (no HTTP)")
        rows += direct(artifacts, args.duration, body)
        slow_seconds = 9 * find(rows, "worker direct", "digits", 1).p50_ms / 1000
        print(f"through the gateway (shadow 10x slower: +{slow_seconds * 1000:.2f} ms per call)")
        extra: dict[str, object] = {"slow_shadow_added_s": slow_seconds}
        rows += gateway(artifacts, args.duration, args.rounds, body, slow_seconds, extra)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    from rich.console import Console
    from rich.table import Table

    table = Table(title="sluice gateway benchmark (one JSON row per request)")
    for column in ("scenario", "model", "path", "conc.", "req/s", "p50 ms", "p99 ms", "errors"):
        table.add_column(
            column, justify="right" if column not in ("scenario", "model", "path") else "left"
        )
    for r in rows:
        table.add_row(
            r.scenario,
            r.model,
            r.path,
            str(r.concurrency),
            f"{r.requests_per_s:,.0f}",
            f"{r.p50_ms:.3f}",
            f"{r.p99_ms:.3f}",
            str(r.errors),
        )
    console = Console(width=110)
    console.print(table)
    checks = bars(rows, extra)
    bar_table = Table(title="bars")
    for column in ("bar", "measured", "met"):
        bar_table.add_column(column)
    for name, measured, ok in checks:
        bar_table.add_row(name, measured, "yes" if ok else "[red]NO")
    console.print(bar_table)
    machine = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "system": platform.platform(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "machine": machine,
                "duration_s": args.duration,
                "rounds": args.rounds,
                "rows": [asdict(r) for r in rows],
                "extra": extra,
                "bars": [{"bar": n, "measured": m, "met": ok} for n, m, ok in checks],
            },
            indent=2,
        )
    )
    console.print(f"written to {args.out}")


if __name__ == "__main__":
    main()
