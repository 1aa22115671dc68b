"""Model Monitor's operations through boto3 against a running server: a job definition
with an S3 baseline, an hourly schedule and a one-time (NOW) schedule whose execution
checks what the endpoint captured; answers checked against the service model."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from botocore.exceptions import ClientError
from click.testing import CliRunner

from sluice.cli.main import cli
from sluice.compat.sagemaker.shapes import ServiceModel
from tests import models
from tests.conftest import RunningServer
from tests.e2e.test_sagemaker_workflow import ROLE, clients, conforms, wait

pytestmark = pytest.mark.slow

OPERATIONS = [
    "DescribeDataQualityJobDefinition", "DescribeMonitoringSchedule",
    "ListMonitoringSchedules", "ListMonitoringExecutions",
]  # fmt: skip


def test_model_monitor_with_boto3(
    server: RunningServer, artifacts: dict[str, Path], tmp_path: Path
) -> None:
    shapes = ServiceModel("sagemaker", OPERATIONS)
    x, _ = models.digits()
    pixels = tmp_path / "pixels.csv"
    names = [f"p{i}" for i in range(x.shape[1])]
    pixels.write_text(
        ",".join(names) + "\n" + "".join(",".join(f"{v:g}" for v in row) + "\n" for row in x)
    )
    bucket = server.home / "s3" / "bucket" / "baseline"  # s3://bucket/... on this server
    made = CliRunner().invoke(
        cli, ["monitor", "baseline", "--data", str(pixels), "--out", str(bucket)]
    )
    assert made.exit_code == 0, made.output

    sm, runtime = clients(server.url)
    sm.create_model(
        ModelName="digits", ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": "sklearn", "ModelDataUrl": str(artifacts["logreg_tar"])},
    )  # fmt: skip
    sm.create_endpoint_config(
        EndpointConfigName="cfg",
        ProductionVariants=[{"VariantName": "A", "ModelName": "digits", "InitialInstanceCount": 1,
                             "InstanceType": "ml.m5.large"}],
        DataCaptureConfig={
            "EnableCapture": True, "InitialSamplingPercentage": 100,
            "DestinationS3Uri": "s3://bucket/capture",
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        },
    )  # fmt: skip
    sm.create_endpoint(EndpointName="digits", EndpointConfigName="cfg")
    wait(sm, "endpoint_in_service", "digits")
    for i in np.random.default_rng(0).choice(len(x), 300, replace=False):
        runtime.invoke_endpoint(
            EndpointName="digits", Body=json.dumps([x[i].tolist()]),
            ContentType="application/json",
        )  # fmt: skip

    definition = {
        "JobDefinitionName": "pixels",
        "DataQualityBaselineConfig": {
            "ConstraintsResource": {"S3Uri": "s3://bucket/baseline/constraints.json"},
            "StatisticsResource": {"S3Uri": "s3://bucket/baseline/statistics.json"},
        },
        "DataQualityAppSpecification": {"ImageUri": "model-monitor-analyzer"},
        "DataQualityJobInput": {
            "EndpointInput": {"EndpointName": "digits", "LocalPath": "/opt/ml/processing/input"}
        },
        "DataQualityJobOutputConfig": {
            "MonitoringOutputs": [
                {"S3Output": {"S3Uri": "s3://bucket/reports", "LocalPath": "/opt/ml/out"}}
            ]
        },
        "JobResources": {
            "ClusterConfig": {
                "InstanceCount": 1,
                "InstanceType": "ml.m5.xlarge",
                "VolumeSizeInGB": 20,
            }
        },
        "RoleArn": ROLE,
    }
    arn = sm.create_data_quality_job_definition(**definition)["JobDefinitionArn"]
    assert arn.endswith(":data-quality-job-definition/pixels")
    described = sm.describe_data_quality_job_definition(JobDefinitionName="pixels")
    conforms(shapes, "DescribeDataQualityJobDefinition", described)
    assert described["JobResources"]["ClusterConfig"]["InstanceType"] == "ml.m5.xlarge"
    # A second create of the name fails and leaves the first's baseline in place (the
    # one-time run below reads it).
    with pytest.raises(ClientError, match="already exists"):
        sm.create_data_quality_job_definition(**definition)

    sm.create_monitoring_schedule(
        MonitoringScheduleName="hourly",
        MonitoringScheduleConfig={
            "ScheduleConfig": {"ScheduleExpression": "cron(0 * ? * * *)"},
            "MonitoringJobDefinitionName": "pixels",
            "MonitoringType": "DataQuality",
        },
    )
    sm.create_monitoring_schedule(
        MonitoringScheduleName="once",
        MonitoringScheduleConfig={
            "ScheduleConfig": {
                "ScheduleExpression": "NOW",
                "DataAnalysisStartTime": "-PT1H",
                "DataAnalysisEndTime": "-PT0H",
            },
            "MonitoringJobDefinitionName": "pixels",
            "MonitoringType": "DataQuality",
        },
    )
    deadline = time.monotonic() + 120
    while True:
        listed = sm.list_monitoring_executions(MonitoringScheduleName="once")
        summaries = listed["MonitoringExecutionSummaries"]
        if summaries and summaries[0]["MonitoringExecutionStatus"] not in ("Pending", "InProgress"):
            break
        assert time.monotonic() < deadline, summaries
        time.sleep(0.5)
    conforms(shapes, "ListMonitoringExecutions", listed)
    (summary,) = summaries
    assert summary["MonitoringExecutionStatus"] == "Completed", summary
    assert summary["MonitoringJobDefinitionName"] == "pixels"
    assert summary["EndpointName"] == "digits"

    schedule = sm.describe_monitoring_schedule(MonitoringScheduleName="once")
    conforms(shapes, "DescribeMonitoringSchedule", schedule)
    assert schedule["LastMonitoringExecutionSummary"]["MonitoringExecutionStatus"] == "Completed"
    hourly = sm.describe_monitoring_schedule(MonitoringScheduleName="hourly")
    assert hourly["MonitoringScheduleStatus"] == "Scheduled"
    assert hourly["MonitoringScheduleConfig"]["ScheduleConfig"]["ScheduleExpression"] == (
        "cron(0 * ? * * *)"
    )
    page = sm.list_monitoring_schedules(EndpointName="digits", SortBy="Name", SortOrder="Ascending")
    conforms(shapes, "ListMonitoringSchedules", page)
    assert [s["MonitoringScheduleName"] for s in page["MonitoringScheduleSummaries"]] == [
        "hourly",
        "once",
    ]
    sm.stop_monitoring_schedule(MonitoringScheduleName="hourly")
    stopped = sm.list_monitoring_schedules(StatusEquals="Stopped")["MonitoringScheduleSummaries"]
    assert [s["MonitoringScheduleName"] for s in stopped] == ["hourly"]
    sm.start_monitoring_schedule(MonitoringScheduleName="hourly")

    # Errors name what is wrong, in SageMaker's codes.
    with pytest.raises(ClientError) as caught:
        sm.delete_data_quality_job_definition(JobDefinitionName="pixels")
    assert "is used by schedule 'hourly'" in caught.value.response["Error"]["Message"]
    broken = {**definition, "JobDefinitionName": "broken"}
    broken["DataQualityBaselineConfig"] = {
        "ConstraintsResource": {"S3Uri": "s3://bucket/nothing/constraints.json"},
        "StatisticsResource": {"S3Uri": "s3://bucket/baseline/statistics.json"},
    }
    with pytest.raises(ClientError, match="cannot read s3://bucket/nothing"):
        sm.create_data_quality_job_definition(**broken)
    with pytest.raises(ClientError, match="ScheduleExpression"):
        sm.create_monitoring_schedule(
            MonitoringScheduleName="bad",
            MonitoringScheduleConfig={
                "ScheduleConfig": {"ScheduleExpression": "every hour"},
                "MonitoringJobDefinitionName": "pixels",
            },
        )

    for name in ("hourly", "once"):
        sm.delete_monitoring_schedule(MonitoringScheduleName=name)
    sm.delete_data_quality_job_definition(JobDefinitionName="pixels")
    with pytest.raises(ClientError) as caught:
        sm.describe_monitoring_schedule(MonitoringScheduleName="hourly")
    assert caught.value.response["Error"]["Code"] == "ResourceNotFound"
    sm.close()
    runtime.close()
