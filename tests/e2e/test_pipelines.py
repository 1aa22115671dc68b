"""A SageMaker pipeline defined with the SageMaker Python SDK (2.x), unchanged, run by
sluice: preprocess, train, evaluate, then register the model if it is accurate enough.

Only the environment points the SDK here (AWS_ENDPOINT_URL_SAGEMAKER at the server,
AWS_ENDPOINT_URL_S3 at an S3-compatible server that the server reads and writes too).
"""

from __future__ import annotations

import json
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.conftest import RunningServer, S3Server
from tests.e2e.test_sagemaker_workflow import ROLE

pytestmark = [
    pytest.mark.slow,
    # The SDK says, as it defines each step, that defining it starts nothing.
    pytest.mark.filterwarnings("ignore:Running within a PipelineSession:UserWarning"),
]

PREPROCESS = """
import numpy as np

table = np.loadtxt("/opt/ml/processing/input/raw/digits.csv", delimiter=",")
rng = np.random.default_rng(0)
rng.shuffle(table)
cut = int(len(table) * 0.7)
np.savetxt("/opt/ml/processing/train/train.csv", table[:cut], delimiter=",", fmt="%g")
np.savetxt("/opt/ml/processing/test/test.csv", table[cut:], delimiter=",", fmt="%g")
print(f"train {cut} rows, test {len(table) - cut} rows")
"""

TRAIN = """
import argparse, os
import joblib
import numpy as np
from sklearn.linear_model import LogisticRegression

parser = argparse.ArgumentParser()
parser.add_argument("--C", type=float, default=1.0)
args = parser.parse_args()
train = np.loadtxt(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "train.csv"), delimiter=",")
model = LogisticRegression(C=args.C, max_iter=3000).fit(train[:, :-1], train[:, -1])
print(f"train_accuracy={model.score(train[:, :-1], train[:, -1]):.4f}")
joblib.dump(model, os.path.join(os.environ["SM_MODEL_DIR"], "model.joblib"))
"""

EVALUATE = """
import json, tarfile
import joblib
import numpy as np

with tarfile.open("/opt/ml/processing/model/model.tar.gz") as tar:
    tar.extractall("/tmp/model-" + str(id(tar)), filter="data")
    folder = "/tmp/model-" + str(id(tar))
model = joblib.load(folder + "/model.joblib")
test = np.loadtxt("/opt/ml/processing/test/test.csv", delimiter=",")
accuracy = float(model.score(test[:, :-1], test[:, -1]))
report = {"metrics": {"accuracy": {"value": accuracy}}}
json.dump(report, open("/opt/ml/processing/evaluation/evaluation.json", "w"))
print(f"accuracy={accuracy:.4f}")
"""


@pytest.fixture
def sdk(
    tmp_path: Path, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[RunningServer, str]]:
    server = RunningServer(tmp_path / "home", {"SLUICE_S3": json.dumps(s3_server.options)})
    no_telemetry = tmp_path / "sdk-config.yaml"
    no_telemetry.write_text(  # the SDK's defaults: no calls home
        "SchemaVersion: '1.0'\n"
        "SageMaker:\n  PythonSDK:\n    Modules:\n      TelemetryOptOut: true\n"
    )
    for name, value in {
        "SAGEMAKER_USER_CONFIG_OVERRIDE": str(no_telemetry),
        "AWS_ENDPOINT_URL_SAGEMAKER": server.url,
        "AWS_ENDPOINT_URL_S3": s3_server.url,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "SAGEMAKER_SUPPRESS_V2_WARNING": "1",
    }.items():
        monkeypatch.setenv(name, value)
    bucket = f"pipe-{uuid.uuid4().hex[:12]}"
    s3_server.client().create_bucket(Bucket=bucket)
    yield server, bucket
    server.stop()


def sklearn_processor(session: Any) -> Any:
    """The SDK's scikit-learn processor, as a notebook makes it."""
    from sagemaker.sklearn.processing import SKLearnProcessor

    return SKLearnProcessor(
        framework_version="1.2-1",
        role=ROLE,
        instance_type="ml.m5.large",
        instance_count=1,
        sagemaker_session=session,
    )


def sklearn_estimator(session: Any, code: Path, **extra: Any) -> Any:
    """The SDK's scikit-learn estimator for `code/train/train.py`, in script mode."""
    from sagemaker.sklearn.estimator import SKLearn

    return SKLearn(
        entry_point="train.py",
        source_dir=str(code / "train"),
        framework_version="1.2-1",
        instance_type="ml.m5.large",
        role=ROLE,
        hyperparameters={"C": 0.5},
        sagemaker_session=session,
        **extra,
    )


def digits_pipeline(bucket: str, code: Path) -> Any:
    """The pipeline, as a user of SageMaker writes it."""
    from sagemaker.inputs import TrainingInput
    from sagemaker.processing import ProcessingInput, ProcessingOutput
    from sagemaker.workflow.condition_step import ConditionStep
    from sagemaker.workflow.conditions import ConditionGreaterThanOrEqualTo
    from sagemaker.workflow.fail_step import FailStep
    from sagemaker.workflow.functions import JsonGet
    from sagemaker.workflow.parameters import ParameterFloat, ParameterString
    from sagemaker.workflow.pipeline import Pipeline
    from sagemaker.workflow.pipeline_context import PipelineSession
    from sagemaker.workflow.properties import PropertyFile
    from sagemaker.workflow.step_collections import RegisterModel
    from sagemaker.workflow.steps import CacheConfig, ProcessingStep, TrainingStep

    session = PipelineSession(boto3.Session(), default_bucket=bucket)
    threshold = ParameterFloat("AccuracyThreshold", default_value=0.9)
    raw = ParameterString("RawData", default_value=f"s3://{bucket}/raw/digits.csv")
    cache = CacheConfig(enable_caching=True, expire_after="P30D")
    processor = sklearn_processor(session)
    preprocess = ProcessingStep(
        "Preprocess",
        step_args=processor.run(
            code=str(code / "preprocess.py"),
            inputs=[ProcessingInput(source=raw, destination="/opt/ml/processing/input/raw")],
            outputs=[
                ProcessingOutput(output_name="train", source="/opt/ml/processing/train"),
                ProcessingOutput(output_name="test", source="/opt/ml/processing/test"),
            ],
        ),
        cache_config=cache,
    )
    estimator = sklearn_estimator(
        session,
        code,
        metric_definitions=[{"Name": "train:accuracy", "Regex": "train_accuracy=([0-9.]+)"}],
    )
    train = TrainingStep(
        "Train",
        step_args=estimator.fit(
            {
                "train": TrainingInput(
                    preprocess.properties.ProcessingOutputConfig.Outputs["train"].S3Output.S3Uri
                )
            }
        ),
        cache_config=cache,
    )
    report = PropertyFile(name="EvaluationReport", output_name="evaluation", path="evaluation.json")
    evaluate = ProcessingStep(
        "Evaluate",
        step_args=processor.run(
            code=str(code / "evaluate.py"),
            inputs=[
                ProcessingInput(
                    source=train.properties.ModelArtifacts.S3ModelArtifacts,
                    destination="/opt/ml/processing/model",
                ),
                ProcessingInput(
                    source=preprocess.properties.ProcessingOutputConfig.Outputs[
                        "test"
                    ].S3Output.S3Uri,
                    destination="/opt/ml/processing/test",
                ),
            ],
            outputs=[
                ProcessingOutput(output_name="evaluation", source="/opt/ml/processing/evaluation")
            ],
        ),
        property_files=[report],
    )
    register = RegisterModel(
        "Register",
        estimator=estimator,
        model_data=train.properties.ModelArtifacts.S3ModelArtifacts,
        content_types=["application/json"],
        response_types=["application/json"],
        inference_instances=["ml.m5.large"],
        transform_instances=["ml.m5.large"],
        model_package_group_name="digits",
        approval_status="Approved",
    )
    too_weak = FailStep("TooWeak", error_message="the model is not accurate enough")
    check = ConditionStep(
        "CheckAccuracy",
        conditions=[
            ConditionGreaterThanOrEqualTo(
                left=JsonGet(
                    step_name=evaluate.name,
                    property_file=report,
                    json_path="metrics.accuracy.value",
                ),
                right=threshold,
            )
        ],
        if_steps=[register],
        else_steps=[too_weak],
    )
    return Pipeline(
        "digits",
        parameters=[threshold, raw],
        steps=[preprocess, train, evaluate, check],
        sagemaker_session=session,
    )


def test_an_sdk_pipeline_runs_registers_and_caches(
    sdk: tuple[RunningServer, str], s3_server: S3Server, tmp_path: Path
) -> None:
    import numpy as np
    from sklearn.datasets import load_digits

    server, bucket = sdk
    digits = load_digits()
    table = np.column_stack([digits.data, digits.target])
    raw = tmp_path / "digits.csv"
    np.savetxt(raw, table, delimiter=",", fmt="%g")
    s3_server.client().upload_file(str(raw), bucket, "raw/digits.csv")
    code = tmp_path / "code"
    (code / "train").mkdir(parents=True)
    (code / "preprocess.py").write_text(textwrap.dedent(PREPROCESS))
    (code / "evaluate.py").write_text(textwrap.dedent(EVALUATE))
    (code / "train" / "train.py").write_text(textwrap.dedent(TRAIN))

    pipeline = digits_pipeline(bucket, code)
    pipeline.upsert(role_arn=ROLE)
    first = pipeline.start()
    first.wait(delay=1, max_attempts=120)
    described = first.describe()
    assert described["PipelineExecutionStatus"] == "Succeeded", described.get("FailureReason")
    steps = {s["StepName"]: s for s in first.list_steps()}
    assert set(steps) == {
        "Preprocess",
        "Train",
        "Evaluate",
        "CheckAccuracy",
        "Register-RegisterModel",
    }
    assert all(s["StepStatus"] == "Succeeded" for s in steps.values())
    assert steps["CheckAccuracy"]["Metadata"]["Condition"]["Outcome"] == "True"
    assert "CacheHitResult" not in steps["Train"]
    training_arn = steps["Train"]["Metadata"]["TrainingJob"]["Arn"]
    sm = boto3.client("sagemaker")
    training = sm.describe_training_job(TrainingJobName=training_arn.rsplit("/", 1)[1])
    artifacts = training["ModelArtifacts"]["S3ModelArtifacts"]
    assert artifacts.startswith(f"s3://{bucket}/")
    assert s3_server.client().head_object(Bucket=bucket, Key=artifacts.split("/", 3)[3])

    packages = sm.list_model_packages(ModelPackageGroupName="digits")["ModelPackageSummaryList"]
    assert len(packages) == 1
    package = sm.describe_model_package(ModelPackageName=packages[0]["ModelPackageArn"])
    assert package["ModelApprovalStatus"] == "Approved"
    assert package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"] == artifacts

    # One folder per execution and step, each job's log in it.
    execution_id = described["PipelineExecutionArn"].rsplit("/", 1)[1]
    folder = server.home / "pipelines" / "digits" / execution_id
    assert "accuracy=" in (folder / "Evaluate" / "output.log").read_text()
    assert (
        json.loads((folder / "CheckAccuracy" / "step.json").read_text())["StepStatus"]
        == "Succeeded"
    )

    # The same code and data again: preprocessing and training come from the cache.
    second = pipeline.start()
    second.wait(delay=1, max_attempts=120)
    assert second.describe()["PipelineExecutionStatus"] == "Succeeded"
    again = {s["StepName"]: s for s in second.list_steps()}
    first_arn = described["PipelineExecutionArn"]
    assert again["Preprocess"]["CacheHitResult"]["SourcePipelineExecutionArn"] == first_arn
    assert again["Train"]["CacheHitResult"]["SourcePipelineExecutionArn"] == first_arn
    assert "CacheHitResult" not in again["Evaluate"]

    # A bar the model cannot pass: the Fail step ends the execution with its message.
    third = pipeline.start(parameters={"AccuracyThreshold": 1.01})
    from botocore.exceptions import WaiterError

    with pytest.raises(WaiterError):
        third.wait(delay=1, max_attempts=120)
    failed = third.describe()
    assert failed["PipelineExecutionStatus"] == "Failed"
    assert failed["FailureReason"] == "the model is not accurate enough"
    outcome = {s["StepName"]: s for s in third.list_steps()}
    assert outcome["CheckAccuracy"]["Metadata"]["Condition"]["Outcome"] == "False"
    assert outcome["TooWeak"]["StepStatus"] == "Failed"
    assert "Register-RegisterModel" not in outcome
    # The first two executions registered a version each; this one none.
    listed = sm.list_model_packages(ModelPackageGroupName="digits")["ModelPackageSummaryList"]
    assert len(listed) == 2


def test_sdk_processing_and_training_jobs_run_and_show_their_logs(
    sdk: tuple[RunningServer, str],
    s3_server: S3Server,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A processor and an estimator used as in a notebook; the SDK's log reader (over
    CloudWatch Logs, served here) prints what each job printed."""
    import numpy as np
    import sagemaker
    from sagemaker.processing import ProcessingInput, ProcessingOutput
    from sklearn.datasets import load_digits

    from tests.e2e.test_sagemaker_workflow import until

    server, bucket = sdk
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", server.url)
    digits = load_digits()
    raw = tmp_path / "digits.csv"
    np.savetxt(raw, np.column_stack([digits.data, digits.target]), delimiter=",", fmt="%g")
    s3_server.client().upload_file(str(raw), bucket, "raw/digits.csv")
    code = tmp_path / "code"
    (code / "train").mkdir(parents=True)
    (code / "preprocess.py").write_text(textwrap.dedent(PREPROCESS))
    (code / "train" / "train.py").write_text(textwrap.dedent(TRAIN))
    session = sagemaker.Session(boto3.Session(), default_bucket=bucket)
    sm = session.sagemaker_client

    processor = sklearn_processor(session)
    processor.run(
        code=str(code / "preprocess.py"),
        inputs=[
            ProcessingInput(
                source=f"s3://{bucket}/raw/digits.csv", destination="/opt/ml/processing/input/raw"
            )
        ],
        outputs=[
            ProcessingOutput(output_name="train", source="/opt/ml/processing/train"),
            ProcessingOutput(output_name="test", source="/opt/ml/processing/test"),
        ],
        wait=False,
    )
    name = processor.latest_job.job_name
    until(lambda: sm.describe_processing_job(ProcessingJobName=name)["ProcessingJobStatus"]
          == "Completed", 60)  # fmt: skip
    session.logs_for_processing_job(name, wait=False, poll=1)  # poll: its first sleep
    assert "train 1257 rows, test 540 rows" in capsys.readouterr().out
    train = processor.latest_job.describe()["ProcessingOutputConfig"]["Outputs"][0]

    estimator = sklearn_estimator(session, code)
    estimator.fit({"train": train["S3Output"]["S3Uri"]}, wait=False)
    job = estimator.latest_training_job.name
    until(lambda: sm.describe_training_job(TrainingJobName=job)["TrainingJobStatus"]
          == "Completed", 60)  # fmt: skip
    session.logs_for_job(job, wait=False, poll=1)
    assert "train_accuracy=" in capsys.readouterr().out
    assert estimator.model_data.endswith(f"{job}/output/model.tar.gz")
    key = estimator.model_data.split("/", 3)[3]
    assert s3_server.client().head_object(Bucket=bucket, Key=key)["ContentLength"] > 0
