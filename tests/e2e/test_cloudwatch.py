"""boto3's cloudwatch client, unchanged, against a real server: the metric history read
back as SageMaker's metrics, custom metrics put and read, in the CBOR protocol botocore
uses by default and in AWS JSON 1.0."""

from __future__ import annotations

import gzip
import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from sluice.client import Client
from tests import models
from tests.conftest import RunningServer
from tests.e2e.helpers import Load, aws_client, digit_rows

pytestmark = pytest.mark.slow


def cloudwatch(url: str, **options: Any) -> Any:
    return aws_client("cloudwatch", url, **options)


def model_speaking(folder: Path, protocol: str) -> Path:
    """botocore's cloudwatch model with only `protocol` (a data path for AWS_DATA_PATH), so
    a client speaks it instead of CBOR."""
    import botocore

    source = Path(botocore.__file__).parent / "data" / "cloudwatch" / "2010-08-01"
    model = json.loads(gzip.decompress((source / "service-2.json.gz").read_bytes()))
    model["metadata"]["protocols"] = [protocol]
    model["metadata"]["protocol"] = protocol
    target = folder / "cloudwatch" / "2010-08-01"
    target.mkdir(parents=True)
    (target / "service-2.json").write_text(json.dumps(model))
    return folder


def test_sagemaker_metrics_and_custom_ones_read_back_in_both_protocols(
    server: RunningServer,
    artifacts: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with Client(server.url) as client:
        client.create_model("logreg", str(artifacts["logreg"]))
        client.create_endpoint_config("cfg", [{"name": "A", "model": "logreg"}])
        client.create_endpoint("digits", "cfg", wait=True, timeout=60)
        x, _ = models.digits()
        for i in range(7):
            client.invoke("digits", json.dumps([x[i].tolist()]))
    cw = cloudwatch(server.url)
    dimensions = [
        {"Name": "EndpointName", "Value": "digits"},
        {"Name": "VariantName", "Value": "A"},
    ]
    start = datetime.now(UTC) - timedelta(minutes=5)

    def invocations() -> float:
        answer = cw.get_metric_statistics(
            Namespace="AWS/SageMaker",
            MetricName="Invocations",
            Dimensions=dimensions,
            StartTime=start,
            EndTime=datetime.now(UTC) + timedelta(minutes=1),
            Period=60,
            Statistics=["Sum"],
        )
        return sum(p["Sum"] for p in answer["Datapoints"])

    deadline = time.monotonic() + 30
    while invocations() < 7:  # written every 10 s
        assert time.monotonic() < deadline, "no history after 30 s"
        time.sleep(1)
    assert invocations() == 7
    latency = cw.get_metric_statistics(
        Namespace="AWS/SageMaker",
        MetricName="ModelLatency",
        Dimensions=dimensions,
        StartTime=start,
        EndTime=datetime.now(UTC) + timedelta(minutes=1),
        Period=600,
        ExtendedStatistics=["p50", "p99"],
    )["Datapoints"]
    assert len(latency) == 1 and latency[0]["Unit"] == "Microseconds"
    assert 0 < latency[0]["ExtendedStatistics"]["p50"] <= latency[0]["ExtendedStatistics"]["p99"]
    listed = cw.list_metrics(Namespace="AWS/SageMaker", Dimensions=[{"Name": "VariantName"}])
    names = {m["MetricName"] for m in listed["Metrics"]}
    assert {"Invocations", "ModelLatency", "Invocation5XXErrors"} <= names

    # Custom metrics: put in one protocol, read in the other.
    now = datetime.now(UTC).replace(microsecond=0)
    cw.put_metric_data(
        Namespace="Team/Models",
        MetricData=[
            {"MetricName": "Drift", "Dimensions": dimensions[:1], "Value": 0.25,
             "Timestamp": now, "StorageResolution": 1},
            {"MetricName": "Drift", "Dimensions": dimensions[:1], "Values": [0.5, 1.5],
             "Counts": [1, 2], "Timestamp": now, "StorageResolution": 1},
        ],
    )  # fmt: skip
    # Over 10 KB, botocore gzips the body.
    many = [{"MetricName": "Big", "Values": [float(v) for v in range(1, 151)],
             "Timestamp": now, "StorageResolution": 1}] * 20  # fmt: skip
    cw.put_metric_data(Namespace="Team/Models", MetricData=many)
    (big,) = cw.get_metric_statistics(
        Namespace="Team/Models", MetricName="Big", StartTime=now - timedelta(minutes=1),
        EndTime=now + timedelta(minutes=1), Period=60, Statistics=["SampleCount", "Maximum"],
    )["Datapoints"]  # fmt: skip
    assert (big["SampleCount"], big["Maximum"]) == (3000, 150)
    monkeypatch.setenv("AWS_DATA_PATH", str(model_speaking(tmp_path / "json", "json")))
    as_json = cloudwatch(server.url)
    assert as_json.meta.service_model.protocol == "json"
    monkeypatch.setenv("AWS_DATA_PATH", str(model_speaking(tmp_path / "query", "query")))
    as_query = cloudwatch(server.url)
    assert as_query.meta.service_model.protocol == "query"
    (queried,) = as_query.get_metric_statistics(
        Namespace="Team/Models", MetricName="Drift", Dimensions=dimensions[:1],
        StartTime=now - timedelta(minutes=1), EndTime=now + timedelta(minutes=1),
        Period=60, ExtendedStatistics=["p50"],
    )["Datapoints"]  # fmt: skip
    assert queried["ExtendedStatistics"]["p50"] == pytest.approx(0.5, rel=0.01)  # of 4 values
    assert queried["Timestamp"] == now.replace(second=0)
    names = {m["MetricName"] for m in as_query.list_metrics(Namespace="Team/Models")["Metrics"]}
    assert names == {"Drift", "Big"}
    (point,) = as_json.get_metric_statistics(
        Namespace="Team/Models",
        MetricName="Drift",
        Dimensions=dimensions[:1],
        StartTime=now - timedelta(minutes=1),
        EndTime=now + timedelta(minutes=1),
        Period=60,
        Statistics=["SampleCount", "Sum", "Minimum", "Maximum", "Average"],
    )["Datapoints"]
    assert (point["SampleCount"], point["Sum"], point["Minimum"], point["Maximum"]) == (
        4, 3.75, 0.25, 1.5,
    )  # fmt: skip
    data = as_json.get_metric_data(
        MetricDataQueries=[
            {
                "Id": "drift",
                "MetricStat": {
                    "Metric": {
                        "Namespace": "Team/Models",
                        "MetricName": "Drift",
                        "Dimensions": dimensions[:1],
                    },
                    "Period": 10,
                    "Stat": "Maximum",
                },
            },
        ],
        StartTime=now - timedelta(minutes=1),
        EndTime=now + timedelta(minutes=1),
    )["MetricDataResults"]
    assert data[0]["Values"] == [1.5] and data[0]["StatusCode"] == "Complete"

    # A body that unzips past 16 MiB is refused before it is read through.
    bomb = gzip.compress(b"{" + b" " * (17 << 20) + b"}")
    refused = httpx.post(
        server.url,
        content=bomb,
        headers={"x-amz-target": "GraniteServiceVersion20100801.ListMetrics",
                 "content-type": "application/x-amz-json-1.0", "content-encoding": "gzip"},
    )  # fmt: skip
    assert refused.status_code == 400 and "unzips to more than" in refused.text
    assert refused.headers["x-amzn-query-error"] == "InvalidParameterValue;Sender"

    # Bad requests get CloudWatch's errors, in each protocol.
    for client_ in (cw, as_json, as_query):
        with pytest.raises(ClientError) as info:
            client_.put_metric_data(
                Namespace="AWS/SageMaker", MetricData=[{"MetricName": "x", "Value": 1}]
            )
        assert info.value.response["Error"]["Code"] == "InvalidParameterValue"
        with pytest.raises(ClientError) as info:
            client_.get_metric_statistics(
                Namespace="Team/Models", MetricName="Drift", StartTime=now,
                EndTime=now + timedelta(days=30), Period=60, Statistics=["Sum"],
            )  # fmt: skip
        assert info.value.response["Error"]["Code"] == "InvalidParameterCombination"
        with pytest.raises(ClientError) as info:
            client_.get_metric_statistics(
                Namespace="Team/Models", MetricName="Drift", StartTime=now,
                EndTime=now + timedelta(hours=1), Period=60,
            )  # fmt: skip
        assert info.value.response["Error"]["Code"] == "MissingParameter"


def test_cloudwatch_and_autoscaling_take_signed_requests_only_when_authentication_is_on(
    tmp_path: Path,
) -> None:
    keys = {"AKIDSLUICE": "right-secret"}
    server = RunningServer(
        tmp_path / "home", {"SLUICE_AWS_ACCESS_KEYS": json.dumps(keys)}, auth=True
    )
    try:
        server.wait_ready()
        good = boto3.client(
            "cloudwatch", endpoint_url=server.url, region_name="us-east-1",
            aws_access_key_id="AKIDSLUICE", aws_secret_access_key="right-secret",
        )  # fmt: skip
        assert good.list_metrics()["Metrics"] == []
        bad = boto3.client(
            "cloudwatch", endpoint_url=server.url, region_name="us-east-1",
            aws_access_key_id="AKIDSLUICE", aws_secret_access_key="wrong",
            config=Config(retries={"max_attempts": 1}),
        )  # fmt: skip
        with pytest.raises(ClientError) as info:
            bad.list_metrics()
        assert info.value.response["Error"]["Code"] == "InvalidSignatureException"
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        # Application Auto Scaling shares the port and the check.
        options = {"endpoint_url": server.url, "region_name": "us-east-1",
                   "aws_access_key_id": "AKIDSLUICE"}  # fmt: skip
        scaling = boto3.client(
            "application-autoscaling", aws_secret_access_key="right-secret", **options
        )
        assert (
            scaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"] == []
        )
        forged = boto3.client(
            "application-autoscaling", aws_secret_access_key="wrong",
            config=Config(retries={"max_attempts": 1}), **options,
        )  # fmt: skip
        with pytest.raises(ClientError) as info:
            forged.describe_scalable_targets(ServiceNamespace="sagemaker")
        assert info.value.response["Error"]["Code"] == "InvalidSignatureException"
    finally:
        server.stop()


def test_an_alarm_made_with_put_metric_alarm_is_a_sluice_alarm(
    server: RunningServer, artifacts: dict[str, Path]
) -> None:
    with Client(server.url) as client:
        client.create_model("logreg", str(artifacts["logreg"]))
        client.create_endpoint_config("cfg", [{"name": "A", "model": "logreg"}])
        client.create_endpoint("digits", "cfg", wait=True, timeout=60)
    cw = cloudwatch(server.url)
    cw.put_metric_alarm(
        AlarmName="digits-slow",
        Namespace="AWS/SageMaker",
        MetricName="ModelLatency",
        Dimensions=[{"Name": "EndpointName", "Value": "digits"}],
        ExtendedStatistic="p99",
        Period=10,
        EvaluationPeriods=1,
        Threshold=1.0,  # microseconds: every request breaches it
        ComparisonOperator="GreaterThanThreshold",
        TreatMissingData="notBreaching",
    )
    (described,) = cw.describe_alarms(AlarmNames=["digits-slow"])["MetricAlarms"]
    assert described["Threshold"] == 1.0 and described["ExtendedStatistic"] == "p99"
    assert described["Dimensions"] == [{"Name": "EndpointName", "Value": "digits"}]
    native = httpx.get(f"{server.url}/api/v1/alarms").json()
    assert [(a["name"], a["threshold"]) for a in native] == [("digits-slow", 0.001)]  # ms

    x, _ = models.digits()
    deadline = time.monotonic() + 40
    with Client(server.url) as client:
        while (
            cw.describe_alarms(AlarmNames=["digits-slow"])["MetricAlarms"][0]["StateValue"]
            != "ALARM"
        ):
            assert time.monotonic() < deadline, "the alarm never fired"
            client.invoke("digits", json.dumps([x[0].tolist()]))
            time.sleep(0.2)

    history = cw.describe_alarm_history(AlarmName="digits-slow")["AlarmHistoryItems"]
    assert history[0]["HistorySummary"].endswith("to ALARM")
    assert json.loads(history[0]["HistoryData"])["newState"]["stateValue"] == "ALARM"
    for_metric = cw.describe_alarms_for_metric(
        Namespace="AWS/SageMaker", MetricName="ModelLatency",
        Dimensions=[{"Name": "EndpointName", "Value": "digits"}],
    )["MetricAlarms"]  # fmt: skip
    assert [a["AlarmName"] for a in for_metric] == ["digits-slow"]
    assert (
        cw.describe_alarms_for_metric(Namespace="AWS/SageMaker", MetricName="Invocations")[
            "MetricAlarms"
        ]
        == []
    )

    for bad, why in [
        ({"Namespace": "Team/Models", "MetricName": "Drift", "Period": 15}, "multiple of 10"),
        ({"Dimensions": [{"Name": "Host", "Value": "a"}]}, "Dimensions"),
        ({"AlarmActions": ["arn:aws:sns:us-east-1:000000000000:nobody"]}, "sns_topics"),
    ]:
        options = {
            "AlarmName": "bad", "Namespace": "AWS/SageMaker", "MetricName": "Invocations",
            "Dimensions": [{"Name": "EndpointName", "Value": "digits"}], "Statistic": "Sum",
            "Period": 60, "EvaluationPeriods": 1, "Threshold": 1.0,
            "ComparisonOperator": "GreaterThanThreshold", **bad,
        }  # fmt: skip
        with pytest.raises(ClientError) as info:
            cw.put_metric_alarm(**options)
        assert info.value.response["Error"]["Code"] == "InvalidParameterValue"
        assert why in info.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as info:
        cw.delete_alarms(AlarmNames=["digits-slow", "nobody"])
    assert info.value.response["Error"]["Code"] == "ResourceNotFound"
    cw.delete_alarms(AlarmNames=["digits-slow"])
    assert cw.describe_alarms()["MetricAlarms"] == []


def test_alarms_on_stored_series_and_native_metrics_in_the_history(
    server: RunningServer,
) -> None:
    cw = cloudwatch(server.url)
    dimensions = [{"Name": "Model", "Value": "ranker"}]
    cw.put_metric_alarm(
        AlarmName="deep-queue", Namespace="Team/Models", MetricName="QueueDepth",
        Dimensions=dimensions, Statistic="Maximum", Period=10, EvaluationPeriods=1,
        Threshold=100, ComparisonOperator="GreaterThanThreshold",
    )  # fmt: skip
    described = cw.describe_alarms(AlarmNames=["deep-queue"])["MetricAlarms"][0]
    assert (described["Namespace"], described["Dimensions"]) == ("Team/Models", dimensions)
    deadline = time.monotonic() + 45
    while cw.describe_alarms(AlarmNames=["deep-queue"])["MetricAlarms"][0]["StateValue"] != (
        "ALARM"
    ):
        assert time.monotonic() < deadline, "the alarm on a custom series never fired"
        cw.put_metric_data(
            Namespace="Team/Models",
            MetricData=[{"MetricName": "QueueDepth", "Dimensions": dimensions, "Value": 250.0,
                         "StorageResolution": 1}],
        )  # fmt: skip
        time.sleep(1)
    for_metric = cw.describe_alarms_for_metric(
        Namespace="Team/Models", MetricName="QueueDepth", Dimensions=dimensions
    )["MetricAlarms"]
    assert [a["AlarmName"] for a in for_metric] == ["deep-queue"]

    # Metrics pushed through the native API are kept in the history too.
    with Client(server.url) as client:
        client.put_metrics([{"name": "queue_wait", "value": 3.0}])
    deadline = time.monotonic() + 10
    while not (
        points := cw.get_metric_statistics(
            Namespace="Sluice/Custom", MetricName="queue_wait",
            StartTime=datetime.now(UTC) - timedelta(minutes=5),
            EndTime=datetime.now(UTC) + timedelta(minutes=1), Period=60, Statistics=["Sum"],
        )["Datapoints"]
    ):  # fmt: skip
        assert time.monotonic() < deadline, "native metrics are not in the history"
        time.sleep(0.5)
    assert points[0]["Sum"] == 3.0


def sagemaker(url: str) -> Any:
    return aws_client("sagemaker", url)


def deploy(sm: Any, artifacts: dict[str, Path], configs: dict[str, list[tuple[str, str]]]) -> None:
    """Models from `artifacts` by name, configs of (variant, model), endpoint `ep` on the
    first config; all with boto3's sagemaker client."""
    for name in sorted({m for variants in configs.values() for _, m in variants}):
        sm.create_model(
            ModelName=name,
            PrimaryContainer={"Image": "sklearn", "ModelDataUrl": artifacts[name].as_uri()},
            ExecutionRoleArn="arn:aws:iam::000000000000:role/SageMakerRole",
        )
    for config, variants in configs.items():
        sm.create_endpoint_config(
            EndpointConfigName=config,
            ProductionVariants=[
                {"VariantName": v, "ModelName": m, "InitialInstanceCount": 1,
                 "InstanceType": "ml.m5.large", "InitialVariantWeight": 1.0}
                for v, m in variants
            ],
        )  # fmt: skip
    sm.create_endpoint(EndpointName="ep", EndpointConfigName=next(iter(configs)))
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName="ep", WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )


def sums(cw: Any, metric: str, dimensions: list[dict[str, str]]) -> float:
    answer = cw.get_metric_statistics(
        Namespace="AWS/SageMaker",
        MetricName=metric,
        Dimensions=dimensions,
        StartTime=datetime.now(UTC) - timedelta(hours=1),
        EndTime=datetime.now(UTC) + timedelta(minutes=1),
        Period=3600,
        Statistics=["Sum"],
    )
    return float(sum(p["Sum"] for p in answer["Datapoints"]))


def test_per_variant_counts_after_an_ab_split_survive_a_restart(
    tmp_path: Path, artifacts: dict[str, Path]
) -> None:
    server = RunningServer(tmp_path / "home")
    try:
        sm, cw = sagemaker(server.url), cloudwatch(server.url)
        deploy(sm, artifacts, {"ab": [("A", "logreg"), ("B", "tree")]})
        answered: Counter[str] = Counter()
        runtime = boto3.session.Session().client(
            "sagemaker-runtime", endpoint_url=server.url, region_name="us-east-1",
            aws_access_key_id="test", aws_secret_access_key="test",
        )  # fmt: skip
        x, _ = models.digits()
        for i in range(60):
            reply = runtime.invoke_endpoint(
                EndpointName="ep", ContentType="application/json", Body=json.dumps([x[i].tolist()])
            )
            answered[reply["InvokedProductionVariant"]] += 1
        assert set(answered) == {"A", "B"}  # an even split sends some to each

        def per_variant() -> dict[str, float]:
            return {
                v: sums(cw, "Invocations", [{"Name": "EndpointName", "Value": "ep"},
                                            {"Name": "VariantName", "Value": v}])
                for v in ("A", "B")
            }  # fmt: skip

        deadline = time.monotonic() + 30
        while per_variant() != {v: float(n) for v, n in answered.items()}:
            assert time.monotonic() < deadline, (per_variant(), answered)
            time.sleep(1)
        endpoint_wide = sums(cw, "Invocations", [{"Name": "EndpointName", "Value": "ep"}])
        # SageMaker publishes per variant: a query on EndpointName alone matches no series.
        assert endpoint_wide == 0.0
        server.stop()
        server = RunningServer(tmp_path / "home")  # same home, same database
        cw = cloudwatch(server.url)
        assert per_variant() == {v: float(n) for v, n in answered.items()}
    finally:
        server.stop()


def test_a_linear_update_guarded_by_put_metric_alarm_rolls_back_or_completes(
    server: RunningServer, artifacts: dict[str, Path]
) -> None:
    sm, cw = sagemaker(server.url), cloudwatch(server.url)
    deploy(sm, artifacts, {"v1": [("A", "logreg")], "v2": [("A", "crashing")],
                           "v3": [("A", "tree")]})  # fmt: skip
    cw.put_metric_alarm(
        AlarmName="ep-5xx", Namespace="AWS/SageMaker", MetricName="Invocation5XXErrors",
        Dimensions=[{"Name": "EndpointName", "Value": "ep"}], Statistic="Average",
        Period=2, EvaluationPeriods=1, Threshold=0.05,
        ComparisonOperator="GreaterThanThreshold", TreatMissingData="notBreaching",
    )  # fmt: skip
    linear = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "LINEAR",
                "WaitIntervalInSeconds": 3,
                "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 50},
            },
            "TerminationWaitInSeconds": 0,
        },
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "ep-5xx"}]},
    }
    negative = json.dumps([[-1.0] + [0.0] * 63]).encode()  # the crashing model refuses it
    bodies = digit_rows(40) + [negative] * 10

    def update(config: str) -> dict[str, Any]:
        sm.update_endpoint(EndpointName="ep", EndpointConfigName=config, DeploymentConfig=linear)
        deadline = time.monotonic() + 60
        while (found := sm.describe_endpoint(EndpointName="ep"))["EndpointStatus"] in (
            "Updating", "RollingBack",
        ):  # fmt: skip
            assert time.monotonic() < deadline
            time.sleep(0.5)
        return dict(found)

    with Load(server.url, "ep", bodies, concurrency=4) as load:
        time.sleep(0.5)
        broken = update("v2")
    assert broken["EndpointConfigName"] == "v1" and broken["EndpointStatus"] == "InService"
    assert "ep-5xx" in broken.get("FailureReason", ""), broken
    assert {r.status for r in load.failed()} <= {424}  # only green's model failed
    history = cw.describe_alarm_history(AlarmName="ep-5xx")["AlarmHistoryItems"]
    assert any('"stateValue": "ALARM"' in h["HistoryData"] for h in history)

    with Load(server.url, "ep", digit_rows(40), concurrency=4) as load:
        good = update("v3")
    assert good["EndpointConfigName"] == "v3" and good["EndpointStatus"] == "InService"
    assert not load.failed()
