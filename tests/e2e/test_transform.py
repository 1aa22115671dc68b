"""Batch transform through boto3 against a running server: SageMaker's options and output
names, bad records both ways, stop, and a server killed mid-job that resumes exactly."""

from __future__ import annotations

import gzip
import json
import signal
from pathlib import Path
from typing import Any

import httpx
import joblib
import numpy as np
import pytest
from botocore.exceptions import ClientError

from sluice.compat.sagemaker.shapes import ServiceModel
from tests.conftest import RunningServer
from tests.e2e.helpers import worker_processes
from tests.e2e.test_sagemaker_workflow import ROLE, clients, conforms, until
from tests.models import digits

pytestmark = pytest.mark.slow

DONE = ("Completed", "Failed", "Stopped")


def shapes() -> ServiceModel:
    return ServiceModel("sagemaker", ["DescribeTransformJob", "ListTransformJobs"])


def put(server: RunningServer, key: str, body: bytes) -> str:
    path = server.home / "s3" / "bucket" / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)
    return f"s3://bucket/{key}"


def out(server: RunningServer, key: str) -> Path:
    return server.home / "s3" / "bucket" / key


def csv_rows(rows: np.ndarray) -> bytes:
    return "".join(",".join(f"{v:g}" for v in row) + "\n" for row in rows).encode()


def model(sm: Any, artifacts: dict[str, Path], name: str = "digits", **environment: str) -> None:
    container: dict[str, Any] = {"ModelDataUrl": f"file://{artifacts['logreg_tar']}"}
    if environment:
        container = {"ModelDataUrl": artifacts["slow"].as_uri(), "Environment": environment}
    sm.create_model(ModelName=name, PrimaryContainer=container, ExecutionRoleArn=ROLE)


def transform(sm: Any, name: str, input_uri: str, **options: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "TransformJobName": name,
        "ModelName": options.pop("model", "digits"),
        "TransformInput": {
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": options.pop("data_type", "S3Prefix"),
                    "S3Uri": input_uri,
                }
            },
            "ContentType": options.pop("content_type", "text/csv"),
            "SplitType": options.pop("split", "Line"),
            "CompressionType": options.pop("compression", "None"),
        },
        "TransformOutput": {
            "S3OutputPath": options.pop("output", f"s3://bucket/out/{name}"),
            "Accept": options.pop("accept", "text/csv"),
            "AssembleWith": options.pop("assemble", "Line"),
        },
        "TransformResources": {
            "InstanceType": "ml.m5.large",
            "InstanceCount": options.pop("instances", 1),
        },
        **options,
    }
    return dict(sm.create_transform_job(**request))


def finished(sm: Any, name: str, timeout: float = 60) -> dict[str, Any]:
    def status() -> dict[str, Any] | None:
        job = sm.describe_transform_job(TransformJobName=name)
        return job if job["TransformJobStatus"] in DONE else None

    result: dict[str, Any] = until(status, timeout=timeout)
    return result


@pytest.fixture
def expected(artifacts: dict[str, Path]) -> Any:
    estimator = joblib.load(artifacts["logreg"] / "model.joblib")
    return lambda rows: [str(v) for v in estimator.predict(rows)]


def test_csv_lines_from_a_prefix_and_a_manifest_in_input_order(
    server: RunningServer, artifacts: dict[str, Path], expected: Any
) -> None:
    sm, _ = clients(server.url)
    model(sm, artifacts)
    x, _ = digits()
    put(server, "in/a.csv", csv_rows(x[:300]))
    put(server, "in/nested/b.csv", csv_rows(x[300:310]))
    put(server, "in/.hidden", b"not an input")

    arn = transform(sm, "csv-job", "s3://bucket/in/", instances=2)["TransformJobArn"]
    assert arn == "arn:aws:sagemaker:us-east-1:000000000000:transform-job/csv-job"
    job = finished(sm, "csv-job")
    conforms(shapes(), "DescribeTransformJob", job)
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    assert job["TransformEndTime"] >= job["TransformStartTime"]
    a = out(server, "out/csv-job/a.csv.out").read_text().splitlines()
    b = out(server, "out/csv-job/nested/b.csv.out").read_text().splitlines()
    assert a == expected(x[:300]) and b == expected(x[300:310])
    assert not out(server, "out/csv-job/.hidden.out").exists()
    summary = json.loads(out(server, "out/csv-job/csv-job.summary.json").read_text())
    assert summary["counts"]["records_done"] == 310 and summary["status"] == "Completed"
    assert [f["input"] for f in summary["files"]] == [
        "s3://bucket/in/a.csv",
        "s3://bucket/in/nested/b.csv",
    ]

    # A manifest names objects under its prefix, in its own order.
    manifest = [{"prefix": "s3://bucket/in/"}, "nested/b.csv", "a.csv"]
    put(server, "manifest.json", json.dumps(manifest).encode())
    transform(sm, "from-manifest", "s3://bucket/manifest.json", data_type="ManifestFile")
    assert finished(sm, "from-manifest")["TransformJobStatus"] == "Completed"
    assert out(server, "out/from-manifest/nested/b.csv.out").read_text().splitlines() == b

    listed = sm.list_transform_jobs(SortBy="Name", SortOrder="Ascending")
    conforms(shapes(), "ListTransformJobs", listed)
    names = [j["TransformJobName"] for j in listed["TransformJobSummaries"]]
    assert names == ["csv-job", "from-manifest"]


def test_json_lines_single_records_whole_files_and_gzip(
    server: RunningServer, artifacts: dict[str, Path], expected: Any
) -> None:
    sm, _ = clients(server.url)
    model(sm, artifacts)
    x, _ = digits()
    lines = b"".join(json.dumps(row.tolist()).encode() + b"\n" for row in x[:20])
    put(server, "jsonl/rows.jsonl", lines)
    transform(
        sm, "single", "s3://bucket/jsonl/", content_type="application/jsonlines",
        accept="application/jsonlines", BatchStrategy="SingleRecord",
    )  # fmt: skip
    assert finished(sm, "single")["TransformJobStatus"] == "Completed"
    answers = out(server, "out/single/rows.jsonl.out").read_text().splitlines()
    assert answers == expected(x[:20])

    # SplitType None: each object is one request; gzip objects are read unpacked.
    put(server, "whole/one.json.gz", gzip.compress(json.dumps(x[:5].tolist()).encode()))
    transform(
        sm, "whole", "s3://bucket/whole/", content_type="application/json",
        accept="application/json", split="None", compression="Gzip", assemble="None",
    )  # fmt: skip
    assert finished(sm, "whole")["TransformJobStatus"] == "Completed"
    answer = json.loads(out(server, "out/whole/one.json.gz.out").read_bytes())
    assert [str(p) for p in answer["predictions"]] == expected(x[:5])


def test_a_bad_record_fails_its_file_by_default_or_is_set_aside_on_request(
    server: RunningServer, artifacts: dict[str, Path], expected: Any
) -> None:
    sm, _ = clients(server.url)
    model(sm, artifacts)
    x, _ = digits()
    good = csv_rows(x[:50])
    bad = csv_rows(x[:10]) + b"1,2,3\n" + csv_rows(x[10:20])  # line 11 has 3 values
    put(server, "mixed/good.csv", good)
    put(server, "mixed/bad.csv", bad)

    transform(sm, "strict", "s3://bucket/mixed/")
    job = finished(sm, "strict")
    assert job["TransformJobStatus"] == "Failed"
    assert "s3://bucket/mixed/bad.csv: line 11" in job["FailureReason"]
    assert not out(server, "out/strict/bad.csv.out").exists()
    assert out(server, "out/strict/good.csv.out").read_text().splitlines() == expected(x[:50])

    transform(sm, "lenient", "s3://bucket/mixed/", Environment={"SLUICE_ON_BAD_RECORD": "continue"})
    job = finished(sm, "lenient")
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    assert job["Environment"] == {"SLUICE_ON_BAD_RECORD": "continue"}
    kept = out(server, "out/lenient/bad.csv.out").read_text().splitlines()
    assert kept == expected(np.vstack([x[:10], x[10:20]]))
    (error,) = [json.loads(line) for line in out(server, "out/lenient/bad.csv.out.errors").open()]
    assert error["line"] == 11 and "64 features" in error["error"]


def test_inputs_are_filtered_and_joined_with_their_answers(
    server: RunningServer, artifacts: dict[str, Path], expected: Any
) -> None:
    sm, _ = clients(server.url)
    model(sm, artifacts)
    x, _ = digits()
    with_ids = b"".join(f"id-{i},".encode() + csv_rows(x[i : i + 1]) for i in range(30))
    put(server, "ids/rows.csv", with_ids)
    processing = {"InputFilter": "$[1:]", "JoinSource": "Input", "OutputFilter": "$[0,-1]"}
    transform(sm, "csv-join", "s3://bucket/ids/", DataProcessing=processing)
    job = finished(sm, "csv-join")
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    assert job["DataProcessing"] == processing
    lines = out(server, "out/csv-join/rows.csv.out").read_text().splitlines()
    assert lines == [f"id-{i},{p}" for i, p in enumerate(expected(x[:30]))]

    records = b"".join(
        json.dumps({"id": i, "features": x[i].tolist()}).encode() + b"\n" for i in range(12)
    )
    put(server, "docs/rows.jsonl", records)
    transform(
        sm, "json-join", "s3://bucket/docs/", content_type="application/jsonlines",
        accept="application/json",
        DataProcessing={"InputFilter": "$.features", "JoinSource": "Input",
                        "OutputFilter": "$['id','SageMakerOutput']"},
    )  # fmt: skip
    job = finished(sm, "json-join")
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    answers = [json.loads(line) for line in out(server, "out/json-join/rows.jsonl.out").open()]
    assert answers == [{"id": i, "SageMakerOutput": int(p)} for i, p in enumerate(expected(x[:12]))]


def test_parquet_is_read_by_row_group_with_row_numbers_for_bad_rows(
    server: RunningServer, artifacts: dict[str, Path], expected: Any
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sm, _ = clients(server.url)
    model(sm, artifacts)
    x, _ = digits()
    rows = x[:90].copy()
    rows[41, 3] = np.nan  # row 42: the model refuses it
    table = pa.table({f"p{i}": rows[:, i] for i in range(64)})
    target = out(server, "pq/rows.parquet")
    target.parent.mkdir(parents=True)
    pq.write_table(table, target, row_group_size=25)  # four row groups
    transform(
        sm, "parquet", "s3://bucket/pq/", content_type="application/x-parquet",
        Environment={"SLUICE_ON_BAD_RECORD": "continue"},
    )  # fmt: skip
    job = finished(sm, "parquet")
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    lines = out(server, "out/parquet/rows.parquet.out").read_text().splitlines()
    assert lines == expected(np.delete(rows, 41, axis=0))
    (error,) = [
        json.loads(line) for line in out(server, "out/parquet/rows.parquet.out.errors").open()
    ]
    assert error["line"] == 42 and "NaN" in error["error"]


def test_bad_requests_are_refused_before_anything_runs(
    server: RunningServer, artifacts: dict[str, Path]
) -> None:
    sm, _ = clients(server.url)
    model(sm, artifacts)
    put(server, "in/a.csv", b"1,2\n")
    cases = [
        ({"model": "missing"}, "missing"),
        ({"split": "TFRecord"}, "TFRecord"),
        ({"MaxPayloadInMB": 60, "MaxConcurrentTransforms": 2}, "100"),
        ({"output": "/etc/out"}, "outside"),
        ({"Environment": {"LD_PRELOAD": "/tmp/x.so"}}, "LD_PRELOAD"),
        ({"DataProcessing": {"InputFilter": "$[1:"}}, "InputFilter"),
        ({"DataProcessing": {"JoinSource": "Input"}, "split": "None"}, "SplitType Line"),
    ]
    for number, (options, words) in enumerate(cases):
        with pytest.raises(ClientError) as caught:
            transform(sm, f"bad-{number}", "s3://bucket/in/", **options)
        assert words in str(caught.value)
    assert sm.list_transform_jobs()["TransformJobSummaries"] == []
    transform(sm, "twice", "s3://bucket/in/")
    with pytest.raises(ClientError) as caught:
        transform(sm, "TWICE", "s3://bucket/in/")
    assert "already exists" in str(caught.value)
    with pytest.raises(ClientError):
        sm.describe_transform_job(TransformJobName="nothing")
    # An empty prefix fails the job with a reason.
    transform(sm, "empty", "s3://bucket/nothing-here/")
    job = finished(sm, "empty")
    assert job["TransformJobStatus"] == "Failed" and "no input objects" in job["FailureReason"]


def test_stop_and_a_killed_server_resumes_with_exact_output(
    tmp_path: Path, artifacts: dict[str, Path], expected: Any
) -> None:
    env = {"SLUICE_TRANSFORM_CHUNK_BYTES": "4000"}  # ~25 rows a chunk: many chunks
    server = RunningServer(tmp_path / "home", env)
    x, _ = digits()
    rows = np.vstack([x] * 2)[:2000]
    try:
        sm, _ = clients(server.url)
        model(sm, artifacts, SLOW_SECONDS="0.05")
        put(server, "big/rows.csv", csv_rows(rows))
        transform(sm, "stopped", "s3://bucket/big/", model="digits")
        until(lambda: any((server.home / "transforms" / "stopped").glob("*.out")), timeout=30)
        sm.stop_transform_job(TransformJobName="stopped")
        assert finished(sm, "stopped")["TransformJobStatus"] == "Stopped"
        assert not out(server, "out/stopped/rows.csv.out").exists()

        transform(sm, "resumed", "s3://bucket/big/", model="digits", instances=2)
        parts = server.home / "transforms" / "resumed"
        until(lambda: len(list(parts.glob("*.out"))) >= 10, timeout=60)
        server.stop(signal.SIGKILL)
        assert not out(server, "out/resumed/rows.csv.out").exists(), "finished before the kill"
    finally:
        server.stop()
    restarted = RunningServer(tmp_path / "home", env)
    try:
        sm, _ = clients(restarted.url)
        job = finished(sm, "resumed", timeout=120)
        assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
        lines = out(restarted, "out/resumed/rows.csv.out").read_text().splitlines()
        assert lines == expected(rows)
        assert (
            sm.describe_transform_job(TransformJobName="stopped")["TransformJobStatus"] == "Stopped"
        )
    finally:
        restarted.stop()


def test_the_native_api_client_and_command_line_show_progress(
    server: RunningServer, artifacts: dict[str, Path], expected: Any
) -> None:
    from click.testing import CliRunner

    from sluice.cli.main import cli
    from sluice.client import Client

    x, _ = digits()
    put(server, "cli/rows.csv", csv_rows(x[:200]) + b"1,2\n")
    seen = []
    with Client(server.url) as c:
        c.create_model("digits", str(artifacts["logreg_tar"]))
        c.create_transform(
            "native", "digits", "s3://bucket/cli/", "s3://bucket/out/native",
            accept="text/csv", on_bad_record="continue",
        )  # fmt: skip
        job = c.wait_for_transform("native", poll=0.05, on_progress=seen.append)
        assert job.status.value == "Completed" and job.ended_at is not None
        p = job.progress
        assert (p.files, p.files_done, p.records, p.records_done, p.records_failed) == (
            1, 1, 201, 200, 1,
        )  # fmt: skip
        assert p.records_per_s and p.records_per_s > 0 and p.eta_s is None
        assert job.summary == "s3://bucket/out/native/native.summary.json"
        assert [j.name for j in c.list_transforms("Completed")] == ["native"]
        with pytest.raises(Exception, match="does not exist"):
            c.describe_transform("nothing")
    assert seen[-1].status.value == "Completed"
    assert out(server, "out/native/rows.csv.out").read_text().splitlines() == expected(x[:200])
    sm, _ = clients(server.url)
    conforms(shapes(), "DescribeTransformJob", sm.describe_transform_job(TransformJobName="native"))

    run = CliRunner().invoke
    base = ["--url", server.url]
    created = run(
        cli,
        [*base, "transform", "create", "by-cli", "--model", "digits", "--input",
         "s3://bucket/cli/rows.csv", "--output", "s3://bucket/out/cli", "--accept", "text/csv",
         "--wait"],
    )  # fmt: skip
    assert created.exit_code == 1, created.output  # the bad line fails the file by default
    assert "Failed" in created.output and "line 201" in created.output
    listed = run(cli, [*base, "transform", "list"])
    assert listed.exit_code == 0 and "by-cli" in listed.output and "native" in listed.output
    described = run(cli, [*base, "transform", "describe", "native"])
    assert described.exit_code == 0 and '"records_done": 200' in described.output


def test_a_worker_killed_mid_job_costs_a_retry_not_a_record(
    tmp_path: Path, artifacts: dict[str, Path], expected: Any
) -> None:
    import os

    import psutil

    server = RunningServer(tmp_path / "home", {"SLUICE_TRANSFORM_CHUNK_BYTES": "2000"})
    try:
        sm, _ = clients(server.url)
        model(sm, artifacts, SLOW_SECONDS="0.05")
        x, _ = digits()
        rows = x[:300]  # ~13 rows a chunk, each row 50 ms: both workers always busy
        put(server, "k/rows.csv", csv_rows(rows))
        transform(sm, "worker-killed", "s3://bucket/k/", BatchStrategy="SingleRecord", instances=2)

        def workers() -> list[psutil.Process]:
            return worker_processes(server.process.pid)

        parts = server.home / "transforms" / "worker-killed"
        until(lambda: len(list(parts.glob("*.out"))) >= 2, timeout=30)  # both serving
        os.kill(workers()[0].pid, signal.SIGKILL)
        job = finished(sm, "worker-killed", timeout=120)
        assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
        lines = out(server, "out/worker-killed/rows.csv.out").read_text().splitlines()
        assert lines == expected(rows)
        metrics = httpx.get(f"{server.url}/metrics").text
        answered = 'sluice_transform_records_total{job="worker-killed",outcome="answered"}'
        assert f"{answered} 300.0" in metrics
        assert 'sluice_transform_chunks_total{job="worker-killed",outcome="retried"}' in metrics
        summary = json.loads(
            out(server, "out/worker-killed/worker-killed.summary.json").read_text()
        )
        assert summary["counts"]["records_done"] == 300
    finally:
        server.stop()
