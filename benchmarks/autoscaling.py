"""Autoscaling and metric history benchmark: one command, prints its figures, writes JSON.

    python benchmarks/autoscaling.py [--reads 20] [--out benchmarks/results/autoscaling.json]

Measured so far (the autoscaler's bars come with it):

- GetMetricStatistics over 24 hours of 10 s data: a `sluice server` (authentication off),
  one series of 8,640 periods of 20 values each put with boto3's PutMetricData
  (StorageResolution 1, so kept at 10 s), then read back with boto3's cloudwatch client
  (CBOR, its default) per minute (1,440 datapoints), with and without p99: the time from
  call to parsed answer (botocore parses CBOR in pure Python, a good part of it), and the
  server's own time (the same request sent as raw CBOR over HTTP, answer not parsed);
  median and worst of `--reads` calls.

Bar: GetMetricStatistics over 24 h of 10 s data < 50 ms.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from gateway import Gateway, report_bars  # noqa: E402

TARGET = "GraniteServiceVersion20100801"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reads", type=int, default=20, help="GetMetricStatistics calls")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "autoscaling.json")
    args = parser.parse_args()
    import boto3
    import cbor2
    import httpx

    work = Path(tempfile.mkdtemp(prefix="sluice-bench-autoscaling-"))
    home = work / "home"
    home.mkdir()
    results: dict[str, float] = {}
    try:
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
    bars = [
        (
            "GetMetricStatistics over 24 h of 10 s data < 50 ms (the server, median)",
            f"{worst:.1f} ms",
            worst < 50,
        )
    ]
    report_bars(args.out, results, bars)


if __name__ == "__main__":
    main()
