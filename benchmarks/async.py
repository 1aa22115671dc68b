"""Async inference benchmark: one command, prints a table, writes JSON.

    python benchmarks/async.py [--duration 8] [--out benchmarks/results/async.json]

One `sluice server` (authentication off, as in --insecure-local) with the digits model
(logistic regression, one JSON row per request) behind two endpoints of one instance each:
a real-time one and an async one (inputs and outputs in the server's local s3:// stand-in).
It measures, with `wrk` on the same machine:

- real-time requests/s at c=16 (the reference), at the start and again after the drain
  (a new real-time endpoint of the same model): this machine's speed drifts, and the
  reference is the mean of the two;
- InvokeEndpointAsync latency (until the 202) while the queue is served, and the
  completions/s meanwhile (from the server's own counter): at c=1; at a steady load of
  about 1,000 requests/s (c=16, each connection pausing 15 ms between requests), where
  the server keeps up and the latency is its own; and at c=16 without pauses, where the
  server is at its limit (accepting and answering share the same two cores) and the
  latency is mostly the queue of connections in front of it;
- sustained completions/s: the rate at which a backlog drains with nothing else running.
  The backlog is made by enqueueing for `--duration` seconds while the async endpoint's
  worker is stopped (SIGSTOP; the requests it was sent wait in its socket); the drain is
  timed from SIGCONT to the last completion.

Bars: enqueue p99 < 10 ms (at c=1 and at the steady load); sustained completions
>= 50 % of real-time req/s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from gateway import Gateway, build_artifacts, report_bars, wrk  # noqa: E402


def processed(gw: Gateway, endpoint: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    total = 0.0
    for family in text_string_to_metric_families(httpx.get(f"{gw.url}/metrics").text):
        if family.name == "sluice_async_invocations":
            for sample in family.samples:
                if sample.name.endswith("_total") and sample.labels["endpoint"] == endpoint:
                    total += sample.value
    return total


def backlog(gw: Gateway, endpoint: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(httpx.get(f"{gw.url}/metrics").text):
        if family.name == "sluice_async_backlog_size":
            for sample in family.samples:
                if sample.labels["endpoint"] == endpoint:
                    return sample.value
    return 0.0


def create_cost_us(folder: Path, count: int = 300) -> float:
    """CPU time to create one empty file in `folder`, in microseconds."""
    probe = folder / "probe"
    probe.mkdir()
    started = time.process_time()
    for i in range(count):
        (probe / str(i)).touch()
    return (time.process_time() - started) / count * 1e6


def workers_of(pid: int) -> list[int]:
    """The model workers among the descendants of process `pid`."""
    children: dict[int, list[int]] = {}
    names: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            name, rest = stat.split("(", 1)[1].rsplit(")", 1)
            children.setdefault(int(rest.split()[1]), []).append(int(entry))
            names[int(entry)] = name
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            todo.append(child)
            if names[child] == "sluice-worker":
                found.append(child)
    return found


def wait_drained(gw: Gateway, endpoint: str) -> None:
    """Wait until the endpoint's queue is empty and its counter has stood still for a
    second (looking rarely: each look costs the server a metrics page)."""
    last = processed(gw, endpoint)
    changed = time.monotonic()
    while time.monotonic() - changed < 1.0 or backlog(gw, endpoint) > 0:
        time.sleep(0.25)
        now = processed(gw, endpoint)
        if now != last:
            last, changed = now, time.monotonic()


def written_since(folder: Path, since: float) -> tuple[int, float]:
    """How many files in `folder` were written at or after `since` (wall clock), and when
    the last of them was."""
    count, last = 0, since
    for entry in os.scandir(folder):
        modified = entry.stat().st_mtime
        if modified >= since:
            count += 1
            last = max(last, modified)
    return count, last


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per measurement")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "async.json")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="leave the work folder (tens of thousands of files) in place; see the note on "
        "file creation below",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")
    work = Path(tempfile.mkdtemp(prefix="sluice-bench-async-"))
    creating = create_cost_us(work)
    if creating > 200:
        print(
            f"note: creating a file here costs {creating:.0f} us (usually ~25): on ext4 without "
            "a journal, inodes freed in the last minutes are skipped one by one, so the "
            "figures below are slower than this machine is (wait a few minutes after "
            "deleting many files, or pass --keep to earlier runs)"
        )
    home = work / "home"
    home.mkdir()
    results: dict[str, float] = {}
    try:
        artifacts = build_artifacts(work)
        body = work / "body.json"
        gw = Gateway(home, auth=False, roots=(work,))
        try:
            gw.api.post(
                "/models", json={"name": "digits", "artifact": str(artifacts["digits"])}
            ).raise_for_status()
            gw.endpoint("realtime", "digits")
            gw.api.post(
                "/endpoint-configs",
                json={
                    "name": "queued",
                    "variants": [{"name": "prod", "model": "digits"}],
                    "async_inference": {"output_path": "s3://bench/out"},
                },
            ).raise_for_status()
            gw.api.post("/endpoints", json={"name": "queued", "config": "queued"})
            while gw.api.get("/endpoints/queued").json()["status"] != "InService":
                time.sleep(0.1)
            source = home / "s3" / "bench" / "in" / "row.json"
            source.parent.mkdir(parents=True)
            shutil.copy(body, source)
            empty = work / "empty"
            empty.write_bytes(b"")
            headers = {
                "X-Amzn-SageMaker-InputLocation": "s3://bench/in/row.json",
                "X-Amzn-SageMaker-Content-Type": "application/json",
            }
            realtime = wrk(f"{gw.url}/endpoints/realtime/invocations", 16, args.duration, body)
            results["realtime_rps_c16_before"] = realtime["requests"] / (
                realtime["duration_us"] / 1e6
            )
            print(f"real-time c=16: {results['realtime_rps_c16_before']:,.0f} req/s")

            url = f"{gw.url}/endpoints/queued/async-invocations"
            enqueued = 0
            for load, c, pace in (("c1", 1, None), ("steady", 16, 15), ("c16", 16, None)):
                before = processed(gw, "queued")
                at = time.monotonic()
                r = wrk(url, c, args.duration, empty, headers, pace_ms=pace)
                rate = (processed(gw, "queued") - before) / (time.monotonic() - at)
                enqueued += int(r["requests"])
                results[f"enqueue_p50_ms_{load}"] = r["p50_us"] / 1000
                results[f"enqueue_p99_ms_{load}"] = r["p99_us"] / 1000
                results[f"enqueue_rps_{load}"] = r["requests"] / (r["duration_us"] / 1e6)
                results[f"completions_per_s_while_enqueueing_{load}"] = rate
                results[f"errors_{load}"] = r["socket_errors"] + r["non_2xx"]
                print(
                    f"enqueue {load:>6}: {results[f'enqueue_rps_{load}']:,.0f} req/s, p50 "
                    f"{results[f'enqueue_p50_ms_{load}']:.2f} ms, p99 "
                    f"{results[f'enqueue_p99_ms_{load}']:.2f} ms, errors "
                    f"{results[f'errors_{load}']:.0f}; completions meanwhile {rate:,.0f}/s"
                )
            wait_drained(gw, "queued")
            # The realtime endpoint goes: only the async endpoint's worker is left.
            gw.api.delete("/endpoints/realtime").raise_for_status()
            while gw.api.get("/endpoints/realtime").status_code != 404:
                time.sleep(0.1)
            stopped = workers_of(gw.proc.pid)
            for pid in stopped:
                os.kill(pid, signal.SIGSTOP)
            try:
                r = wrk(url, 16, args.duration, empty, headers)
                enqueued += int(r["requests"])
            finally:
                for pid in stopped:
                    os.kill(pid, signal.SIGCONT)
            # Timed by the answers' files: from SIGCONT to the last one written.
            drain_started = time.time()
            wait_drained(gw, "queued")
            last = processed(gw, "queued")
            drained, finished = written_since(home / "s3" / "bench" / "out", drain_started)
            results["drained"] = drained
            results["drain_s"] = finished - drain_started
            results["sustained_completions_per_s"] = results["drained"] / results["drain_s"]
            # wrk counts only the answers it read before it stopped; the server may have
            # accepted a few more.
            enqueued = max(enqueued, int(last))
            results["enqueued"] = enqueued
            results["backlog_after"] = backlog(gw, "queued")
            gw.endpoint("realtime-again", "digits")
            realtime = wrk(
                f"{gw.url}/endpoints/realtime-again/invocations", 16, args.duration, body
            )
            results["realtime_rps_c16_after"] = realtime["requests"] / (
                realtime["duration_us"] / 1e6
            )
            results["realtime_rps_c16"] = (
                results["realtime_rps_c16_before"] + results["realtime_rps_c16_after"]
            ) / 2
            print(f"real-time c=16 again: {results['realtime_rps_c16_after']:,.0f} req/s")
            outputs = len(list((home / "s3" / "bench" / "out").glob("*.out")))
            results["outputs_written"] = outputs
            print(
                f"backlog of {results['drained']:,.0f} drained in {results['drain_s']:.1f} s: "
                f"{results['sustained_completions_per_s']:,.0f}/s sustained; {enqueued:,} "
                f"requests in all, {outputs:,} outputs"
            )
        finally:
            gw.stop()
    finally:
        if args.keep:
            print(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    sustained = results["sustained_completions_per_s"]
    reference = results["realtime_rps_c16"]
    bars = [
        (
            "enqueue p99 < 10 ms (c=1)",
            f"{results['enqueue_p99_ms_c1']:.2f} ms",
            results["enqueue_p99_ms_c1"] < 10,
        ),
        (
            "enqueue p99 < 10 ms (steady load)",
            f"{results['enqueue_p99_ms_steady']:.2f} ms at "
            f"{results['enqueue_rps_steady']:,.0f} req/s",
            results["enqueue_p99_ms_steady"] < 10,
        ),
        (
            "sustained completions >= 50 % of real-time req/s (c=16)",
            f"{sustained:,.0f} / {reference:,.0f} = {sustained / reference:.0%}",
            sustained >= 0.5 * reference,
        ),
        (
            "every request answered once",
            f"{results['outputs_written']:,.0f} outputs for {results['enqueued']:,.0f}",
            results["outputs_written"] == results["enqueued"],
        ),
    ]
    report_bars(args.out, results, bars, duration_s=args.duration)


if __name__ == "__main__":
    main()
