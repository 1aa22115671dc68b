"""The data-quality check on data with known answers: capture files written by the
gateway's own record writer, a baseline from a training file, injected drifts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats
from scipy.spatial import distance

from sluice.monitor import reference as references
from sluice.monitor import run
from sluice.monitor.baseline import baseline
from sluice.monitor.check import CheckResult
from tests.monitor.data import (
    T0,
    make_table,
    write_capture,
    write_training,
)


@pytest.fixture(scope="module")
def baseline_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("baseline")
    training = make_table(np.random.default_rng(0), 40_000)
    write_training(folder / "train.csv", training)
    statistics, constraints = baseline(folder / "train.csv")
    (folder / "statistics.json").write_text(json.dumps(statistics))
    (folder / "constraints.json").write_text(json.dumps(constraints))
    np.save(folder / "x4.npy", training["x4"])
    return folder


def _check(baseline_dir: Path, tmp: Path, table: dict[str, np.ndarray], **kw: Any) -> CheckResult:
    variant = write_capture(tmp / "capture", table, **kw)
    return run.data_quality(references.load(baseline_dir), [variant], None, None)


def _kinds(result: CheckResult) -> set[tuple[str, str]]:
    return {(v["feature_name"], v["constraint_check_type"]) for v in result.report["violations"]}


def _feature(result: CheckResult, name: str) -> dict[str, Any]:
    return next(f for f in result.report["features"] if f["name"] == name)


def test_a_resample_of_the_baseline_raises_no_violation(baseline_dir: Path, tmp_path: Path) -> None:
    result = _check(baseline_dir, tmp_path, make_table(np.random.default_rng(1), 5000))
    assert result.status == "Completed", result.report["violations"]
    assert result.report["counts"]["rows"] == 5000
    assert result.report["multivariate"]["status"] == "ok"
    assert not result.report["multivariate"]["drift"]


def test_the_false_alarm_rate_stays_under_the_documented_bound(baseline_dir: Path) -> None:
    """Undrifted windows of several sizes, checked straight from memory: the share of
    feature checks flagged stays within the documented 0.3 % per feature and run."""
    from sluice.monitor.capture import WindowCounts
    from sluice.monitor.check import check

    loaded = references.load(baseline_dir)
    rng = np.random.default_rng(7)
    flagged = checks = 0
    for size in (50, 200, 1000, 5000) * 10:
        table = make_table(rng, size)
        import pyarrow as pa

        block = {
            name: pa.array(values.tolist(), pa.string() if name == "colour" else pa.float64())
            for name, values in table.items()
        }
        counts = WindowCounts(rows=size)
        result = check(loaded, iter([block]), counts)
        flagged += sum(
            v["constraint_check_type"] in ("baseline_drift_check", "multivariate_drift_check")
            for v in result.report["violations"]
        )
        checks += len(loaded.names) + 1
    assert flagged / checks <= 0.003, flagged


def test_a_quarter_sigma_shift_passes_ks_but_not_wasserstein(
    baseline_dir: Path, tmp_path: Path
) -> None:
    result = _check(
        baseline_dir, tmp_path, make_table(np.random.default_rng(2), 20_000, x3_shift=0.25)
    )
    x3 = _feature(result, "x3")["drift"]
    assert x3["ks"] < 0.1  # SageMaker's default distance would not see it
    assert x3["psi"] < 0.1
    assert x3["wasserstein_normed"] == pytest.approx(0.25, abs=0.03)
    assert x3["flagged"] and "Wasserstein" in x3["by"][0]
    assert _kinds(result) == {("x3", "baseline_drift_check")}


def test_a_wider_spread_is_drift(baseline_dir: Path, tmp_path: Path) -> None:
    result = _check(
        baseline_dir, tmp_path, make_table(np.random.default_rng(3), 5000, x4_scale=1.6)
    )
    assert ("x4", "baseline_drift_check") in _kinds(result)
    assert not _feature(result, "x1")["drift"]["flagged"]


def test_a_new_category_is_caught_twice(baseline_dir: Path, tmp_path: Path) -> None:
    result = _check(
        baseline_dir, tmp_path, make_table(np.random.default_rng(4), 3000, new_colour=0.2)
    )
    kinds = _kinds(result)
    assert ("colour", "categorical_values_check") in kinds
    assert ("colour", "baseline_drift_check") in kinds
    colour = _feature(result, "colour")
    assert colour["unknown_values"] == ["purple"]
    assert colour["unknown_share"] == pytest.approx(0.2, abs=0.03)


def test_a_rising_missing_share_breaks_completeness(baseline_dir: Path, tmp_path: Path) -> None:
    result = _check(
        baseline_dir, tmp_path, make_table(np.random.default_rng(5), 3000, x3_missing=0.4)
    )
    assert ("x3", "completeness_check") in _kinds(result)
    assert _feature(result, "x3")["completeness"] == pytest.approx(0.6, abs=0.03)


def test_a_broken_correlation_only_the_multivariate_check_sees(
    baseline_dir: Path, tmp_path: Path
) -> None:
    result = _check(baseline_dir, tmp_path, make_table(np.random.default_rng(6), 5000, rho=0.0))
    assert {k for _, k in _kinds(result)} == {"multivariate_drift_check"}
    mv = result.report["multivariate"]
    assert mv["drift"] and mv["relative_change"] > 0.5
    for name in ("x1", "x2"):
        assert not _feature(result, name)["drift"]["flagged"]


def test_distances_agree_with_scipy(baseline_dir: Path, tmp_path: Path) -> None:
    current = make_table(np.random.default_rng(8), 4000, x4_scale=1.2)
    result = _check(baseline_dir, tmp_path, current)
    training = np.load(baseline_dir / "x4.npy")
    x4 = _feature(result, "x4")
    exact = stats.ks_2samp(training, current["x4"])
    assert x4["drift"]["ks"] == pytest.approx(exact.statistic, abs=1e-3)
    wasserstein = stats.wasserstein_distance(training, current["x4"])
    assert x4["drift"]["wasserstein"] == pytest.approx(wasserstein, rel=0.02)
    assert x4["current"]["mean"] == pytest.approx(current["x4"].mean())
    assert x4["current"]["std"] == pytest.approx(current["x4"].std())
    assert x4["current"]["max"] == current["x4"].max()

    colour = _feature(result, "colour")["drift"]
    reference = json.loads((baseline_dir / "statistics.json").read_text())
    buckets = next(f for f in reference["features"] if f["name"] == "colour")
    categorical = buckets["string_statistics"]["distribution"]["categorical"]
    ref_counts = {b["value"]: b["count"] for b in categorical["buckets"]}
    names = sorted(ref_counts)
    ref = np.array([ref_counts[n] for n in names])
    cur = np.array([(current["colour"] == n).sum() for n in names])
    chi2 = stats.chi2_contingency(np.vstack([ref, cur]), correction=False)
    assert colour["chi_square"] == pytest.approx(chi2.statistic)
    assert colour["chi_square_p_value"] == pytest.approx(chi2.pvalue)
    js = distance.jensenshannon(ref / ref.sum(), cur / cur.sum(), base=2)
    assert colour["jensen_shannon"] == pytest.approx(js)
    assert colour["linf"] == pytest.approx(np.abs(ref / ref.sum() - cur / cur.sum()).max())


def test_malformed_lines_and_odd_inputs_are_counted_not_fatal(
    baseline_dir: Path, tmp_path: Path
) -> None:
    table = make_table(np.random.default_rng(9), 400)
    variant = write_capture(tmp_path / "capture", table)
    path = next(variant.rglob("*.jsonl"))
    good = path.read_text().splitlines()
    odd = [
        "this is not json",
        good[0][: len(good[0]) // 2],  # a line cut short
        '{"captureData": {}, "eventMetadata": {"inferenceTime": "2026-09-21T14:13:21.000Z"}}',
        good[1]
        .replace('"data":"', '"data":"1,2,')
        .replace(",red", ",red")
        .replace('"encoding":"CSV"', '"encoding":"CSV"'),  # two values too many
    ]
    path.write_text("\n".join(good[:200] + odd + good[200:]) + "\n" + good[2][:40])  # torn tail
    result = run.data_quality(references.load(baseline_dir), [variant], None, None)
    counts = result.report["counts"]
    assert counts["malformed_lines"] == 2
    assert counts["without_input"] == 1
    assert counts["long_rows"] == 1
    assert counts["rows"] == 400
    assert ("", "extra_column_check") in _kinds(result)


def test_text_in_a_numeric_column_is_a_type_violation(baseline_dir: Path, tmp_path: Path) -> None:
    table = make_table(np.random.default_rng(10), 500)
    table["x4"] = table["x4"].astype(object)
    table["x4"][:100] = "oops"
    result = _check(baseline_dir, tmp_path, table)
    x4 = _feature(result, "x4")
    assert x4["mismatched"] == 100
    assert ("x4", "data_type_check") in _kinds(result)
    age = _feature(result, "age")
    assert age["type_mismatch_share"] == 0


def test_json_inputs_by_name(baseline_dir: Path, tmp_path: Path) -> None:
    table = make_table(np.random.default_rng(11), 600)
    table["extra"] = np.arange(600).astype(float)
    del table["x4"]
    result = _check(baseline_dir, tmp_path, table, content_type="application/json")
    counts = result.report["counts"]
    assert counts["rows"] == 600
    assert counts["absent_columns"] == {"x4": 600}
    assert counts["extra_columns"] == {"extra": 600}
    kinds = _kinds(result)
    assert ("x4", "missing_column_check") in kinds
    assert ("extra", "extra_column_check") in kinds
    assert _feature(result, "x1")["present"] == 600


def test_the_window_limits_what_is_read(baseline_dir: Path, tmp_path: Path) -> None:
    table = make_table(np.random.default_rng(12), 7200)
    variant = write_capture(tmp_path / "capture", table, step=1.0)  # two hours of records
    loaded = references.load(baseline_dir)
    whole = run.data_quality(loaded, [variant], None, None)
    part = run.data_quality(loaded, [variant], T0 + 600, T0 + 4200)
    assert whole.report["counts"]["rows"] == 7200
    assert part.report["counts"]["rows"] == 3600
    assert part.report["counts"]["records"] == 3600


def test_overrides_and_the_simple_method(baseline_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "edited"
    folder.mkdir()
    (folder / "statistics.json").write_text((baseline_dir / "statistics.json").read_text())
    constraints = json.loads((baseline_dir / "constraints.json").read_text())
    for feature in constraints["features"]:
        if feature["name"] == "x3":
            feature["monitoringConfigOverrides"] = {"comparison_threshold": 0.05}
    config = constraints["monitoring_config"]
    config["distribution_constraints"]["comparison_method"] = "Simple"
    config["distribution_constraints"]["wasserstein_threshold"] = "Disabled"
    (folder / "constraints.json").write_text(json.dumps(constraints))
    table = make_table(np.random.default_rng(13), 20_000, x3_shift=0.25)
    result = run.data_quality(
        references.load(folder), [write_capture(tmp_path / "c", table)], None, None
    )
    x3 = _feature(result, "x3")["drift"]
    assert x3["flagged"] and x3["by"][0].startswith("KS distance")
    drifted = {f for f, kind in _kinds(result) if kind == "baseline_drift_check"}
    assert drifted == {"x3"}


def test_the_files_and_the_command(baseline_dir: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from sluice.cli.main import cli

    variant = write_capture(
        tmp_path / "capture", make_table(np.random.default_rng(14), 2000, new_colour=0.3)
    )
    out = tmp_path / "out"
    args = ["monitor", "run-now", "--baseline", str(baseline_dir), "--capture", str(variant)]
    outcome = CliRunner().invoke(cli, [*args, "--out", str(out)])
    assert outcome.exit_code == 1, outcome.output
    assert "CompletedWithViolations" in outcome.output
    assert "categorical_values_check" in outcome.output
    violations = json.loads((out / "constraint_violations.json").read_text())
    assert {v["constraint_check_type"] for v in violations["violations"]} >= {
        "categorical_values_check"
    }
    statistics = json.loads((out / "statistics.json").read_text())
    assert statistics["dataset"]["item_count"] == 2000
    page = (out / "report.html").read_text()
    assert "<svg" in page and "purple" in page and "<script" not in page
    clean = write_capture(tmp_path / "clean", make_table(np.random.default_rng(15), 2000))
    outcome = CliRunner().invoke(
        cli,
        ["monitor", "run-now", "--baseline", str(baseline_dir), "--capture", str(clean),
         "--out", str(tmp_path / "o2"), "--start", "2026-09-21T14:00:00Z", "--end", "-PT0S"],
    )  # fmt: skip
    assert outcome.exit_code == 0, outcome.output


def test_base64_and_json_lines_inputs(baseline_dir: Path, tmp_path: Path) -> None:
    import base64

    table = make_table(np.random.default_rng(16), 300)
    variant = write_capture(tmp_path / "capture", table)
    path = next(variant.rglob("*.jsonl"))
    records = [json.loads(line) for line in path.read_text().splitlines()]
    names = list(table)
    for i, record in enumerate(records):
        payload = record["captureData"]["endpointInput"]
        row = payload["data"].split(",")
        if i % 3 == 0:  # the CSV row, base64-encoded
            payload["data"] = base64.b64encode(payload["data"].encode()).decode()
            payload["encoding"] = "BASE64"
        elif i % 3 == 1:  # one JSON object per line
            payload["observedContentType"] = "application/jsonlines"
            payload["data"] = json.dumps(dict(zip(names, row, strict=True)))
            payload["encoding"] = "JSON"
    records[3]["captureData"]["endpointInput"]["data"] = "%%% not base64 %%%"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    result = run.data_quality(references.load(baseline_dir), [variant], None, None)
    counts = result.report["counts"]
    assert counts["rows"] == 299
    assert counts["unreadable_inputs"] == 1
    assert counts["short_rows"] == 0
    assert counts["content_types"] == {"text/csv": 100, "application/jsonlines": 100}
    assert _feature(result, "colour")["present"] == 299
