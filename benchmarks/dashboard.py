"""Dashboard benchmark: one command, prints its figures, writes JSON.

    python benchmarks/dashboard.py [--endpoints 50] [--loads 10] [--rounds 4] [--duration 8]

A `sluice server` (authentication off) with `--endpoints` endpoints of a trivial model
(one instance each), opened in Debian's Chromium through Playwright (`chromium` on PATH or
SLUICE_CHROMIUM):

- Overview load: from navigation to the table showing every endpoint (the page's own
  `performance.now()` when the last row is in), `--loads` loads, median and worst.
- What live updates cost: wrk at c=64 against one endpoint (the digits model) in
  alternating rounds with the overview open in the browser (its event stream running,
  the page redrawing every 2 s) and with the browser on a blank page; medians. wrk, the
  server, its workers and the browser share the machine's cores.

Bars: overview with 50 endpoints loads in < 300 ms; live updates cost <= 1 % of gateway
throughput.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from gateway import Gateway, build_artifacts, report_bars, wrk  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoints", type=int, default=50)
    parser.add_argument("--loads", type=int, default=10, help="overview loads timed")
    parser.add_argument("--rounds", type=int, default=4, help="wrk rounds each way")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per wrk round")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "dashboard.json")
    args = parser.parse_args()
    chromium = os.environ.get("SLUICE_CHROMIUM") or shutil.which("chromium")
    if chromium is None or shutil.which("wrk") is None:
        sys.exit("needs Chromium and wrk: apt-get install chromium wrk")
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="sluice-bench-dashboard-"))
    home = work / "home"
    home.mkdir()
    results: dict[str, float] = {}
    try:
        artifacts = build_artifacts(work)
        gw = Gateway(home, auth=False, roots=(work,))
        try:
            for model in ("trivial", "digits"):
                gw.api.post(
                    "/models", json={"name": model, "artifact": str(artifacts[model])}
                ).raise_for_status()
            began = time.perf_counter()
            gw.endpoint("digits", "digits")
            for i in range(args.endpoints - 1):
                gw.endpoint(f"endpoint-{i:03d}", "trivial")
            print(f"{args.endpoints} endpoints in service in {time.perf_counter() - began:.1f} s")
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=chromium, args=["--no-sandbox"]
                )
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                loads = []
                for _ in range(args.loads + 1):
                    page.goto("about:blank")
                    page.goto(f"{gw.url}/ui/")
                    page.wait_for_function(
                        f"() => document.querySelectorAll('#endpoints tbody tr').length "
                        f"=== {args.endpoints}"
                    )
                    loads.append(page.evaluate("() => performance.now()"))
                loads = loads[1:]  # the first load fills the browser's cache
                results["overview_load_median_ms"] = statistics.median(loads)
                results["overview_load_max_ms"] = max(loads)
                print(
                    f"overview with {args.endpoints} endpoints: median "
                    f"{results['overview_load_median_ms']:.0f} ms, worst "
                    f"{results['overview_load_max_ms']:.0f} ms ({args.loads} loads)"
                )
                rates: dict[str, list[float]] = {"open": [], "closed": []}
                url = f"{gw.url}/endpoints/digits/invocations"
                for round_number in range(args.rounds * 2):
                    state = "open" if round_number % 2 == 0 else "closed"
                    if state == "open":
                        page.goto(f"{gw.url}/ui/")
                        page.wait_for_function(
                            "() => document.getElementById('connection').textContent"
                            ".startsWith('live')"
                        )
                    else:
                        page.goto("about:blank")
                    r = wrk(url, 64, args.duration, work / "body.json")
                    rates[state].append(r["requests"] / (r["duration_us"] / 1e6))
                browser.close()
        finally:
            gw.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    opened, closed = statistics.median(rates["open"]), statistics.median(rates["closed"])
    results.update(open_rps=opened, closed_rps=closed, live_cost=1 - opened / closed)
    results["live_event_ms"] = live_event_ms(args.endpoints)
    print(
        f"one live event for {args.endpoints} endpoints, made alone: "
        f"{results['live_event_ms']:.2f} ms every 2 s "
        f"({results['live_event_ms'] / 2000 * 100:.3f} % of one core per open page)"
    )
    print(
        f"c=64 with the overview open {opened:,.0f} req/s, without {closed:,.0f} req/s "
        f"(medians of {args.rounds}: open {[round(r) for r in rates['open']]}, closed "
        f"{[round(r) for r in rates['closed']]})"
    )
    bars = [
        (
            f"overview with {args.endpoints} endpoints loads in < 300 ms",
            f"{results['overview_load_median_ms']:.0f} ms (median)",
            results["overview_load_median_ms"] < 300,
        ),
        (
            "live updates cost <= 1 % of gateway throughput (c=64)",
            f"{results['live_cost'] * 100:+.1f} % ({opened:,.0f} vs {closed:,.0f} req/s)",
            results["live_cost"] <= 0.01,
        ),
    ]
    report_bars(args.out, results, bars)


def live_event_ms(endpoints: int) -> float:
    """The server's work for one live event, timed alone (the wrk comparison is noisier
    than the effect): snapshot every fleet's totals, subtract the last ones, take each
    variant's p99 and encode the event; median of 50."""
    import json
    import random

    from sluice.api.dashboard_routes import live_figures
    from sluice.gateway.fleet_stats import OK, FleetStats

    rng = random.Random(5)
    fleets = {f"endpoint-{i:03d}": {("cfg", "prod"): FleetStats()} for i in range(endpoints)}
    for stats in fleets.values():
        for fleet in stats.values():
            for _ in range(2000):
                fleet.record(rng.lognormvariate(-7, 0.5), 5e-5, OK)

    class Service:
        live = fleets

        @staticmethod
        def fleet_stats(name: str, shadows: bool = False) -> dict[tuple[str, str], object]:
            return {key: fleet.snapshot() for key, fleet in fleets[name].items()}

    last: dict = {}
    times = []
    for _ in range(51):
        began = time.perf_counter()
        figures, last = live_figures(Service, last)  # type: ignore[arg-type]
        json.dumps(figures)
        times.append(time.perf_counter() - began)
    return statistics.median(times[1:]) * 1000


if __name__ == "__main__":
    main()
