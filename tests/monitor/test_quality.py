"""Model quality on known answers: metrics against scikit-learn and numpy, the join of
captured predictions (written by the gateway's record writer) with ground truth posted
through the label store, constraints and the not-enough-ground-truth state."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn import metrics as skm

from sluice.cli.main import cli
from sluice.control.labels import Label, LabelStore
from sluice.gateway.capture import CaptureEvent, CaptureTarget, to_record
from sluice.monitor import quality, run
from sluice.monitor.ground_truth import Attributes, join
from sluice.monitor.quality import Pairs

T0 = 1_790_000_000.0


def _binary(rng: np.random.Generator, rows: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """Labels and positive-class scores; larger `noise` makes a worse model."""
    truth = rng.random(rows) < 0.4
    score = 1 / (1 + np.exp(-(np.where(truth, 1.5, -1.5) + rng.normal(0, noise, rows))))
    return truth.astype(int), score


def test_binary_metrics_match_scikit_learn() -> None:
    truth, score = _binary(np.random.default_rng(1), 5_000, 1.5)
    predicted = (score >= 0.5).astype(int)
    pairs = Pairs([str(t) for t in truth], [str(p) for p in predicted], list(score))
    found = quality.metrics("BinaryClassification", pairs)["binary_classification_metrics"]
    assert found["accuracy"]["value"] == pytest.approx(skm.accuracy_score(truth, predicted))
    assert found["precision"]["value"] == pytest.approx(skm.precision_score(truth, predicted))
    assert found["recall"]["value"] == pytest.approx(skm.recall_score(truth, predicted))
    assert found["f1"]["value"] == pytest.approx(skm.f1_score(truth, predicted))
    assert found["f2"]["value"] == pytest.approx(skm.fbeta_score(truth, predicted, beta=2))
    assert found["f0_5"]["value"] == pytest.approx(skm.fbeta_score(truth, predicted, beta=0.5))
    assert found["auc"]["value"] == pytest.approx(skm.roc_auc_score(truth, score))
    tn, fp, fn, tp = skm.confusion_matrix(truth, predicted).ravel()
    assert found["confusion_matrix"] == {"0": {"0": tn, "1": fp}, "1": {"0": fn, "1": tp}}
    assert found["false_positive_rate"]["value"] == pytest.approx(fp / (fp + tn))
    # The best constant classifier answers the majority class (0 here): accuracy 1 - 40 %.
    assert found["accuracy_best_constant_classifier"]["value"] == pytest.approx(1 - truth.mean())
    assert found["recall_best_constant_classifier"]["value"] == 0.0
    curve = found["receiver_operating_characteristic_curve"]
    assert len(curve["false_positive_rates"]) <= quality.CURVE_POINTS
    assert curve["false_positive_rates"][0] == 0.0 and curve["true_positive_rates"][-1] == 1.0
    assert 0 < found["accuracy"]["standard_deviation"] < 0.02


def test_multiclass_and_regression_metrics() -> None:
    rng = np.random.default_rng(2)
    truth = rng.choice(["a", "b", "c"], 3_000, p=[0.5, 0.3, 0.2])
    predicted = np.where(rng.random(3_000) < 0.8, truth, rng.choice(["a", "b", "c"], 3_000))
    pairs = Pairs(list(truth), list(predicted), [math.nan] * 3_000)
    found = quality.metrics("MulticlassClassification", pairs)["multiclass_classification_metrics"]
    assert found["accuracy"]["value"] == pytest.approx(skm.accuracy_score(truth, predicted))
    for name, beta in (("weighted_f1", 1.0), ("weighted_f2", 2.0), ("weighted_f0_5", 0.5)):
        expected = skm.fbeta_score(truth, predicted, beta=beta, average="weighted")
        assert found[name]["value"] == pytest.approx(expected)
    assert found["weighted_recall"]["value"] == pytest.approx(
        skm.recall_score(truth, predicted, average="weighted")
    )
    assert found["accuracy_best_constant_classifier"]["value"] == pytest.approx(
        np.mean(truth == "a")
    )
    assert sum(sum(row.values()) for row in found["confusion_matrix"].values()) == 3_000

    y = rng.normal(10, 3, 1_000)
    p = y + rng.normal(0, 1, 1_000)
    pairs = Pairs([str(v) for v in y], [str(v) for v in p], [math.nan] * 1_000)
    found = quality.metrics("Regression", pairs)["regression_metrics"]
    assert found["mae"]["value"] == pytest.approx(np.mean(np.abs(y - p)))
    assert found["rmse"]["value"] == pytest.approx(math.sqrt(np.mean((y - p) ** 2)))
    assert found["r2"]["value"] == pytest.approx(skm.r2_score(y, p))


def test_deviation_needs_200_samples() -> None:
    small = Pairs(["1", "0"] * 99, ["1", "0"] * 99, [math.nan] * 198)
    found = quality.metrics("BinaryClassification", small)["binary_classification_metrics"]
    assert found["accuracy"] == {"value": 1.0, "standard_deviation": "NaN"}
    assert found["auc"]["value"] == "NaN"  # no probabilities: no AUC, never a made-up one


def test_regression_rejects_text() -> None:
    from sluice.errors import ValidationError

    with pytest.raises(ValidationError, match="must be numbers"):
        quality.metrics("Regression", Pairs(["1.0", "x"], ["1.0", "2.0"], [math.nan] * 2))


def test_suggested_constraints_and_violations() -> None:
    truth, score = _binary(np.random.default_rng(3), 4_000, 1.0)
    pairs = Pairs([str(t) for t in truth], [str(int(s >= 0.5)) for s in score], list(score))
    statistics = quality.metrics("BinaryClassification", pairs)
    constraints = quality.suggest("BinaryClassification", statistics)
    rules = constraints["binary_classification_constraints"]
    assert set(rules) == {"accuracy", "precision", "recall", "f1", "auc"}
    accuracy = statistics["binary_classification_metrics"]["accuracy"]
    assert rules["accuracy"]["comparison_operator"] == "LessThanThreshold"
    assert rules["accuracy"]["threshold"] < accuracy["value"]
    assert quality.violations("BinaryClassification", statistics, constraints) == []

    worse = dict(statistics["binary_classification_metrics"])
    worse["accuracy"] = {"value": 0.5, "standard_deviation": 0.01}
    found = quality.violations(
        "BinaryClassification", {"binary_classification_metrics": worse}, constraints
    )
    assert [v["metric_name"] for v in found] == ["accuracy"]
    assert found[0]["constraint_check_type"] == "LessThanThreshold"
    assert found[0]["description"].startswith("Metric accuracy with 0.5 +/- 0.01 was LessThan")

    regression = quality.suggest(
        "Regression",
        {"regression_metrics": {"mae": {"value": 2.0, "standard_deviation": 0.1}}},
    )
    assert regression["regression_constraints"]["mae"] == {
        "threshold": 2.3,
        "comparison_operator": "GreaterThanThreshold",
    }


# -- joined with ground truth


def _capture(root: Path, truth: np.ndarray, score: np.ndarray, start: float = T0) -> Path:
    """One request per row to endpoint ep, answered with a prediction and probabilities;
    request i has inference id id-i; requests 10, 60, 110, ... failed (HTTP 500)."""
    target = CaptureTarget(root, 100, True, True)
    folder = root / "ep" / "AllTraffic"
    lines: dict[Path, list[str]] = {}
    for i, s in enumerate(score):
        when = start + i * 0.5
        failed = i % 50 == 10
        body = json.dumps({"predictions": [int(s >= 0.5)], "probabilities": [[1 - s, s]]})
        event = CaptureEvent(
            target, "ep", "AllTraffic", f"id-{i}", when, "text/csv", b"1,2",
            "application/json", b"boom" if failed else body.encode(), 1.0,
            500 if failed else 200, None,  # type: ignore[arg-type]
        )  # fmt: skip
        hour = folder / time.strftime("%Y/%m/%d/%H", time.gmtime(when))
        lines.setdefault(hour / "00-00-000-t.jsonl", []).append(to_record(event) + "\n")
    for path, records in lines.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(records))
    return folder


def _post_truth(root: Path, truth: np.ndarray, every: int = 1) -> None:
    labels = [Label(f"id-{i}", str(t), "CSV") for i, t in enumerate(truth) if i % every == 0]
    LabelStore(root, root / "outcomes").put_ground_truth("ep", labels)


def test_join_pairs_rows_by_inference_id(tmp_path: Path) -> None:
    truth, score = _binary(np.random.default_rng(4), 1_000, 1.0)
    captures = _capture(tmp_path / "capture", truth, score)
    _post_truth(tmp_path / "truth", truth, every=2)
    # A label for a request outside the capture, and one with two values for one row.
    LabelStore(tmp_path / "truth", tmp_path / "o").put_ground_truth(
        "ep", [Label("unknown", "1", "CSV"), Label("id-2", "[1, 0]", "JSON")]
    )
    joined = join([captures], tmp_path / "truth" / "ep", None, None, Attributes())
    counts = joined.counts
    assert counts.captured_records == 1_000
    assert counts.ground_truth_records == 502
    assert counts.labelled_records == 500
    assert counts.unanswered_records == 20  # the failed calls, all of even id
    assert counts.mismatched_records == 1  # id-2's later post has two labels
    assert counts.rows == len(joined.pairs) == 500 - 20 - 1
    expected = {f"id-{i}": (str(truth[i]), str(int(score[i] >= 0.5))) for i in range(1_000)}
    pairs = list(zip(joined.pairs.truth, joined.pairs.predicted, strict=True))
    assert pairs[0] == expected["id-0"]
    assert joined.pairs.probability[0] == pytest.approx(score[0])


def test_window_and_threshold(tmp_path: Path) -> None:
    truth, score = _binary(np.random.default_rng(5), 400, 1.0)
    captures = _capture(tmp_path / "capture", truth, score)
    _post_truth(tmp_path / "truth", truth)
    first_half = join([captures], tmp_path / "truth" / "ep", T0, T0 + 100, Attributes())
    assert first_half.counts.captured_records == 200
    strict = join([captures], tmp_path / "truth" / "ep", None, None, Attributes(threshold=0.9))
    assert strict.pairs.predicted.count("1") < sum(s >= 0.5 for s in score) * 0.9
    by_member = join(
        [captures],
        tmp_path / "truth" / "ep",
        None,
        None,
        Attributes(inference="predictions", probability="probabilities"),
    )
    assert by_member.pairs.probability[:5] == pytest.approx(list(score[:5]))


def _constraints(tmp_path: Path) -> dict[str, object]:
    truth, score = _binary(np.random.default_rng(6), 5_000, 1.0)
    table = tmp_path / "validation.csv"
    table.write_text(
        "label,prediction,probability\n"
        + "".join(f"{t},{int(s >= 0.5)},{s}\n" for t, s in zip(truth, score, strict=True))
    )
    statistics, constraints = quality.baseline(
        table, "BinaryClassification", "label", "prediction", "probability"
    )
    assert statistics["dataset"]["item_count"] == 5_000
    return constraints


def test_model_quality_run(tmp_path: Path) -> None:
    constraints = _constraints(tmp_path)
    rng = np.random.default_rng(7)

    truth, score = _binary(rng, 2_000, 1.0)  # as good as the baseline
    good = _capture(tmp_path / "good", truth, score)
    _post_truth(tmp_path / "good-truth", truth)
    result = run.model_quality(
        "BinaryClassification", constraints, [good], tmp_path / "good-truth" / "ep",
        None, None, Attributes(), tmp_path / "out-good",
    )  # fmt: skip
    assert result.status == "Completed", result.violations
    assert result.statistics["dataset"]["item_count"] == 2_000 - 40

    truth, score = _binary(rng, 2_000, 4.0)  # a much noisier model
    bad = _capture(tmp_path / "bad", truth, score)
    _post_truth(tmp_path / "bad-truth", truth)
    result = run.model_quality(
        "BinaryClassification", constraints, [bad], tmp_path / "bad-truth" / "ep",
        None, None, Attributes(), tmp_path / "out-bad",
    )  # fmt: skip
    assert result.status == "CompletedWithViolations"
    flagged = {v["metric_name"] for v in result.violations["violations"]}
    assert {"accuracy", "auc"} <= flagged
    saved = json.loads((tmp_path / "out-bad" / "constraint_violations.json").read_text())
    assert saved == result.violations
    html = (tmp_path / "out-bad" / "report.html").read_text()
    assert "CompletedWithViolations" in html and 'id="confusion"' in html


def test_not_enough_ground_truth(tmp_path: Path) -> None:
    constraints = _constraints(tmp_path)
    truth, score = _binary(np.random.default_rng(8), 1_000, 4.0)
    captures = _capture(tmp_path / "capture", truth, score)
    _post_truth(tmp_path / "truth", truth, every=20)  # 50 labels, 10 of failed calls
    result = run.model_quality(
        "BinaryClassification", constraints, [captures], tmp_path / "truth" / "ep",
        None, None, Attributes(), tmp_path / "out",
    )  # fmt: skip
    assert result.status == run.INSUFFICIENT
    assert result.violations == {"violations": []}
    assert result.report["metrics"] == {}
    assert "40 rows joined, 100 needed" in result.report["reason"]
    assert "no metric is judged" in (tmp_path / "out" / "report.html").read_text()


def test_bad_constraints_are_refused(tmp_path: Path) -> None:
    from sluice.errors import ValidationError

    with pytest.raises(ValidationError, match="no 'regression_constraints'"):
        run.model_quality("Regression", {"version": 0.0}, [], tmp_path, None, None, Attributes())
    bad = {"regression_constraints": {"mae": {"threshold": "high", "comparison_operator": "x"}}}
    with pytest.raises(ValidationError, match="needs a numeric threshold"):
        run.model_quality("Regression", bad, [], tmp_path, None, None, Attributes())


def test_cli_baseline_and_run_now(tmp_path: Path) -> None:
    truth, score = _binary(np.random.default_rng(9), 3_000, 1.0)
    table = tmp_path / "validation.csv"
    table.write_text("y,p\n" + "".join(f"{t},{s}\n" for t, s in zip(truth, score, strict=True)))
    runner = CliRunner()
    made = runner.invoke(
        cli,
        ["monitor", "baseline", "--data", str(table), "--out", str(tmp_path / "base"),
         "--problem-type", "BinaryClassification", "--label", "y", "--probability", "p",
         "--threshold", "0.5"],
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    assert "3000 rows, BinaryClassification" in made.output
    truth, score = _binary(np.random.default_rng(10), 600, 4.0)
    captures = _capture(tmp_path / "capture", truth, score)
    _post_truth(tmp_path / "truth", truth)
    args = ["monitor", "run-now", "--baseline", str(tmp_path / "base"),
            "--capture", str(captures), "--problem-type", "BinaryClassification",
            "--ground-truth", str(tmp_path / "truth" / "ep"),
            "--out", str(tmp_path / "out")]  # fmt: skip
    checked = runner.invoke(cli, args)
    assert checked.exit_code == 1, checked.output
    assert "CompletedWithViolations" in checked.output and "violation" in checked.output
    waiting = runner.invoke(cli, [*args, "--min-rows", "1000"])
    assert waiting.exit_code == 2, waiting.output
    assert "not enough ground truth yet" in waiting.output
    missing = runner.invoke(cli, args[:-4])
    assert missing.exit_code == 1 and "needs --ground-truth" in missing.output
