"""Monitoring against a running server: a real model answers captured requests, ground
truth is posted through the API, and schedules' checks run now on what was captured,
through the HTTP API and the CLI."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import numpy as np
import pytest
from click.testing import CliRunner

from sluice.cli.main import cli
from sluice.client import Client
from sluice.errors import NotFound, ValidationError
from tests import models
from tests.conftest import RunningServer
from tests.e2e.helpers import send_many

pytestmark = pytest.mark.slow


def _baselines(tmp: Path) -> tuple[Path, Path]:
    """A data-quality baseline of the digits' pixels, and a model-quality one of the
    model's predictions on them."""
    x, y = models.digits()
    names = [f"p{i}" for i in range(x.shape[1])]
    pixels = tmp / "pixels.csv"
    pixels.write_text(
        ",".join(names) + "\n" + "".join(",".join(f"{v:g}" for v in row) + "\n" for row in x)
    )
    predicted = models.digits_logreg().predict(x)
    labelled = tmp / "labelled.csv"
    labelled.write_text(
        "label,prediction\n" + "".join(f"{a},{b}\n" for a, b in zip(y, predicted, strict=True))
    )
    runner = CliRunner()
    data, quality = tmp / "data-baseline", tmp / "quality-baseline"
    made = runner.invoke(cli, ["monitor", "baseline", "--data", str(pixels), "--out", str(data)])
    assert made.exit_code == 0, made.output
    made = runner.invoke(
        cli,
        ["monitor", "baseline", "--data", str(labelled), "--out", str(quality),
         "--problem-type", "MulticlassClassification", "--label", "label",
         "--prediction", "prediction"],
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    return data, quality


def test_schedules_check_what_the_endpoint_captured(
    server: RunningServer, artifacts: dict[str, Path], tmp_path: Path
) -> None:
    data_baseline, quality_baseline = _baselines(tmp_path)
    x, y = models.digits()
    picked = np.random.default_rng(0).choice(len(x), 400, replace=False)  # a resample
    bodies = [json.dumps([x[i].tolist()]).encode() for i in picked]
    with Client(server.url) as client:
        client.create_model("logreg", str(artifacts["logreg"]))
        client.create_endpoint_config(
            "cfg", [{"name": "A", "model": "logreg"}], data_capture={"sampling_percentage": 100}
        )
        client.create_endpoint("digits", "cfg", wait=True, timeout=60)
        replies = asyncio.run(send_many(server.url, "digits", bodies))
        assert {r.status for r in replies} == {200}

        # Data quality: the same distribution as the baseline, checked now.
        client.create_monitoring_schedule(
            "pixels", "rate(1 hour)",
            {"endpoint": "digits", "baseline": str(data_baseline)},
        )  # fmt: skip
        execution = client.wait_for_monitoring_execution(
            client.run_monitoring_schedule("pixels").id, timeout=120
        )
        assert execution.status == "Completed", execution
        assert execution.counts["rows"] == 400
        assert execution.counts["malformed_lines"] == 0
        html = client.monitoring_file(execution.id, "report.html").decode()
        assert "Data quality" in html and "feature-p10" in html
        violations = json.loads(client.monitoring_file(execution.id, "constraint_violations.json"))
        assert violations == {"violations": []}

        # Model quality: too few labels first, then enough.
        quality_job = {
            "kind": "ModelQuality",
            "endpoint": "digits",
            "baseline": str(quality_baseline),
            "problem_type": "MulticlassClassification",
            "min_rows": 200,
        }
        client.create_monitoring_schedule("accuracy", "cron(0 * ? * * *)", quality_job)
        labels = [{"inference_id": f"req-{i}", "label": int(y[picked[i]])} for i in range(100)]
        client.put_ground_truth("digits", labels)
        waiting = client.wait_for_monitoring_execution(
            client.run_monitoring_schedule("accuracy").id, timeout=120
        )
        assert waiting.status == "InsufficientGroundTruth"
        assert "100 rows joined, 200 needed" in (waiting.failure_reason or "")
        labels = [{"inference_id": f"req-{i}", "label": int(y[picked[i]])} for i in range(100, 400)]
        client.put_ground_truth("digits", labels)
        judged = client.wait_for_monitoring_execution(
            client.run_monitoring_schedule("accuracy").id, timeout=120
        )
        assert judged.status == "Completed", judged
        assert judged.counts["rows"] == 400
        assert judged.summary["metrics"]["accuracy"] > 0.95

        schedules = {s.name: s for s in client.list_monitoring_schedules("digits")}
        assert schedules["pixels"].alert_state == "OK"
        assert schedules["accuracy"].alert_state == "OK"
        assert [x.status for x in client.list_monitoring_executions("accuracy")] == [
            "Completed",
            "InsufficientGroundTruth",
        ]
        exposition = client.metrics()
        assert 'sluice_monitoring_model_metric{endpoint="digits",metric="accuracy"' in exposition
        assert 'sluice_monitoring_feature_drift{endpoint="digits",feature="p10"' in exposition

        # Stop, start and delete; bad requests name what is wrong.
        assert client.stop_monitoring_schedule("pixels").status == "Stopped"
        assert client.start_monitoring_schedule("pixels").status == "Scheduled"
        with pytest.raises(ValidationError, match="ScheduleExpression"):
            client.create_monitoring_schedule(
                "bad", "every hour", {"endpoint": "digits", "baseline": str(data_baseline)}
            )
        empty = tmp_path / "empty"
        empty.mkdir()
        with pytest.raises(ValidationError, match="no statistics.json"):
            client.create_monitoring_schedule(
                "bad", "rate(1 hour)", {"endpoint": "digits", "baseline": str(empty)}
            )
        with pytest.raises(NotFound):
            client.create_monitoring_schedule(
                "bad", "rate(1 hour)", {"endpoint": "nope", "baseline": str(data_baseline)}
            )
        client.delete_monitoring_schedule("pixels")
        with pytest.raises(NotFound):
            client.get_monitoring_schedule("pixels")
        kept = httpx.get(f"{server.url}/api/v1/monitoring-executions/{execution.id}")
        assert kept.json()["status"] == "Completed"  # executions outlive their schedule

    # The CLI runs a schedule now and exits by its verdict.
    result = CliRunner().invoke(
        cli, ["--url", server.url, "monitor", "run-now", "--schedule", "accuracy"]
    )
    assert result.exit_code == 0, result.output
    assert "Completed" in result.output
    wide = CliRunner(env={"COLUMNS": "250"})
    listed = wide.invoke(cli, ["--url", server.url, "monitor", "executions", "accuracy"])
    assert listed.exit_code == 0 and "InsufficientGroundTruth" in listed.output
    assert np.isfinite(judged.summary["metrics"]["weighted_f1"])
