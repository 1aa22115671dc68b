"""Processing and training jobs through boto3, run on the server's machine with no
container engine: scripts see /opt/ml as they would in SageMaker's containers."""

from __future__ import annotations

import io
import json
import signal
import tarfile
import textwrap
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError

from tests.conftest import RunningServer
from tests.e2e.helpers import aws_client, sluice_children
from tests.e2e.test_sagemaker_workflow import ROLE, until

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("jobs")]  # one shared server

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"

PREPROCESS = """
import os, sys
import numpy as np
from sklearn.datasets import load_digits

rows = int(sys.argv[sys.argv.index("--rows") + 1])
raw = np.loadtxt("/opt/ml/processing/input/raw/digits.csv", delimiter=",")[:rows]
print(f"read {len(raw)} rows; MODE={os.environ['MODE']}")
half = len(raw) // 2
np.savetxt("/opt/ml/processing/train/train.csv", raw[:half], delimiter=",", fmt="%g")
np.savetxt("/opt/ml/processing/test/test.csv", raw[half:], delimiter=",", fmt="%g")
"""

TRAIN = """
import argparse, json, os, time
import joblib
import numpy as np
from sklearn.linear_model import LogisticRegression

parser = argparse.ArgumentParser()
parser.add_argument("--C", type=float)
parser.add_argument("--epochs", type=int, default=1)
args = parser.parse_args()
train = np.loadtxt(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "train.csv"), delimiter=",")
checkpoint = "/opt/ml/checkpoints/epoch.json"
start = json.load(open(checkpoint))["epoch"] if os.path.exists(checkpoint) else 0
print(f"starting at epoch {start}", flush=True)
for epoch in range(start, args.epochs):
    time.sleep(float(os.environ.get("EPOCH_S", "0")))
    json.dump({"epoch": epoch + 1}, open(checkpoint, "w"))
    print(f"epoch {epoch + 1} loss={1.0 / (epoch + 1):.4f}", flush=True)
model = LogisticRegression(C=args.C, max_iter=2000).fit(train[:, :-1], train[:, -1])
print(f"accuracy={model.score(train[:, :-1], train[:, -1]):.4f}")
joblib.dump(model, os.path.join(os.environ["SM_MODEL_DIR"], "model.joblib"))
hps = json.load(open("/opt/ml/input/config/hyperparameters.json"))
open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "seen.json"), "w").write(json.dumps(hps))
"""


def write_bucket(home: Path) -> Path:
    """The local stand-in of s3://data, with the digits as CSV (features, then label)."""
    import numpy as np
    from sklearn.datasets import load_digits

    root = home / "s3" / "data"
    (root / "raw").mkdir(parents=True)
    (root / "code").mkdir()
    digits = load_digits()
    table = np.column_stack([digits.data, digits.target])
    np.savetxt(root / "raw" / "digits.csv", table, delimiter=",", fmt="%g")
    (root / "code" / "preprocess.py").write_text(textwrap.dedent(PREPROCESS))
    source = io.BytesIO()
    with tarfile.open(fileobj=source, mode="w:gz") as tar:
        payload = textwrap.dedent(TRAIN).encode()
        info = tarfile.TarInfo("train.py")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    (root / "code" / "sourcedir.tar.gz").write_bytes(source.getvalue())
    return root


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One server for the tests that do not stop it, with the data split once."""
    memory = {"SLUICE_INSTANCE_MEMORY_MB": json.dumps({"ml.t3.medium": 1024})}
    running = RunningServer(tmp_path_factory.mktemp("jobs") / "home", memory)
    write_bucket(running.home)
    split(aws_client("sagemaker", running.url))
    yield running
    running.stop()


@pytest.fixture
def sm(shared: RunningServer) -> BaseClient:
    return aws_client("sagemaker", shared.url)


@pytest.fixture
def bucket(shared: RunningServer) -> Path:
    return shared.home / "s3" / "data"


def processing_request(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "ProcessingJobName": name,
        "RoleArn": ROLE,
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceCount": 1,
                "InstanceType": "ml.m5.large",
                "VolumeSizeInGB": 5,
            }
        },
        "AppSpecification": {
            "ImageUri": IMAGE,
            "ContainerEntrypoint": ["python3", "/opt/ml/processing/input/code/preprocess.py"],
            "ContainerArguments": ["--rows", "600"],
        },
        "Environment": {"MODE": "split"},
        "ProcessingInputs": [
            _input("code", "s3://data/code/preprocess.py", "/opt/ml/processing/input/code"),
            _input("raw", "s3://data/raw", "/opt/ml/processing/input/raw"),
        ],
        "ProcessingOutputConfig": {
            "Outputs": [
                _output("train", "s3://data/split/train", "/opt/ml/processing/train"),
                _output("test", "s3://data/split/test", "/opt/ml/processing/test"),
            ]
        },
        **extra,
    }


def _input(name: str, uri: str, path: str) -> dict[str, Any]:
    return {
        "InputName": name,
        "S3Input": {
            "S3Uri": uri,
            "LocalPath": path,
            "S3DataType": "S3Prefix",
            "S3InputMode": "File",
        },
    }


def _output(name: str, uri: str, path: str) -> dict[str, Any]:
    return {
        "OutputName": name,
        "S3Output": {"S3Uri": uri, "LocalPath": path, "S3UploadMode": "EndOfJob"},
    }


def training_request(name: str, **extra: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "TrainingJobName": name,
        "RoleArn": ROLE,
        "AlgorithmSpecification": {
            "TrainingImage": IMAGE,
            "TrainingInputMode": "File",
            "MetricDefinitions": [
                {"Name": "train:accuracy", "Regex": "accuracy=([0-9.]+)"},
                {"Name": "train:loss", "Regex": "loss=([0-9.]+)"},
            ],
        },
        "HyperParameters": {
            "C": "0.5",
            "epochs": "3",
            "sagemaker_program": '"train.py"',
            "sagemaker_submit_directory": '"s3://data/code/sourcedir.tar.gz"',
        },
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "DataSource": {
                    "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://data/split/train"}
                },
            }
        ],
        "OutputDataConfig": {"S3OutputPath": "s3://data/models"},
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 5},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
    }
    request.update(extra)
    return request


def finished(sm: BaseClient, kind: str, name: str, timeout: float = 60) -> dict[str, Any]:
    describe = sm.describe_processing_job if kind == "processing" else sm.describe_training_job
    key = "ProcessingJobStatus" if kind == "processing" else "TrainingJobStatus"

    def done() -> dict[str, Any] | None:
        answer = describe(**{f"{kind.capitalize()}JobName": name})
        return answer if answer[key] in ("Completed", "Failed", "Stopped") else None

    result: dict[str, Any] = until(done, timeout)
    return result


def split(sm: BaseClient, name: str = "split") -> dict[str, Any]:
    sm.create_processing_job(**processing_request(name))
    return finished(sm, "processing", name)


def test_a_processing_job_reads_and_writes_at_its_container_paths(
    shared: RunningServer, sm: BaseClient, bucket: Path
) -> None:
    job = sm.describe_processing_job(ProcessingJobName="split")
    assert job["ProcessingJobStatus"] == "Completed", job.get("FailureReason")
    assert job["ProcessingJobArn"].endswith(":processing-job/split")
    assert job["AppSpecification"]["ContainerArguments"] == ["--rows", "600"]
    assert job["ProcessingStartTime"] <= job["ProcessingEndTime"]
    assert len((bucket / "split" / "train" / "train.csv").read_text().splitlines()) == 300
    assert len((bucket / "split" / "test" / "test.csv").read_text().splitlines()) == 300
    log = (shared.home / "jobs" / "processing" / "split" / "output.log").read_text()
    assert "read 600 rows; MODE=split" in log
    assert "mount namespace" in log
    listed = sm.list_processing_jobs(StatusEquals="Completed")["ProcessingJobSummaries"]
    assert [j["ProcessingJobName"] for j in listed] == ["split"]

    with pytest.raises(ClientError) as taken:
        sm.create_processing_job(**processing_request("SPLIT"))
    assert taken.value.response["Error"]["Code"] == "ResourceInUse"
    with pytest.raises(ClientError) as missing:
        sm.describe_processing_job(ProcessingJobName="nope")
    assert missing.value.response["Error"]["Code"] == "ResourceNotFound"


def test_bad_processing_requests_are_refused_and_failures_explained(
    shared: RunningServer, sm: BaseClient, bucket: Path
) -> None:
    request = processing_request("rm")
    request["AppSpecification"]["ContainerEntrypoint"] = ["rm", "-rf", "/"]
    with pytest.raises(ClientError) as refused:
        sm.create_processing_job(**request)
    assert "not 'rm'" in refused.value.response["Error"]["Message"]

    request = processing_request("escape")
    request["ProcessingInputs"][0]["S3Input"]["LocalPath"] = "/opt/ml/processing/../../../etc"
    with pytest.raises(ClientError) as escape:
        sm.create_processing_job(**request)
    assert "must be a path under /opt/ml/processing" in escape.value.response["Error"]["Message"]

    request = processing_request("outside")
    request["ProcessingInputs"][1]["S3Input"]["S3Uri"] = str(shared.home / "sluice.db")
    with pytest.raises(ClientError) as home:
        sm.create_processing_job(**request)
    assert "home" in home.value.response["Error"]["Message"]

    # Accepted, then failing: a missing input, a script that exits with an error.
    sm.create_processing_job(
        **processing_request(
            "no-input",
            ProcessingInputs=[_input("raw", "s3://data/absent", "/opt/ml/processing/input/raw")],
        )
    )
    job = finished(sm, "processing", "no-input")
    assert job["ProcessingJobStatus"] == "Failed"
    assert job["FailureReason"].startswith("ClientError:")

    request = processing_request("crash")
    request["AppSpecification"]["ContainerArguments"] = ["--rows", "many"]
    sm.create_processing_job(**request)
    job = finished(sm, "processing", "crash")
    assert job["ProcessingJobStatus"] == "Failed"
    assert "exited with code 1" in job["FailureReason"]
    assert "ValueError" in job["FailureReason"]

    # Held to its instance type's memory: the allocation fails, not the machine.
    request = processing_request("hungry")
    request["ProcessingResources"]["ClusterConfig"]["InstanceType"] = "ml.t3.medium"
    request["AppSpecification"]["ContainerEntrypoint"] = ["python3", "-c", "bytearray(2 << 30)"]
    del request["AppSpecification"]["ContainerArguments"]
    sm.create_processing_job(**request)
    job = finished(sm, "processing", "hungry")
    assert job["ProcessingJobStatus"] == "Failed"
    assert "MemoryError" in job["FailureReason"]
    assert "may map 1024 MiB, the memory of ml.t3.medium" in job["FailureReason"]


def test_a_training_job_in_script_mode_packs_its_model_and_reads_its_metrics(
    shared: RunningServer, sm: BaseClient, bucket: Path
) -> None:
    sm.create_training_job(**training_request("fit"))
    job = finished(sm, "training", "fit")
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    assert job["SecondaryStatus"] == "Completed"
    assert job["ModelArtifacts"]["S3ModelArtifacts"] == "s3://data/models/fit/output/model.tar.gz"
    with tarfile.open(bucket / "models" / "fit" / "output" / "model.tar.gz") as tar:
        assert tar.getnames() == ["model.joblib"]
    with tarfile.open(bucket / "models" / "fit" / "output" / "output.tar.gz") as tar:
        seen = json.loads(tar.extractfile("seen.json").read())  # type: ignore[union-attr]
    assert seen["sagemaker_program"] == '"train.py"'
    metrics = {m["MetricName"]: m["Value"] for m in job["FinalMetricDataList"]}
    assert metrics["train:loss"] == pytest.approx(1 / 3, abs=1e-3)
    # Every value read is in CloudWatch, where SageMaker puts them (the SDK's
    # TrainingJobAnalytics reads them there).
    series = aws_client("cloudwatch", shared.url).get_metric_statistics(
        Namespace="/aws/sagemaker/TrainingJobs",
        MetricName="train:loss",
        Dimensions=[{"Name": "Host", "Value": "fit/algo-1"}],
        StartTime=job["TrainingStartTime"] - timedelta(minutes=1),
        EndTime=job["TrainingEndTime"] + timedelta(minutes=1),
        Period=60,
        Statistics=["SampleCount", "Minimum", "Maximum"],
    )["Datapoints"]
    assert sum(p["SampleCount"] for p in series) == 3  # one per epoch
    assert min(p["Minimum"] for p in series) == pytest.approx(1 / 3, abs=1e-3)
    assert max(p["Maximum"] for p in series) == 1.0
    assert 0.9 < metrics["train:accuracy"] <= 1.0
    statuses = [t["Status"] for t in job["SecondaryStatusTransitions"]]
    assert statuses == ["Starting", "Downloading", "Training", "Uploading", "Completed"]

    with pytest.raises(ClientError) as builtin:
        sm.create_training_job(**training_request("xgb", HyperParameters={"num_round": "10"}))
    assert "built-in algorithms are not served" in builtin.value.response["Error"]["Message"]


def test_a_stopped_job_ends_stopped_and_a_job_past_its_time_ends_with_its_model(
    shared: RunningServer, sm: BaseClient
) -> None:
    slow = training_request("slow", Environment={"EPOCH_S": "1"})
    slow["HyperParameters"]["epochs"] = "60"
    sm.create_training_job(**slow)
    until(lambda: "epoch 1 " in _log(shared, "slow"), 30)
    sm.stop_training_job(TrainingJobName="slow")
    job = finished(sm, "training", "slow", 30)
    assert (job["TrainingJobStatus"], job["SecondaryStatus"]) == ("Stopped", "Stopped")

    late = training_request("late", Environment={"EPOCH_S": "0.2"})
    late["HyperParameters"]["epochs"] = "1000"
    late["StoppingCondition"] = {"MaxRuntimeInSeconds": 2}
    sm.create_training_job(**late)
    job = finished(sm, "training", "late", 30)
    assert (job["TrainingJobStatus"], job["SecondaryStatus"]) == ("Stopped", "MaxRuntimeExceeded")
    assert "MaxRuntimeInSeconds" in job["FailureReason"]

    # A Continuous output is uploaded while the job runs, and what it held stays when the
    # job is stopped.
    streaming = processing_request("streaming")
    streaming["ProcessingInputs"] = []
    streaming["AppSpecification"] = {
        "ImageUri": IMAGE,
        "ContainerEntrypoint": ["python3", "-c", STREAMING],
    }
    streaming["ProcessingOutputConfig"]["Outputs"] = [
        {
            "OutputName": "parts",
            "S3Output": {
                "S3Uri": "s3://data/streaming",
                "LocalPath": "/opt/ml/processing/parts",
                "S3UploadMode": "Continuous",
            },
        }
    ]
    sm.create_processing_job(**streaming)
    uploaded = shared.home / "s3" / "data" / "streaming" / "part-1.txt"
    until(lambda: uploaded.exists(), 20)
    assert sm.describe_processing_job(ProcessingJobName="streaming")["ProcessingJobStatus"] == (
        "InProgress"
    )
    sm.stop_processing_job(ProcessingJobName="streaming")
    assert finished(sm, "processing", "streaming", 30)["ProcessingJobStatus"] == "Stopped"
    assert uploaded.read_text() == "first part"


STREAMING = """
import time
open("/opt/ml/processing/parts/part-1.txt", "w").write("first part")
time.sleep(60)
"""


def test_a_training_job_killed_with_the_server_resumes_from_its_checkpoint(
    server: RunningServer,
) -> None:
    bucket = write_bucket(server.home)
    sm = aws_client("sagemaker", server.url)
    split(sm)
    request = training_request(
        "resumed",
        Environment={"EPOCH_S": "0.3"},
        CheckpointConfig={"S3Uri": "s3://data/checkpoints/resumed"},
    )
    request["HyperParameters"]["epochs"] = "12"
    sm.create_training_job(**request)
    saved = bucket / "checkpoints" / "resumed" / "epoch.json"
    until(lambda: saved.exists() and json.loads(saved.read_text())["epoch"] >= 3, 30)
    server.stop(signal.SIGKILL)
    # The job's processes die with the server.
    until(lambda: not [p for p in sluice_children() if "train.py" in " ".join(p.cmdline())], 10)

    restarted = RunningServer(server.home)
    try:
        job = finished(aws_client("sagemaker", restarted.url), "training", "resumed", 60)
        assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
        statuses = [t["Status"] for t in job["SecondaryStatusTransitions"]]
        assert "Restarting" in statuses
        log = _log(restarted, "resumed")
        assert "starting at epoch 0" in log
        resumed_at = int(log.split("starting at epoch ")[2].split()[0])
        assert resumed_at >= 3
        assert f"epoch {resumed_at} " not in log.split("starting at epoch ")[2]
    finally:
        restarted.stop()


def _log(server: RunningServer, name: str) -> str:
    path = server.home / "jobs" / "training" / name / "output.log"
    return path.read_text() if path.exists() else ""


def test_a_jobs_log_reads_as_cloudwatch_logs(shared: RunningServer) -> None:
    logs = aws_client("logs", shared.url)
    group = "/aws/sagemaker/ProcessingJobs"
    streams = logs.describe_log_streams(logGroupName=group, logStreamNamePrefix="split/")
    (stream,) = [s["logStreamName"] for s in streams["logStreams"]]
    assert stream.startswith("split/algo-1-")
    first = logs.get_log_events(
        logGroupName=group, logStreamName=stream, startFromHead=True, limit=2
    )
    assert [e["message"] for e in first["events"]][0].startswith("[sluice] processing job split")
    rest = logs.get_log_events(
        logGroupName=group, logStreamName=stream, nextToken=first["nextForwardToken"]
    )
    messages = [e["message"] for e in first["events"] + rest["events"]]
    assert "read 600 rows; MODE=split" in messages
    times = [e["timestamp"] for e in first["events"] + rest["events"]]
    assert times == sorted(times) and times[0] > 1_700_000_000_000
    end = logs.get_log_events(
        logGroupName=group, logStreamName=stream, nextToken=rest["nextForwardToken"]
    )
    assert end["events"] == [] and end["nextForwardToken"] == rest["nextForwardToken"]

    for call, code in (
        (lambda: logs.describe_log_streams(logGroupName="/aws/lambda/x"),
         "ResourceNotFoundException"),
        (lambda: logs.get_log_events(logGroupName=group, logStreamName="split/algo-1-1"),
         "ResourceNotFoundException"),
        (lambda: logs.get_log_events(logGroupName=group, logStreamName=stream, nextToken="zz"),
         "InvalidParameterException"),
    ):  # fmt: skip
        with pytest.raises(ClientError) as refused:
            call()
        assert refused.value.response["Error"]["Code"] == code
