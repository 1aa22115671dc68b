"""The metric history on SQLite and PostgreSQL: periods merged, read back per any period
with percentiles, rolled up and pruned."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sluice.store.metric_repo import MetricRepository, Period, align, period_of, series
from sluice.store.repos import Repository

T0 = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
LATENCY = series("AWS/SageMaker", "ModelLatency", {"VariantName": "A", "EndpointName": "ep"})


@pytest.fixture
def metrics(repo: Repository) -> MetricRepository:
    return MetricRepository(repo.db)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_periods_of_one_series_merge_and_read_back_per_any_period(
    metrics: MetricRepository,
) -> None:
    assert LATENCY.dimensions == (("EndpointName", "ep"), ("VariantName", "A"))  # sorted
    first = period_of(LATENCY, at(3), 10, [1000.0, 2000.0, 3000.0], "Microseconds")
    again = period_of(LATENCY, at(7), 10, [4000.0], "Microseconds")  # the same period
    later = period_of(LATENCY, at(15), 10, [100.0] * 96, "Microseconds")
    assert first is not None and again is not None and later is not None
    metrics.add([first])
    metrics.add([again, later])  # merged into the stored period
    ten = metrics.datapoints(LATENCY, at(0), at(60), 10, percentiles=(50, 99))
    assert [(p.at, p.samples, p.total, p.minimum, p.maximum) for p in ten] == [
        (at(0), 4, 10000.0, 1000.0, 4000.0),
        (at(10), 96, 9600.0, 100.0, 100.0),
    ]
    assert ten[0].average == 2500.0 and ten[0].unit == "Microseconds"
    assert ten[0].percentiles[50] == pytest.approx(2000.0, rel=0.005)
    minute = metrics.datapoints(LATENCY, at(0), at(60), 60, percentiles=(50, 99))
    assert len(minute) == 1 and minute[0].samples == 100 and minute[0].maximum == 4000.0
    assert minute[0].percentiles[50] == pytest.approx(100.0, rel=0.005)
    assert minute[0].percentiles[99] == pytest.approx(3000.0, rel=0.005)
    assert metrics.datapoints(LATENCY, at(60), at(120), 60) == []


def test_values_not_all_positive_have_no_percentiles(metrics: MetricRepository) -> None:
    drift = series("sluice/custom", "Drift", {"EndpointName": "ep"})
    p = period_of(drift, at(0), 10, [-1.0, 2.0])
    assert p is not None and p.bins is None
    metrics.add([p])
    (point,) = metrics.datapoints(drift, at(0), at(10), 10, percentiles=(90,))
    assert point.minimum == -1.0 and point.percentiles == {90: None}


def test_series_are_listed_by_namespace_name_and_dimensions(metrics: MetricRepository) -> None:
    other = series("AWS/SageMaker", "Invocations", {"EndpointName": "ep", "VariantName": "B"})
    custom = series("mine", "Invocations", {})
    for s in (LATENCY, other, custom):
        metrics.add([Period(s, at(0), 10, 1, 1, 1, 1)])
    assert metrics.series("AWS/SageMaker") == [other, LATENCY]
    assert metrics.series(name="Invocations") == [other, custom]
    assert metrics.series(dimensions=[("VariantName", "A")]) == [LATENCY]
    assert metrics.series(dimensions=[("VariantName", None)]) == [other, LATENCY]


def test_old_periods_roll_up_to_minutes_then_go(metrics: MetricRepository) -> None:
    periods = [period_of(LATENCY, at(s), 10, [float(s + 1)]) for s in range(0, 120, 10)]
    metrics.add([p for p in periods if p is not None])
    assert metrics.roll_up(before=at(60)) == 6  # the first minute's six periods
    minutes = metrics.datapoints(LATENCY, at(0), at(120), 60)
    assert [(p.at, p.samples, p.minimum, p.maximum) for p in minutes] == [
        (at(0), 6, 1.0, 51.0),
        (at(60), 6, 61.0, 111.0),
    ]
    tens = metrics.datapoints(LATENCY, at(0), at(120), 10)
    assert [p.at for p in tens] == [at(0)] + [at(s) for s in range(60, 120, 10)]
    assert metrics.prune(before=at(60)) == 1
    assert [p.at for p in metrics.datapoints(LATENCY, at(0), at(120), 60)] == [at(60)]


def test_align_cuts_time_into_periods() -> None:
    assert align(at(59.9), 60) == at(0) and align(at(60), 60) == at(60)
    assert align(at(25), 10) == at(20)


def test_percentiles_read_from_a_table_or_sorted_agree(
    metrics: MetricRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    import random

    from sluice.store import metric_repo

    rng = random.Random(3)
    periods = [
        period_of(LATENCY, at(s), 10, [rng.lognormvariate(5, 2) for _ in range(30)])
        for s in range(0, 600, 10)
    ]
    metrics.add([p for p in periods if p is not None])
    wanted = (1, 50, 90, 99.9)
    table = metrics.datapoints(LATENCY, at(0), at(600), 60, wanted)
    monkeypatch.setattr(metric_repo, "DENSE_CELLS", 0)
    assert metrics.datapoints(LATENCY, at(0), at(600), 60, wanted) == table
    values = sorted(v for p in periods if p is not None for v in [p.minimum, p.maximum])
    assert table[0].percentiles[1] <= table[0].percentiles[50] <= table[0].percentiles[99.9]
    assert min(values) * 0.99 <= table[0].percentiles[1]
