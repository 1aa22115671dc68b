"""A pipeline written as JSON and driven through boto3: independent steps at once, model
and transform steps, a retry that keeps what succeeded, a stop, and a server killed
mid-execution that carries on after its restart."""

from __future__ import annotations

import json
import signal
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from sklearn.datasets import load_digits

from tests.conftest import RunningServer
from tests.e2e.helpers import aws_client
from tests.e2e.test_jobs import IMAGE
from tests.e2e.test_sagemaker_workflow import ROLE, until

pytestmark = pytest.mark.slow

SPLIT = """
import os, time
import numpy as np

time.sleep(float(os.environ["PAUSE"]))
table = np.loadtxt("/opt/ml/processing/input/raw/digits.csv", delimiter=",")
np.savetxt("/opt/ml/processing/train/train.csv", table[:1200], delimiter=",", fmt="%g")
np.savetxt("/opt/ml/processing/score/features.csv", table[1200:1250, :-1], delimiter=",", fmt="%g")
print("split done")
"""

PROBE = """
import time

time.sleep(1)
flag = open("/opt/ml/processing/input/flag/flag.txt").read().strip()
print("flag", flag)
raise SystemExit(0 if flag == "ok" else 3)
"""

TRAIN = """
import os
import joblib
import numpy as np
from sklearn.linear_model import LogisticRegression

train = np.loadtxt(os.environ["SM_CHANNEL_TRAIN"] + "/train.csv", delimiter=",")
model = LogisticRegression(max_iter=3000).fit(train[:, :-1], train[:, -1])
joblib.dump(model, os.environ["SM_MODEL_DIR"] + "/model.joblib")
"""


def processing(
    name: str, code: str, inputs: list[tuple[str, Any]], outputs: list[str], pause: Any = "0"
) -> dict[str, Any]:
    return {
        "Name": name,
        "Type": "Processing",
        "Arguments": {
            "ProcessingResources": {
                "ClusterConfig": {
                    "InstanceCount": 1,
                    "InstanceType": "ml.m5.large",
                    "VolumeSizeInGB": 5,
                }
            },
            "AppSpecification": {
                "ImageUri": IMAGE,
                "ContainerEntrypoint": ["python3", f"/opt/ml/processing/input/code/{code}"],
            },
            "Environment": {"PAUSE": pause},
            "RoleArn": ROLE,
            "ProcessingInputs": [
                {
                    "InputName": "code",
                    "S3Input": {
                        "S3Uri": f"s3://data/code/{code}",
                        "LocalPath": "/opt/ml/processing/input/code",
                        "S3DataType": "S3Prefix",
                        "S3InputMode": "File",
                    },
                },
                *(
                    {
                        "InputName": local,
                        "S3Input": {
                            "S3Uri": uri,
                            "LocalPath": f"/opt/ml/processing/input/{local}",
                            "S3DataType": "S3Prefix",
                            "S3InputMode": "File",
                        },
                    }
                    for local, uri in inputs
                ),
            ],
            "ProcessingOutputConfig": {
                "Outputs": [
                    {
                        "OutputName": out,
                        "S3Output": {
                            "S3Uri": {
                                "Std:Join": {
                                    "On": "/",
                                    "Values": [
                                        "s3://data/runs",
                                        {"Get": "Execution.PipelineExecutionId"},
                                        out,
                                    ],
                                }
                            },
                            "LocalPath": f"/opt/ml/processing/{out}",
                            "S3UploadMode": "EndOfJob",
                        },
                    }
                    for out in outputs
                ]
            },
        },
    }


def output(step: str, name: str) -> dict[str, str]:
    return {"Get": f"Steps.{step}.ProcessingOutputConfig.Outputs['{name}'].S3Output.S3Uri"}


DEFINITION = {
    "Version": "2020-12-01",
    "Parameters": [
        {"Name": "Pause", "Type": "String", "DefaultValue": "1"},
        {"Name": "Flag", "Type": "String", "DefaultValue": "s3://data/flag"},
    ],
    "Steps": [
        processing(
            "Split",
            "split.py",
            [("raw", "s3://data/raw")],
            ["train", "score"],
            {"Get": "Parameters.Pause"},
        ),
        processing("Probe", "probe.py", [("flag", {"Get": "Parameters.Flag"})], []),
        {
            "Name": "Train",
            "Type": "Training",
            "Arguments": {
                "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
                "HyperParameters": {
                    "sagemaker_program": '"train.py"',
                    "sagemaker_submit_directory": '"s3://data/code/train"',
                },
                "InputDataConfig": [
                    {
                        "ChannelName": "train",
                        "DataSource": {
                            "S3DataSource": {
                                "S3DataType": "S3Prefix",
                                "S3Uri": output("Split", "train"),
                            }
                        },
                    }
                ],
                "OutputDataConfig": {"S3OutputPath": "s3://data/models"},
                "ResourceConfig": {
                    "InstanceType": "ml.m5.large",
                    "InstanceCount": 1,
                    "VolumeSizeInGB": 5,
                },
                "StoppingCondition": {"MaxRuntimeInSeconds": 600},
                "RoleArn": ROLE,
            },
            "DependsOn": ["Probe"],
            "CacheConfig": {"Enabled": True, "ExpireAfter": "P1D"},
        },
        {
            "Name": "MakeModel",
            "Type": "Model",
            "Arguments": {
                "ExecutionRoleArn": ROLE,
                "PrimaryContainer": {
                    "Image": IMAGE,
                    "ModelDataUrl": {"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"},
                },
            },
        },
        {
            "Name": "Score",
            "Type": "Transform",
            "Arguments": {
                "ModelName": {"Get": "Steps.MakeModel.ModelName"},
                "TransformInput": {
                    "DataSource": {
                        "S3DataSource": {
                            "S3DataType": "S3Prefix",
                            "S3Uri": output("Split", "score"),
                        }
                    },
                    "ContentType": "text/csv",
                    "SplitType": "Line",
                },
                "TransformOutput": {
                    "S3OutputPath": {
                        "Std:Join": {
                            "On": "/",
                            "Values": [
                                "s3://data/scores",
                                {"Get": "Execution.PipelineExecutionId"},
                            ],
                        }
                    },
                    "AssembleWith": "Line",
                },
                "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
            },
            "CacheConfig": {"Enabled": True, "ExpireAfter": "P1D"},
        },
    ],
}


@pytest.fixture
def data(server: RunningServer) -> Path:
    root = server.home / "s3" / "data"
    for folder in ("raw", "code/train", "flag"):
        (root / folder).mkdir(parents=True)
    digits = load_digits()
    np.savetxt(
        root / "raw" / "digits.csv",
        np.column_stack([digits.data, digits.target]),
        delimiter=",",
        fmt="%g",
    )
    (root / "code" / "split.py").write_text(textwrap.dedent(SPLIT))
    (root / "code" / "probe.py").write_text(textwrap.dedent(PROBE))
    (root / "code" / "train" / "train.py").write_text(textwrap.dedent(TRAIN))
    (root / "flag" / "flag.txt").write_text("bad")
    return root


def ended(sm: BaseClient, arn: str, timeout: float = 90) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        answer = sm.describe_pipeline_execution(PipelineExecutionArn=arn)
        return (
            answer if answer["PipelineExecutionStatus"] not in ("Executing", "Stopping") else None
        )

    result: dict[str, Any] = until(done, timeout)
    return result


def steps_of(sm: BaseClient, arn: str) -> dict[str, dict[str, Any]]:
    listed = sm.list_pipeline_execution_steps(PipelineExecutionArn=arn, MaxResults=100)
    return {s["StepName"]: s for s in listed["PipelineExecutionSteps"]}


def test_a_pipeline_retries_stops_and_survives_a_restart(server: RunningServer, data: Path) -> None:
    sm = aws_client("sagemaker", server.url)
    create = {
        "PipelineName": "scoring",
        "PipelineDefinition": json.dumps(DEFINITION),
        "RoleArn": ROLE,
    }
    created = sm.create_pipeline(**create, ClientRequestToken="t" * 32)["PipelineArn"]
    # The same request sent again (botocore retries with the same token): the same answer.
    assert sm.create_pipeline(**create, ClientRequestToken="t" * 32)["PipelineArn"] == created
    with pytest.raises(ClientError) as twice:
        sm.create_pipeline(**create, ClientRequestToken="T" * 32)
    assert twice.value.response["Error"]["Code"] == "ValidationException"
    assert "already exists" in twice.value.response["Error"]["Message"]
    broken = {
        **DEFINITION,
        "Steps": [*DEFINITION["Steps"], {"Name": "X", "Type": "Lambda", "Arguments": {}}],
    }
    with pytest.raises(ClientError, match="Lambda steps are not served"):
        sm.create_pipeline(
            PipelineName="broken",
            PipelineDefinition=json.dumps(broken),
            RoleArn=ROLE,
            ClientRequestToken="u" * 32,
        )

    # The probe fails (its flag says "bad") while the split, independent of it, runs.
    arn = sm.start_pipeline_execution(PipelineName="scoring", ClientRequestToken="a" * 32)[
        "PipelineExecutionArn"
    ]
    again = sm.start_pipeline_execution(PipelineName="scoring", ClientRequestToken="a" * 32)
    assert again["PipelineExecutionArn"] == arn  # started once (the listing below: 3 in all)
    with pytest.raises(ClientError, match="was used with another StartPipelineExecution"):
        sm.start_pipeline_execution(
            PipelineName="scoring",
            PipelineParameters=[{"Name": "Pause", "Value": "1"}],
            ClientRequestToken="a" * 32,
        )
    failed = ended(sm, arn)
    assert failed["PipelineExecutionStatus"] == "Failed"
    assert "Probe" in failed["FailureReason"]
    steps = steps_of(sm, arn)
    assert (
        steps["Probe"]["StepStatus"] == "Failed"
        and "exited with code 3" in steps["Probe"]["FailureReason"]
    )
    assert steps["Split"]["StepStatus"] == "Succeeded"
    assert steps["Split"]["StartTime"] < steps["Probe"]["EndTime"]  # they ran at once
    assert steps["Probe"]["StartTime"] < steps["Split"]["EndTime"]
    assert "Train" not in steps

    # Retried once the flag is right: the split is kept, the probe and the rest run.
    (data / "flag" / "flag.txt").write_text("ok")
    sm.retry_pipeline_execution(PipelineExecutionArn=arn, ClientRequestToken="b" * 32)
    assert ended(sm, arn)["PipelineExecutionStatus"] == "Succeeded"
    after = steps_of(sm, arn)
    assert after["Split"]["Metadata"] == steps["Split"]["Metadata"]
    assert after["Split"]["AttemptCount"] == 1 and after["Probe"]["AttemptCount"] == 2
    model_name = after["MakeModel"]["Metadata"]["Model"]["Arn"].rsplit("/", 1)[1]
    assert sm.describe_model(ModelName=model_name)["PrimaryContainer"]["Image"] == IMAGE
    execution_id = arn.rsplit("/", 1)[1]
    scores = json.loads((data / "scores" / execution_id / "features.csv.out").read_text())
    assert len(scores) == 50  # one batch's answer: the predictions, as the image's container
    retried = sm.retry_pipeline_execution(PipelineExecutionArn=arn, ClientRequestToken="b" * 32)
    assert retried["PipelineExecutionArn"] == arn  # the retry's answer again, not a conflict
    with pytest.raises(ClientError) as conflict:
        sm.retry_pipeline_execution(PipelineExecutionArn=arn, ClientRequestToken="c" * 32)
    assert conflict.value.response["Error"]["Code"] == "ConflictException"

    # Stopped while the split sleeps: the split's job and the execution end Stopped.
    slow = sm.start_pipeline_execution(
        PipelineName="scoring",
        PipelineParameters=[{"Name": "Pause", "Value": "60"}],
        ClientRequestToken="d" * 32,
    )["PipelineExecutionArn"]
    until(lambda: steps_of(sm, slow).get("Split", {}).get("StepStatus") == "Executing", 30)
    sm.stop_pipeline_execution(PipelineExecutionArn=slow, ClientRequestToken="e" * 32)
    assert ended(sm, slow, 30)["PipelineExecutionStatus"] == "Stopped"
    split = steps_of(sm, slow)["Split"]
    assert split["StepStatus"] == "Stopped"
    job = sm.describe_processing_job(
        ProcessingJobName=split["Metadata"]["ProcessingJob"]["Arn"].rsplit("/", 1)[1]
    )
    assert job["ProcessingJobStatus"] == "Stopped"

    # The server killed mid-execution: the restarted server carries it to its end.
    resumed = sm.start_pipeline_execution(
        PipelineName="scoring",
        PipelineParameters=[{"Name": "Pause", "Value": "3"}],
        ClientRequestToken="f" * 32,
    )["PipelineExecutionArn"]
    until(lambda: steps_of(sm, resumed).get("Split", {}).get("StepStatus") == "Executing", 30)
    server.stop(signal.SIGKILL)
    restarted = RunningServer(server.home)
    try:
        sm = aws_client("sagemaker", restarted.url)
        assert ended(sm, resumed)["PipelineExecutionStatus"] == "Succeeded"
        start = {"PipelineName": "scoring", "PipelineParameters": [{"Name": "Pause", "Value": "3"}]}
        kept = sm.start_pipeline_execution(**start, ClientRequestToken="f" * 32)
        assert kept["PipelineExecutionArn"] == resumed  # tokens outlive a restart
        # The split's bytes are the same (only its pause changed): training comes from the
        # cache, and so does scoring with the model made afresh from the same artifact.
        reused = steps_of(sm, resumed)
        assert (
            "CacheHitResult" not in reused["Split"] and "CacheHitResult" not in reused["MakeModel"]
        )
        for step in ("Train", "Score"):
            assert reused[step]["CacheHitResult"]["SourcePipelineExecutionArn"] == arn, step
        listed = sm.list_pipeline_executions(PipelineName="scoring")["PipelineExecutionSummaries"]
        assert [e["PipelineExecutionStatus"] for e in listed] == [
            "Succeeded",
            "Stopped",
            "Succeeded",
        ]

        # A selective execution: the model is made again from the first execution's
        # training, and nothing else runs.
        def selective(*steps: str, source: str | None = arn) -> dict[str, Any]:
            config: dict[str, Any] = {"SelectedSteps": [{"StepName": n} for n in steps]}
            if source:
                config["SourcePipelineExecutionArn"] = source
            return {"PipelineName": "scoring", "SelectiveExecutionConfig": config}

        with pytest.raises(ClientError, match="'Train' lies between selected steps"):
            sm.start_pipeline_execution(**selective("Split", "MakeModel"))
        with pytest.raises(ClientError, match="need the results of 'Train'"):
            sm.start_pipeline_execution(**selective("MakeModel", source=None))
        with pytest.raises(ClientError, match="must have Succeeded or Failed"):
            sm.start_pipeline_execution(**selective("MakeModel", source=slow))  # Stopped
        chosen = sm.start_pipeline_execution(**selective("MakeModel"))["PipelineExecutionArn"]
        assert ended(sm, chosen)["PipelineExecutionStatus"] == "Succeeded"
        described = sm.describe_pipeline_execution(PipelineExecutionArn=chosen)
        assert described["SelectiveExecutionConfig"]["SourcePipelineExecutionArn"] == arn
        ran = steps_of(sm, chosen)
        assert sorted(ran) == ["MakeModel", "Train"]
        assert ran["Train"]["SelectiveExecutionResult"]["SourcePipelineExecutionArn"] == arn
        assert "SelectiveExecutionResult" not in ran["MakeModel"]
        made = ran["MakeModel"]["Metadata"]["Model"]["Arn"]
        assert made != after["MakeModel"]["Metadata"]["Model"]["Arn"]  # a new model
    finally:
        restarted.stop()


def test_a_step_is_held_to_what_a_job_may_do(server: RunningServer, data: Path) -> None:
    """A step's request is checked as the same request sent alone would be: the program
    allow-list, the service model's shapes, the path policy."""
    sm = aws_client("sagemaker", server.url)
    bad = processing("Wipe", "split.py", [], [])
    bad["Arguments"]["AppSpecification"]["ContainerEntrypoint"] = ["rm", "-rf", "/"]
    shapeless = processing("Shapeless", "split.py", [], [])
    shapeless["Arguments"]["ProcessingResources"]["ClusterConfig"]["InstanceCount"] = "many"
    outside = processing("Outside", "split.py", [("raw", str(server.home / "sluice.db"))], [])
    for step in (bad, shapeless, outside):
        definition = {"Version": "2020-12-01", "Steps": [step]}
        name = step["Name"].lower()
        sm.create_pipeline(
            PipelineName=name,
            PipelineDefinition=json.dumps(definition),
            RoleArn=ROLE,
            ClientRequestToken=name * 8,
        )
        arn = sm.start_pipeline_execution(PipelineName=name, ClientRequestToken=name * 8)
        assert ended(sm, arn["PipelineExecutionArn"])["PipelineExecutionStatus"] == "Failed"
    reasons = {
        name: steps_of(sm, arn)
        for name, arn in (
            (e["PipelineExecutionArn"].split("/")[1], e["PipelineExecutionArn"])
            for p in ("wipe", "shapeless", "outside")
            for e in sm.list_pipeline_executions(PipelineName=p)["PipelineExecutionSummaries"]
        )
    }
    assert "not 'rm'" in reasons["wipe"]["Wipe"]["FailureReason"]
    assert "instanceCount" in reasons["shapeless"]["Shapeless"]["FailureReason"]
    assert "home" in reasons["outside"]["Outside"]["FailureReason"]
    assert sm.list_processing_jobs()["ProcessingJobSummaries"] == []
