"""Autoscaling and metric history benchmark: one command, prints its figures, writes JSON.

    python benchmarks/autoscaling.py [--reads 20] [--out benchmarks/results/autoscaling.json]

Three parts, each on `sluice server`s of its own (authentication off), wrk and the servers
on the same machine:

- A load step under target tracking: the digits model (logistic regression) on one
  instance, registered with Application Auto Scaling (min 1, max 4) and a target-tracking
  policy on SageMakerVariantInvocationsPerInstance (boto3), the server's default windows
  (stable 60 s, panic 6 s). wrk sends a light paced load (`--low-s`), then steps to a heavy
  one (`--high-s`), then drops back to the light one until the autoscaler has scaled in
  again. Measured: from the step to the first scale-out decision and to the new instances
  serving (the scaling activity's start and end, as DescribeScalingActivities reports
  them), the count reached, the time to scale back in after the drop, and every failed
  request (non-2xx or socket error) across the whole run.
- What the metric history costs: wrk at c=64 against two servers alike but for
  SLUICE_METRIC_HISTORY (on, off), in interleaved rounds of `--cost-duration` s (each
  holds at least one 10 s sample when it is 10 s or more); medians.
- GetMetricStatistics over 24 hours of 10 s data: a `sluice server` (authentication off),
  one series of 8,640 periods of 20 values each put with boto3's PutMetricData
  (StorageResolution 1, so kept at 10 s), then read back with boto3's cloudwatch client
  (CBOR, its default) per minute (1,440 datapoints), with and without p99: the time from
  call to parsed answer (botocore parses CBOR in pure Python, a good part of it), and the
  server's own time (the same request sent as raw CBOR over HTTP, answer not parsed);
  median and worst of `--reads` calls.

Bars: load step to a new instance serving <= 15 s; 0 failed requests across scale-out and
scale-in; the metric history costs <= 2 % of gateway throughput; GetMetricStatistics over
24 h of 10 s data < 50 ms.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from gateway import Gateway, build_artifacts, report_bars, wrk  # noqa: E402

TARGET = "GraniteServiceVersion20100801"
RESOURCE = "endpoint/scaled/variant/prod"
DIMENSION = "sagemaker:variant:DesiredInstanceCount"


def aws(kind: str, url: str) -> Any:
    import boto3

    return boto3.client(
        kind,
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
    )


class Background:
    """wrk runs one after another in a thread, their results kept."""

    def __init__(self) -> None:
        self.runs: list[dict[str, float]] = []
        self.threads: list[threading.Thread] = []

    def start(self, *args: Any, **kwargs: Any) -> None:
        thread = threading.Thread(target=lambda: self.runs.append(wrk(*args, **kwargs)))
        thread.start()
        self.threads.append(thread)

    def join(self) -> None:
        for thread in self.threads:
            thread.join()

    @property
    def failed(self) -> int:
        return int(sum(r["socket_errors"] + r["non_2xx"] for r in self.runs))

    @property
    def requests(self) -> int:
        return int(sum(r["requests"] for r in self.runs))


def load_step(work: Path, artifacts: dict[str, Path], args: argparse.Namespace) -> dict[str, float]:
    home = work / "scaling"
    home.mkdir()
    env = {
        "SLUICE_AUTOSCALING_STABLE_WINDOW_S": str(args.stable_window),
        "SLUICE_AUTOSCALING_PANIC_WINDOW_S": str(args.panic_window),
    }
    gw = Gateway(home, auth=False, roots=(work,), env=env)
    results: dict[str, float] = {}
    try:
        gw.api.post(
            "/models", json={"name": "digits", "artifact": str(artifacts["digits"])}
        ).raise_for_status()
        gw.endpoint("scaled", "digits")
        scaling, sm = aws("application-autoscaling", gw.url), aws("sagemaker", gw.url)
        common = {"ServiceNamespace": "sagemaker", "ResourceId": RESOURCE,
                  "ScalableDimension": DIMENSION}  # fmt: skip
        scaling.register_scalable_target(MinCapacity=1, MaxCapacity=4, **common)
        scaling.put_scaling_policy(
            PolicyName="per-instance", PolicyType="TargetTrackingScaling",
            TargetTrackingScalingPolicyConfiguration={
                "TargetValue": args.target, "ScaleOutCooldown": 30, "ScaleInCooldown": 10,
                "PredefinedMetricSpecification": {
                    "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
            },
            **common,
        )  # fmt: skip

        def count() -> int:
            variant = sm.describe_endpoint(EndpointName="scaled")["ProductionVariants"][0]
            return int(variant["CurrentInstanceCount"])

        url = f"{gw.url}/endpoints/scaled/invocations"
        body = work / "body.json"
        light = {"concurrency": 2, "pace_ms": 50}  # some 35 requests a second
        heavy = {"concurrency": 32, "pace_ms": 10}  # as many as the machine answers
        load = Background()
        load.start(url, light["concurrency"], args.low_s, body, pace_ms=light["pace_ms"])
        load.join()
        step = time.time()
        load.start(url, heavy["concurrency"], args.high_s, body, pace_ms=heavy["pace_ms"])
        load.join()
        peak = count()
        drop = time.time()
        # Light again until the autoscaler has scaled in (its stable window, then cooldown).
        while True:
            load.start(url, light["concurrency"], 5, body, pace_ms=light["pace_ms"])
            load.join()
            if count() == 1 or time.time() - drop > args.stable_window * 3 + 60:
                break
        back_in = time.time() - drop
        activities = scaling.describe_scaling_activities(ServiceNamespace="sagemaker")[
            "ScalingActivities"
        ]
        outs = sorted(
            (a for a in activities if a["StartTime"].timestamp() >= step),
            key=lambda a: a["StartTime"],
        )
        first = outs[0] if outs else None
        results.update(
            target_per_instance_per_minute=args.target,
            light_rps=load.runs[0]["requests"] / (load.runs[0]["duration_us"] / 1e6),
            heavy_rps=load.runs[1]["requests"] / (load.runs[1]["duration_us"] / 1e6),
            step_to_decision_s=(first["StartTime"].timestamp() - step) if first else -1,
            step_to_serving_s=(
                first["EndTime"].timestamp() - step if first and "EndTime" in first else -1
            ),
            instances_at_peak=peak,
            scale_in_after_drop_s=back_in,
            instances_at_end=count(),
            requests=load.requests,
            failed_requests=load.failed,
        )
        for activity in reversed(activities):
            print(f"  {activity['StartTime']:%H:%M:%S} {activity['StatusCode']:<10} "
                  f"{activity['Description']} {activity['Cause']}")  # fmt: skip
        print(
            f"load step {results['light_rps']:.0f} -> {results['heavy_rps']:.0f} req/s: "
            f"decision after {results['step_to_decision_s']:.1f} s, new instances serving "
            f"after {results['step_to_serving_s']:.1f} s, {peak} instances at the peak; back "
            f"to {results['instances_at_end']} {back_in:.0f} s after the drop; "
            f"{load.failed} of {load.requests} requests failed"
        )
    finally:
        gw.stop()
    return results


def history_cost(
    work: Path, artifacts: dict[str, Path], args: argparse.Namespace
) -> dict[str, float]:
    servers = {}
    for label, on in (("on", "true"), ("off", "false")):
        home = work / f"history-{label}"
        home.mkdir()
        gw = Gateway(home, auth=False, roots=(work,), env={"SLUICE_METRIC_HISTORY": on})
        gw.api.post(
            "/models", json={"name": "digits", "artifact": str(artifacts["digits"])}
        ).raise_for_status()
        gw.endpoint("digits", "digits")
        servers[label] = gw
    rates: dict[str, list[float]] = {"on": [], "off": []}
    try:
        for round_number in range(args.cost_rounds):
            # Alternate which server goes first: the machine's speed drifts within a round.
            order = list(servers.items())
            for label, gw in order if round_number % 2 == 0 else order[::-1]:
                r = wrk(f"{gw.url}/endpoints/digits/invocations", 64, args.cost_duration,
                        work / "body.json")  # fmt: skip
                rates[label].append(r["requests"] / (r["duration_us"] / 1e6))
    finally:
        for gw in servers.values():
            gw.stop()
    on, off = statistics.median(rates["on"]), statistics.median(rates["off"])
    sample_ms = sample_cost_ms(work)
    print(
        f"metric history on {on:,.0f} req/s, off {off:,.0f} req/s (c=64, medians of "
        f"{args.cost_rounds}: on {[round(r) for r in rates['on']]}, off "
        f"{[round(r) for r in rates['off']]})"
    )
    print(
        f"one 10 s sample of 10 endpoints x 2 variants, taken and stored: {sample_ms:.2f} ms "
        f"({sample_ms / 10_000 * 100:.3f} % of one core)"
    )
    return {
        "history_on_rps": on,
        "history_off_rps": off,
        "history_cost": 1 - on / off,
        "history_sample_ms": sample_ms,
    }


def sample_cost_ms(work: Path) -> float:
    """The history's work every 10 s, timed alone (the wrk comparison above is noisier than
    the effect): read 10 endpoints x 2 variants of fleet totals with latencies, turn them
    into periods and store them in SQLite; median of 20."""
    from sluice.control.metric_history import MetricHistory
    from sluice.gateway.fleet_stats import OK, FleetStats
    from sluice.store.db import open_database
    from sluice.store.metric_repo import MetricRepository

    repo = MetricRepository(open_database(f"sqlite:///{work / 'sample-cost.db'}"))
    fleets = {(f"ep{i}", "cfg", v): FleetStats() for i in range(10) for v in ("A", "B")}
    history = MetricHistory(
        repo,
        lambda: [f"ep{i}" for i in range(10)],
        lambda name: {(c, v): s.snapshot() for (e, c, v), s in fleets.items() if e == name},
        lambda name: {"A": 2, "B": 2},
    )
    rng = random.Random(3)
    end = datetime(2026, 1, 1, tzinfo=UTC)
    history.sample(end)
    times = []
    for _ in range(20):
        for stats in fleets.values():
            for _ in range(500):
                stats.record(rng.lognormvariate(-7, 0.5), 5e-5, OK)
        end += timedelta(seconds=10)
        began = time.perf_counter()
        repo.add(history.sample(end))
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reads", type=int, default=20, help="GetMetricStatistics calls")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "autoscaling.json")
    parser.add_argument("--target", type=float, default=6000.0,
                        help="target invocations per instance per minute")  # fmt: skip
    parser.add_argument("--stable-window", type=float, default=60.0)
    parser.add_argument("--panic-window", type=float, default=6.0)
    parser.add_argument("--low-s", type=float, default=10.0, help="light load before the step")
    parser.add_argument("--high-s", type=float, default=20.0, help="heavy load after it")
    parser.add_argument("--cost-rounds", type=int, default=3)
    parser.add_argument("--cost-duration", type=float, default=10.0)
    args = parser.parse_args()
    import boto3
    import cbor2
    import httpx

    work = Path(tempfile.mkdtemp(prefix="sluice-bench-autoscaling-"))
    home = work / "home"
    home.mkdir()
    results: dict[str, float] = {}
    try:
        artifacts = build_artifacts(work)
        results.update(load_step(work, artifacts, args))
        results.update(history_cost(work, artifacts, args))
        gw = Gateway(home, auth=False)
        try:
            cw = boto3.client(
                "cloudwatch",
                endpoint_url=gw.url,
                region_name="us-east-1",
                aws_access_key_id="bench",
                aws_secret_access_key="bench",
            )
            end = datetime.now(UTC).replace(second=0, microsecond=0)
            start = end - timedelta(hours=24)
            dimensions = [{"Name": "EndpointName", "Value": "bench"}]
            rng = random.Random(7)
            data = [
                {
                    "MetricName": "Latency",
                    "Dimensions": dimensions,
                    "Timestamp": start + timedelta(seconds=10 * i),
                    "Values": [rng.lognormvariate(7, 0.5) for _ in range(20)],
                    "StorageResolution": 1,
                    "Unit": "Microseconds",
                }
                for i in range(8640)
            ]
            for at in range(0, len(data), 500):
                cw.put_metric_data(Namespace="Bench", MetricData=data[at : at + 500])
            for label, extra in (
                ("statistics", {"Statistics": ["Average", "Maximum", "SampleCount"]}),
                ("p99", {"ExtendedStatistics": ["p99"]}),
            ):
                raw = cbor2.dumps(
                    {
                        "Namespace": "Bench",
                        "MetricName": "Latency",
                        "Dimensions": dimensions,
                        "StartTime": start,
                        "EndTime": end,
                        "Period": 60,
                        **extra,
                    },
                    datetime_as_timestamp=True,
                )
                url = f"{gw.url}/service/{TARGET}/operation/GetMetricStatistics"
                headers = {"content-type": "application/cbor", "smithy-protocol": "rpc-v2-cbor"}
                server_times = []
                with httpx.Client() as http:
                    for _ in range(args.reads):
                        began = time.perf_counter()
                        http.post(url, content=raw, headers=headers).raise_for_status()
                        server_times.append(time.perf_counter() - began)
                results[f"server_24h_{label}_median_ms"] = statistics.median(server_times) * 1000
                results[f"server_24h_{label}_max_ms"] = max(server_times) * 1000
                print(
                    f"GetMetricStatistics, 24 h of 10 s data per minute ({label}), the server: "
                    f"median {results[f'server_24h_{label}_median_ms']:.1f} ms, worst "
                    f"{results[f'server_24h_{label}_max_ms']:.1f} ms"
                )
                times = []
                for _ in range(args.reads):
                    began = time.perf_counter()
                    answer = cw.get_metric_statistics(
                        Namespace="Bench",
                        MetricName="Latency",
                        Dimensions=dimensions,
                        StartTime=start,
                        EndTime=end,
                        Period=60,
                        **extra,
                    )
                    times.append(time.perf_counter() - began)
                    assert len(answer["Datapoints"]) == 1440, len(answer["Datapoints"])
                results[f"get_24h_{label}_median_ms"] = statistics.median(times) * 1000
                results[f"get_24h_{label}_max_ms"] = max(times) * 1000
                print(
                    f"GetMetricStatistics, 24 h of 10 s data per minute ({label}), boto3: median "
                    f"{results[f'get_24h_{label}_median_ms']:.1f} ms, worst "
                    f"{results[f'get_24h_{label}_max_ms']:.1f} ms"
                )
        finally:
            gw.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    worst = max(results["server_24h_statistics_median_ms"], results["server_24h_p99_median_ms"])
    serving = results["step_to_serving_s"]
    bars = [
        (
            "load step to a new instance serving <= 15 s",
            f"{serving:.1f} s ({results['instances_at_peak']:.0f} instances at the peak)",
            0 <= serving <= 15,
        ),
        (
            "0 failed requests across scale-out and scale-in",
            f"{results['failed_requests']:.0f} of {results['requests']:.0f}; back to "
            f"{results['instances_at_end']:.0f} instance(s)",
            results["failed_requests"] == 0 and results["instances_at_end"] == 1,
        ),
        (
            "the metric history costs <= 2 % of gateway throughput (c=64)",
            f"{results['history_cost'] * 100:+.1f} % ({results['history_on_rps']:,.0f} vs "
            f"{results['history_off_rps']:,.0f} req/s)",
            results["history_cost"] <= 0.02,
        ),
        (
            "GetMetricStatistics over 24 h of 10 s data < 50 ms (the server, median)",
            f"{worst:.1f} ms",
            worst < 50,
        ),
    ]
    report_bars(args.out, results, bars)


if __name__ == "__main__":
    main()
