"""Batch transform benchmark: one command, prints a table, writes JSON.

    python benchmarks/transform.py [--rows 1000000] [--out benchmarks/results/transform.json]

The digits model (logistic regression) over one CSV of `--rows` digits rows (the 1,797
bundled rows repeated), on this machine's cores:

- in-process: the pipeline a user would write by hand (Arrow reads the CSV, predict,
  write one prediction a line), in this process;
- sluice: CreateTransformJob through boto3 (2 instances, Line split, MultiRecord, 6 MB
  mini-batches, CSV out, AssembleWith Line), from the call until DescribeTransformJob
  says Completed;
- HTTP per record: a real-time endpoint's req/s with one row a request (wrk at c=16),
  as the time 1 M such requests would take;
- killed at 50 %: the same job, the server killed with -9 once half its chunks are
  committed, restarted, until Completed (restart included; the server serves nothing else).

Bars: sluice >= 90 % of in-process; >= 20x HTTP per record; killed total <= 1.6x.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from gateway import Gateway, build_artifacts, cpu_model, wrk  # noqa: E402


def write_rows(path: Path, rows: int) -> None:
    from sklearn.datasets import load_digits

    x = load_digits().data
    block = "".join(",".join(f"{v:g}" for v in row) + "\n" for row in x).encode()
    whole, rest = divmod(rows, len(x))
    with path.open("wb") as out:
        for _ in range(whole):
            out.write(block)
        out.write(b"".join(block.splitlines(keepends=True)[:rest]))


def in_process(model_path: Path, source: Path, target: Path) -> float:
    import joblib
    import numpy as np
    import pyarrow.csv as arrow_csv

    started = time.perf_counter()
    model = joblib.load(model_path)
    table = arrow_csv.read_csv(
        source, read_options=arrow_csv.ReadOptions(autogenerate_column_names=True)
    )
    rows = np.column_stack([column.to_numpy() for column in table.columns]).astype(np.float64)
    predictions = model.predict(rows)
    target.write_text("\n".join(map(str, predictions.tolist())) + "\n")
    return time.perf_counter() - started


def sagemaker(url: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "sagemaker",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret",
        config=Config(retries={"max_attempts": 1}),
    )


def start_job(gw: Gateway, name: str) -> None:
    sagemaker(gw.url).create_transform_job(
        TransformJobName=name,
        ModelName="digits",
        MaxPayloadInMB=6,
        BatchStrategy="MultiRecord",
        TransformInput={
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://b/in/"}},
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        TransformOutput={
            "S3OutputPath": f"s3://b/out/{name}",
            "Accept": "text/csv",
            "AssembleWith": "Line",
        },
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 2},
    )


def wait_done(url: str, name: str, timeout: float = 3600) -> str:
    client = sagemaker(url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.describe_transform_job(TransformJobName=name)
        if job["TransformJobStatus"] in ("Completed", "Failed", "Stopped"):
            return str(job["TransformJobStatus"]) + " " + str(job.get("FailureReason") or "")
        time.sleep(0.05)
    raise TimeoutError(name)


def count_lines(path: Path) -> int:
    with path.open("rb") as stream:
        return sum(block.count(b"\n") for block in iter(lambda: stream.read(1 << 24), b""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--http-duration", type=float, default=5.0)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "transform.json")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")
    work = Path(tempfile.mkdtemp(prefix="sluice-bench-transform-"))
    home = work / "home"
    results: dict[str, Any] = {"rows": args.rows}
    try:
        artifacts = build_artifacts(work)
        source = home / "s3" / "b" / "in" / "rows.csv"
        source.parent.mkdir(parents=True)
        write_rows(source, args.rows)
        results["input_mb"] = round(source.stat().st_size / 1e6, 1)
        results["in_process_s"] = round(
            in_process(artifacts["digits"] / "model.joblib", source, work / "by-hand.out"), 3
        )

        gw = Gateway(home, auth=False, roots=(work,))
        try:
            model = {"name": "digits", "artifact": str(artifacts["digits"])}
            gw.api.post("/models", json=model).raise_for_status()
            started = time.perf_counter()
            start_job(gw, "whole")
            status = wait_done(gw.url, "whole")
            results["sluice_s"] = round(time.perf_counter() - started, 3)
            assert status.startswith("Completed"), status
            output = home / "s3" / "b" / "out" / "whole" / "rows.csv.out"
            assert count_lines(output) == args.rows, "missing or extra output lines"
            assert output.read_bytes() == (work / "by-hand.out").read_bytes(), "answers differ"

            gw.endpoint("realtime", "digits")
            body = work / "row.csv"
            body.write_bytes(source.open("rb").readline())
            url = f"{gw.url}/endpoints/realtime/invocations"
            run = wrk(url, 16, args.http_duration, body, {"Content-Type": "text/csv"})
            assert not run["non_2xx"] and not run["socket_errors"], run
            results["http_per_record_rps"] = round(run["requests"] / run["duration_us"] * 1e6, 1)

            # The killed run measures the job's own restart: the server serves nothing else.
            gw.api.delete("/endpoints/realtime").raise_for_status()
            started = time.perf_counter()
            start_job(gw, "killed")
            # Killed once half the chunks are committed (done for good).
            while True:
                progress = gw.api.get("/transform-jobs/killed").json()["progress"]
                if progress["chunks"] and progress["chunks_done"] >= progress["chunks"] / 2:
                    break
                time.sleep(0.02)
            results["killed_after_chunks"] = [progress["chunks_done"], progress["chunks"]]
            gw.proc.send_signal(signal.SIGKILL)
            gw.proc.wait()
        finally:
            gw.stop()
        gw = Gateway(home, auth=False, roots=(work,))
        try:
            status = wait_done(gw.url, "killed")
            results["killed_s"] = round(time.perf_counter() - started, 3)
            results["restart_ready_s"] = round(gw.ready_s, 3)
            assert status.startswith("Completed"), status
            output = home / "s3" / "b" / "out" / "killed" / "rows.csv.out"
            assert output.read_bytes() == (work / "by-hand.out").read_bytes(), "answers differ"
        finally:
            gw.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    rows = args.rows
    results["records_per_s"] = {
        "in_process": round(rows / results["in_process_s"]),
        "sluice": round(rows / results["sluice_s"]),
        "http_per_record": results["http_per_record_rps"],
    }
    vs_in_process = results["in_process_s"] / results["sluice_s"]
    vs_http = rows / results["sluice_s"] / results["http_per_record_rps"]
    killed_ratio = results["killed_s"] / results["sluice_s"]
    results["bars"] = {
        "sluice / in-process >= 0.90": [round(vs_in_process, 3), vs_in_process >= 0.9],
        "sluice / HTTP per record >= 20": [round(vs_http, 1), vs_http >= 20],
        "killed at 50 % / uninterrupted <= 1.6": [round(killed_ratio, 3), killed_ratio <= 1.6],
    }
    results["machine"] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "note": "load generator, server and workers on the same cores",
    }
    print(f"{'':28}{'seconds':>10}{'records/s':>14}")
    print(f"{'in-process (Arrow, predict)':28}{results['in_process_s']:>10.2f}"
          f"{results['records_per_s']['in_process']:>14,}")  # fmt: skip
    print(f"{'sluice transform job':28}{results['sluice_s']:>10.2f}"
          f"{results['records_per_s']['sluice']:>14,}")  # fmt: skip
    print(f"{'HTTP per record (c=16)':28}{rows / results['http_per_record_rps']:>10.2f}"
          f"{results['http_per_record_rps']:>14,.0f}")  # fmt: skip
    print(f"{'killed at 50 %, resumed':28}{results['killed_s']:>10.2f}")
    for bar, (value, ok) in results["bars"].items():
        print(f"  {bar}: {value} {'ok' if ok else 'MISSED'}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
