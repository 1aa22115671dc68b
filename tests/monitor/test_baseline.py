from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sluice.errors import ValidationError
from sluice.monitor import baseline as bl
from sluice.monitor import tables
from sluice.monitor.kll import KllSketch


def _write_csv(path: Path, rows: int = 5000) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(2)
    data = {
        "age": rng.integers(18, 90, rows).astype(float),
        "income": rng.lognormal(10, 1, rows),
        "delta": rng.normal(size=rows),
    }
    colours = rng.choice(["red", "green", "blue"], rows, p=[0.5, 0.3, 0.2])
    missing = rng.random(rows) < 0.1
    with path.open("w") as f:
        f.write("age,income,delta,colour\n")
        for i in range(rows):
            income = "" if missing[i] else repr(float(data["income"][i]))
            delta = repr(float(data["delta"][i]))
            f.write(f"{int(data['age'][i])},{income},{delta},{colours[i]}\n")
    data["income"] = data["income"][~missing]
    data["colour"] = colours  # type: ignore[assignment]
    return data


def _feature(doc: dict[str, object], name: str) -> dict[str, object]:
    return next(f for f in doc["features"] if f["name"] == name)  # type: ignore[attr-defined, index]


def test_statistics_agree_with_numpy_and_are_sketches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tables, "BLOCK_BYTES", 16_384)  # several blocks
    data = _write_csv(tmp_path / "train.csv")
    statistics, constraints = bl.baseline(tmp_path / "train.csv")
    assert statistics["dataset"]["item_count"] == 5000
    age = _feature(statistics, "age")
    assert age["inferred_type"] == "Integral"
    income = _feature(statistics, "income")["numerical_statistics"]
    assert _feature(statistics, "income")["inferred_type"] == "Fractional"
    values = data["income"]
    assert income["common"] == {"num_present": len(values), "num_missing": 5000 - len(values)}
    assert income["mean"] == pytest.approx(values.mean())
    assert income["std_dev"] == pytest.approx(values.std())
    assert (income["min"], income["max"]) == (
        pytest.approx(values.min()),
        pytest.approx(values.max()),
    )
    kll = income["distribution"]["kll"]
    counts, edges = np.histogram(values, bins=10)
    assert [b["count"] for b in kll["buckets"]] == counts.tolist()
    assert kll["buckets"][0]["lower_bound"] == pytest.approx(edges[0])
    sketch = KllSketch.from_dict(kll["sketch"])
    points = np.quantile(values, np.linspace(0, 1, 101))
    exact = np.searchsorted(np.sort(values), points, side="right") / len(values)
    assert np.max(np.abs(sketch.cdf(points) - exact)) < 1e-3
    colour = _feature(statistics, "colour")["string_statistics"]
    assert colour["distinct_count"] == 3
    buckets = {b["value"]: b["count"] for b in colour["distribution"]["categorical"]["buckets"]}
    assert buckets == {c: int((data["colour"] == c).sum()) for c in ("red", "green", "blue")}

    assert _feature(constraints, "income")["completeness"] == pytest.approx(len(values) / 5000)
    assert _feature(constraints, "age")["num_constraints"] == {
        "is_non_negative": True,
        "lower_bound": data["age"].min(),
        "upper_bound": data["age"].max(),
    }
    assert _feature(constraints, "delta")["num_constraints"]["is_non_negative"] is False
    assert _feature(constraints, "colour")["string_constraints"] == {
        "domains": ["blue", "green", "red"]
    }
    assert (
        constraints["monitoring_config"]["distribution_constraints"]["comparison_threshold"] == 0.1
    )
    json.dumps(statistics), json.dumps(constraints)  # plain JSON


def test_json_lines_schema_and_bad_files(tmp_path: Path) -> None:
    lines = tmp_path / "train.jsonl"
    lines.write_text('{"x": 1, "code": "7"}\n{"x": 2.5, "code": "8"}\n{"x": null, "code": "9"}\n')
    statistics, _ = bl.baseline(lines, {"code": "String"})
    assert _feature(statistics, "x")["inferred_type"] == "Fractional"
    assert _feature(statistics, "x")["numerical_statistics"]["common"]["num_missing"] == 1
    assert _feature(statistics, "code")["inferred_type"] == "String"  # digits, but told text
    with pytest.raises(ValidationError, match="holds text"):
        (tmp_path / "t.csv").write_text("a\n1\nx\n")
        bl.baseline(tmp_path / "t.csv", {"a": "Fractional"})
    (tmp_path / "ragged.csv").write_text("a,b\n1,2\n3\n")
    with pytest.raises(ValidationError, match="Expected 2 columns, got 1"):
        bl.baseline(tmp_path / "ragged.csv")
    with pytest.raises(ValidationError, match="does not exist"):
        bl.baseline(tmp_path / "missing.csv")


def test_the_command_writes_both_files(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from sluice.cli.main import cli

    _write_csv(tmp_path / "train.csv", rows=300)
    out = tmp_path / "baseline"
    result = CliRunner().invoke(
        cli, ["monitor", "baseline", "--data", str(tmp_path / "train.csv"), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "300 rows, 4 features" in result.output
    statistics = json.loads((out / "statistics.json").read_text())
    constraints = json.loads((out / "constraints.json").read_text())
    assert [f["name"] for f in statistics["features"]] == ["age", "income", "delta", "colour"]
    assert len(constraints["features"]) == 4


def test_parquet_gives_the_same_statistics_as_csv(tmp_path: Path) -> None:
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    data = _write_csv(tmp_path / "train.csv", rows=2000)
    table = pcsv.read_csv(tmp_path / "train.csv")
    pq.write_table(table, tmp_path / "train.parquet", row_group_size=300)
    from_csv, constraints_csv = bl.baseline(tmp_path / "train.csv")
    from_parquet, constraints_parquet = bl.baseline(tmp_path / "train.parquet")
    assert constraints_parquet == constraints_csv
    for name in ("age", "income", "delta"):
        a = _feature(from_csv, name)["numerical_statistics"]
        b = _feature(from_parquet, name)["numerical_statistics"]
        assert a["common"] == b["common"]
        assert a["mean"] == pytest.approx(b["mean"])
        assert a["distribution"]["kll"]["buckets"] == b["distribution"]["kll"]["buckets"]
    assert _feature(from_parquet, "colour")["string_statistics"]["distinct_count"] == 3
    assert len(data["colour"]) == 2000


def test_high_cardinality_text_stays_bounded(tmp_path: Path) -> None:
    rows = 60_000
    with (tmp_path / "ids.csv").open("w") as f:
        f.write("user,plan\n")
        for i in range(rows):
            f.write(f"u{i},{'pro' if i % 3 else 'free'}\n")
    statistics, constraints = bl.baseline(tmp_path / "ids.csv")
    user = _feature(statistics, "user")["string_statistics"]
    buckets = user["distribution"]["categorical"]["buckets"]
    assert len(buckets) <= 10_001  # bounded, with the rest folded into one bucket
    assert buckets[-1]["value"] == "__other__"
    assert sum(b["count"] for b in buckets) == rows
    assert user["distinct_count"] == pytest.approx(rows, rel=0.05)  # estimated from hashes
    assert "string_constraints" not in _feature(constraints, "user")
    assert _feature(constraints, "plan")["string_constraints"] == {"domains": ["free", "pro"]}


def test_the_multivariate_model_is_the_correlation_pca(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    rows = 20_000
    a = rng.normal(size=rows)
    b = 0.9 * a + np.sqrt(1 - 0.81) * rng.normal(size=rows)
    c = rng.normal(5, 2, size=rows)
    with (tmp_path / "t.csv").open("w") as f:
        f.write("a,b,c\n")
        f.writelines(
            f"{x},{y},{z}\n" for x, y, z in zip(a.tolist(), b.tolist(), c.tolist(), strict=True)
        )
    statistics, _ = bl.baseline(tmp_path / "t.csv")
    model = statistics["multivariate"]
    assert model["features"] == ["a", "b", "c"]
    standard = np.column_stack([a, b, c])
    standard = (standard - standard.mean(0)) / standard.std(0)
    values = np.sort(np.linalg.eigvalsh(np.corrcoef(standard.T)))[::-1]
    kept = len(model["components"])
    assert kept == 2  # 1.9 + 1.0 of 3 explains more than 90 %
    assert model["reference_error"] == pytest.approx(values[kept:].sum(), rel=1e-6)
    errors = (standard**2).sum(1) - ((standard @ np.array(model["components"]).T) ** 2).sum(1)
    assert errors.mean() == pytest.approx(model["reference_error"], rel=1e-6)
