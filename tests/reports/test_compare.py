"""Reports over capture written in the real formats, checked against figures computed here
by hand from the same files (plain json, independent of the report's reader)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sluice.reports import synthetic
from sluice.reports.compare import Source, ab_report, shadow_report


def _write(tmp_path: Path, **scenario: Any) -> Source:
    synthetic.write(synthetic.Scenario(**scenario), tmp_path / "capture", tmp_path / "truth")
    return Source("ep", tmp_path / "capture", tmp_path / "truth")


def _by_hand(source: Source, variant: str) -> dict[str, Any]:
    """inference id -> predicted label, from the raw capture files."""
    out = {}
    for path in (source.capture_root / "ep" / variant).rglob("*.jsonl"):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            output = json.loads(record["captureData"]["endpointOutput"]["data"])
            out[record["eventMetadata"]["inferenceId"]] = output["predictions"][0]
    return out


def _truth_by_hand(source: Source) -> dict[str, str]:
    out = {}
    assert source.ground_truth_root is not None
    for path in source.ground_truth_root.rglob("*.jsonl"):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            out[record["eventMetadata"]["eventId"]] = record["groundTruthData"]["data"]
    return out


def test_clearly_better_candidate(tmp_path: Path) -> None:
    source = _write(
        tmp_path, requests=3000, baseline_accuracy=0.80, candidate_accuracy=0.95, sampling=0.6
    )
    report = shadow_report(source, "A", ["shadow"])
    c = report["comparisons"][0]
    a, b, truth = _by_hand(source, "A"), _by_hand(source, "shadow"), _truth_by_hand(source)
    paired = [k for k in b if k in a]
    assert c["paired_rows"] == len(paired)
    assert c["agreement"]["agreeing_rows"] == sum(a[k] == b[k] for k in paired)
    quality = c["quality"]
    assert quality["labelled_rows"] == len(paired)
    right_a = sum(str(a[k]) == truth[k] for k in paired)
    right_b = sum(str(b[k]) == truth[k] for k in paired)
    assert quality["baseline"]["accuracy"]["value"] == pytest.approx(
        right_a / len(paired), abs=1e-6
    )
    assert quality["candidate"]["accuracy"]["value"] == pytest.approx(
        right_b / len(paired), abs=1e-6
    )
    assert quality["test"]["only_candidate_right"] == sum(
        str(b[k]) == truth[k] and str(a[k]) != truth[k] for k in paired
    )
    assert c["verdict"]["quality"] == "better"
    assert c["verdict"]["latency"] == "no detectable difference"
    assert report["variants"]["shadow"]["share"] == pytest.approx(0.6, abs=0.03)
    assert report["variants"]["A"]["requests"] == 3000
    # The confusion table holds every paired row, baseline by row, candidate by column.
    assert sum(map(sum, c["agreement"]["confusion"]["counts"])) == len(paired)
    assert all(d["baseline"] != d["candidate"] for d in c["disagreements"])
    assert len(c["disagreements"]) == 10 and c["disagreements"][0]["input"].startswith("[[")


def test_exactly_as_good_candidate_shows_no_difference(tmp_path: Path) -> None:
    source = _write(tmp_path, requests=3000, baseline_accuracy=0.9, candidate_accuracy=0.9)
    c = shadow_report(source, "A", ["shadow"])["comparisons"][0]
    assert c["verdict"]["quality"] == "no detectable difference"
    assert c["verdict"]["latency"] == "no detectable difference"
    assert "could detect" in c["verdict"]["summary"]
    assert c["quality"]["mde"] > 0


def test_faster_but_worse_candidate(tmp_path: Path) -> None:
    source = _write(
        tmp_path,
        requests=3000,
        baseline_accuracy=0.92,
        candidate_accuracy=0.80,
        baseline_latency_ms=4.0,
        candidate_latency_ms=2.0,
        probabilities=True,
    )
    c = shadow_report(source, "A", ["shadow"])["comparisons"][0]
    assert (c["verdict"]["quality"], c["verdict"]["latency"]) == ("worse", "better")
    assert c["latency"]["ratio"]["value"] == pytest.approx(0.5, abs=0.03)
    assert c["agreement"]["top_k"]["k"] == 3 and c["agreement"]["top_k"]["rows"] == 3000
    assert c["disagreements"][0]["score"] > 0.5  # confident disagreements come first


def test_missing_ground_truth_is_reported_as_missing(tmp_path: Path) -> None:
    source = _write(tmp_path, requests=500, labelled=0.0)
    c = shadow_report(source, "A", ["shadow"])["comparisons"][0]
    assert c["quality"] == {
        "labelled_rows": 0,
        "metric": "accuracy",
        "status": "no ground truth yet",
    }
    assert c["verdict"]["quality"] == "unknown"
    assert "no ground truth yet" in c["verdict"]["summary"]
    few = _write(tmp_path / "few", requests=500, labelled=0.02)
    c = shadow_report(few, "A", ["shadow"])["comparisons"][0]
    assert c["quality"]["status"].startswith("not enough ground truth")
    assert c["verdict"]["quality"] == "unknown"


def test_a_later_label_replaces_an_earlier_one(tmp_path: Path) -> None:
    source = _write(tmp_path, requests=200)
    truth = _truth_by_hand(source)
    first = _by_hand(source, "A")
    # Relabel every request as what the baseline said: its accuracy becomes 1.
    assert source.ground_truth_root is not None
    later = source.ground_truth_root / "ep" / "2099" / "01" / "01" / "00"
    later.mkdir(parents=True)
    (later / "fix.jsonl").write_text(
        "".join(
            json.dumps(
                {
                    "groundTruthData": {"data": str(first[k]), "encoding": "CSV"},
                    "eventMetadata": {"eventId": k},
                    "eventVersion": "0",
                }
            )
            + "\n"
            for k in truth
        )
    )
    c = shadow_report(source, "A", ["shadow"])["comparisons"][0]
    assert c["quality"]["baseline"]["accuracy"]["value"] == 1.0


def test_regression_pair(tmp_path: Path) -> None:
    source = _write(
        tmp_path, requests=2000, regression=True, baseline_accuracy=0.8, candidate_accuracy=0.9
    )
    report = shadow_report(source, "A", ["shadow"])
    assert report["problem_type"] == "regression"
    c = report["comparisons"][0]
    a, b = _by_hand(source, "A"), _by_hand(source, "shadow")
    diffs = [b[k] - a[k] for k in a]
    assert c["differences"]["mean"] == pytest.approx(sum(diffs) / len(diffs), abs=1e-4)
    assert c["differences"]["max_abs"] == pytest.approx(max(map(abs, diffs)), abs=1e-4)
    assert c["quality"]["metric"] == "mae"
    assert c["verdict"]["quality"] == "better"  # smaller errors
    assert c["disagreements"][0]["score"] == pytest.approx(max(map(abs, diffs)), abs=1e-4)


def test_ab_report_with_outcomes(tmp_path: Path) -> None:
    # Two production variants: write each as its own "baseline" capture.
    synthetic.write(
        synthetic.Scenario(requests=2000, baseline_accuracy=0.85, sampling=0.0, seed=1),
        tmp_path / "capture",
        tmp_path / "truth",
        baseline="A",
    )
    synthetic.write(
        synthetic.Scenario(requests=2000, baseline_accuracy=0.95, sampling=0.0, seed=2),
        tmp_path / "capture-b",
        None,
        baseline="B",
    )
    (tmp_path / "capture-b" / "ep" / "B").rename(tmp_path / "capture" / "ep" / "B")
    # Both variants use ids "req-<i>": the ground truth (written for A) labels both.
    outcomes = tmp_path / "outcomes" / "ep" / "2026" / "01" / "01" / "00"
    outcomes.mkdir(parents=True)
    with (outcomes / "o.jsonl").open("w") as f:
        for i in range(0, 2000, 10):  # A converts 10 % of requests
            f.write(
                json.dumps(
                    {
                        "outcomeData": {"name": "conversion", "value": 1},
                        "eventMetadata": {"eventId": f"req-{i}"},
                        "eventVersion": "0",
                    }
                )
                + "\n"
            )
    source = Source("ep", tmp_path / "capture", tmp_path / "truth", tmp_path / "outcomes")
    report = ab_report(source, "A", ["B"])
    c = report["comparisons"][0]
    assert report["variants"]["A"]["requests"] == report["variants"]["B"]["requests"] == 2000
    assert report["variants"]["A"]["share"] == pytest.approx(0.5)
    conversion = c["outcomes"]["conversion"]
    assert conversion["kind"] == "rate"
    assert conversion["baseline"]["rate"]["value"] == pytest.approx(0.1)
    assert "always_valid_p_value" in conversion["test"]
    assert c["quality"]["status"] == "ok"
