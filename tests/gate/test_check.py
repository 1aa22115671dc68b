from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import f1_score, log_loss, r2_score, roc_auc_score

from sluice.errors import ValidationError
from sluice.gate.check import Limits, judge
from sluice.gate.data import ValidationSet, load
from sluice.gate.metrics import Answers, score
from sluice.gate.outputs import junit_xml, markdown

ROWS = 100


def _data(problem: str = "classification") -> ValidationSet:
    labels = np.arange(ROWS) % 2
    features = np.column_stack([labels, np.arange(ROWS)]).astype(float)
    return ValidationSet(features, labels, ("x0", "rank"), problem)


def _answers(predictions: np.ndarray, latency_ms: float = 1.0) -> Answers:
    rng = np.random.default_rng(1)
    return Answers(predictions, None, latency_ms + rng.uniform(0, 0.1, len(predictions)))


def _flipped(count: int) -> np.ndarray:
    labels = _data().labels.copy()
    labels[:count] = 1 - labels[:count]
    return labels


def test_an_identical_candidate_passes_a_zero_drop_limit() -> None:
    data = _data()
    verdict = judge(data, _answers(data.labels), _answers(data.labels), Limits("accuracy", 0.0))
    accuracy = verdict.checks[0]
    assert (accuracy.name, accuracy.baseline, accuracy.candidate) == ("accuracy", 1.0, 1.0)
    assert (accuracy.drop, accuracy.drop_low, accuracy.drop_high) == (0.0, 0.0, 0.0)
    assert verdict.passed


def test_a_small_drop_fails_unless_told_to_fail_only_when_significant() -> None:
    data, baseline = _data(), _answers(_data().labels)
    candidate = _answers(_flipped(3))  # 3 of 100 rows wrong: 0.03 worse
    plain = judge(data, candidate, baseline, Limits("accuracy", 0.01))
    assert plain.checks[0].drop == pytest.approx(0.03)
    assert not plain.passed and [c.name for c in plain.failures] == ["accuracy"]
    lenient = judge(data, candidate, baseline, Limits("accuracy", 0.01, significant_only=True))
    low, high = lenient.checks[0].drop_low, lenient.checks[0].drop_high
    assert low <= 0.01 < 0.03 <= high  # 3 rows in 100 cannot show it beyond 0.01
    assert lenient.passed


def test_a_large_drop_fails_even_when_only_significance_counts() -> None:
    data = _data()
    verdict = judge(data, _answers(_flipped(30)), _answers(data.labels),
                    Limits("accuracy", 0.01, significant_only=True))  # fmt: skip
    assert verdict.checks[0].drop_low > 0.15 and not verdict.passed


def test_relative_limits_and_latency() -> None:
    data = _data()
    slow = _answers(data.labels, latency_ms=2.0)
    verdict = judge(data, slow, _answers(data.labels),
                    Limits("accuracy", 0.02, relative=True, max_latency_increase=0.2))  # fmt: skip
    latency = verdict.checks[-1]
    assert latency.name == "latency p50" and latency.drop == pytest.approx(1.0, abs=0.1)
    assert [c.name for c in verdict.failures] == ["latency p50"]
    assert verdict.checks[0].limit == pytest.approx(0.02)  # 2 % of a baseline of 1.0


def test_metrics_agree_with_scikit_learn() -> None:
    rng = np.random.default_rng(7)
    truth = rng.integers(0, 2, 500)
    proba = np.clip(truth * 0.6 + rng.uniform(0, 0.4, 500), 0.01, 0.99)
    answers = Answers((proba > 0.5).astype(int), np.column_stack([1 - proba, proba]), np.ones(500))
    rows, labels = np.arange(500), np.array([0, 1])
    assert score("f1_macro", truth, answers, rows, labels) == pytest.approx(
        f1_score(truth, answers.predictions, average="macro")
    )
    assert score("log_loss", truth, answers, rows, labels) == pytest.approx(
        log_loss(truth, answers.probabilities)
    )
    assert score("auc", truth, answers, rows, labels) == pytest.approx(roc_auc_score(truth, proba))
    y = rng.normal(size=500)
    guess = Answers(y + rng.normal(scale=0.3, size=500), None, np.ones(500))
    assert score("mae", y, guess, rows, labels) == pytest.approx(
        np.mean(np.abs(y - guess.predictions))
    )
    assert score("rmse", y, guess, rows, labels) == pytest.approx(
        np.sqrt(np.mean((y - guess.predictions) ** 2))
    )
    assert score("r2", y, guess, rows, labels) == pytest.approx(r2_score(y, guess.predictions))


def test_a_rise_in_error_is_a_drop_for_lower_is_better_metrics() -> None:
    y = np.linspace(0, 10, ROWS)
    data = ValidationSet(y[:, None], y, ("x",), "regression")
    worse = judge(data, _answers(y + 0.5), _answers(y + 0.1), Limits("mae", 0.1))
    mae = next(c for c in worse.checks if c.name == "mae")
    assert mae.drop == pytest.approx(0.4) and not worse.passed
    with pytest.raises(ValidationError, match="cannot be computed"):
        judge(data, _answers(y), _answers(y), Limits("accuracy", 0.1))


def test_junit_xml_and_markdown() -> None:
    data = _data()
    verdict = judge(data, _answers(_flipped(30)), _answers(data.labels), Limits("accuracy", 0.01))
    root = ET.fromstring(junit_xml(verdict, 1.5))
    assert root.tag == "testsuites" and root.get("failures") == "1"
    [suite] = root
    assert (suite.tag, suite.get("tests"), suite.get("failures"), suite.get("time")) == (
        "testsuite", str(len(verdict.checks)), "1", "1.500",
    )  # fmt: skip
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [c.name for c in verdict.checks]
    failure = cases[0].find("failure")
    assert failure is not None and "accuracy" in failure.get("message", "")
    assert all(c.get("classname") == "sluice.validate" for c in cases)
    summary = markdown(verdict)
    assert "**failed**" in summary and "| accuracy | 1.0000 | 0.7000 |" in summary


def test_validation_files_are_read_and_checked(tmp_path: Path) -> None:
    csv = tmp_path / "v.csv"
    csv.write_text("a,b,label\n1,2,cat\n3,4,dog\n")
    data = load(csv, "label")
    assert data.problem == "classification" and data.columns == ("a", "b")
    assert data.features.tolist() == [[1, 2], [3, 4]] and data.labels.tolist() == ["cat", "dog"]
    lines = tmp_path / "v.jsonl"
    lines.write_text('{"x": 1, "y": 0.5}\n{"x": 2, "y": 1.25}\n')
    assert load(lines, "y").problem == "regression"
    with pytest.raises(ValidationError, match="label column 'z' is not in"):
        load(csv, "z")
    (tmp_path / "bad.csv").write_text("a,label\nx,1\n")
    with pytest.raises(ValidationError, match="row 1 of bad.csv"):
        load(tmp_path / "bad.csv", "label")
    with pytest.raises(ValidationError, match="not numeric"):
        load(csv, "label", "regression")
