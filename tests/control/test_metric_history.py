"""The metric history's writer: what each variant answered in each 10 s, as SageMaker's
CloudWatch metrics, from the fleets' running totals (a real SQLite store)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sluice.control.metric_history import INSTANCE_NAMESPACE, NAMESPACE, MetricHistory
from sluice.gateway.fleet_stats import CLIENT_ERROR, MODEL_ERROR, OK, FleetStats, Tallies
from sluice.store.db import open_database
from sluice.store.metric_repo import MetricRepository, series

T0 = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)


def test_each_period_holds_what_the_variants_answered_in_it(tmp_path: Path) -> None:
    repo = MetricRepository(open_database(f"sqlite:///{tmp_path / 'sluice.db'}"))
    blue, green, other = FleetStats(), FleetStats(), FleetStats()
    fleets = {("config-1", "A"): blue, ("config-2", "A"): green, ("config-1", "B"): other}
    history = MetricHistory(
        repo,
        lambda: ["ep"],
        lambda name: {key: stats.snapshot() for key, stats in fleets.items()},
        lambda name: {"A": 2, "B": 1},
    )
    history.sample(T0)  # the baseline
    for _ in range(3):
        blue.record(0.002, 0.0001, OK)
    green.record(0.004, None, MODEL_ERROR)  # the model raised: a 5xx and a model error
    other.record(0.001, 0.0001, CLIENT_ERROR)
    repo.add(history.sample(T0 + timedelta(seconds=10)))
    repo.add(history.sample(T0 + timedelta(seconds=20)))  # nothing answered

    def points(name: str, variant: str = "A") -> list[tuple[float, float, float]]:
        item = series(NAMESPACE, name, {"EndpointName": "ep", "VariantName": variant})
        found = repo.datapoints(item, T0, T0 + timedelta(seconds=30), 10, percentiles=(50,))
        return [(p.samples, p.total, p.percentiles[50] or 0) for p in found]

    assert points("Invocations") == [(1, 4, 0), (1, 0, 0)]  # blue and green together
    assert points("InvocationsPerInstance") == [(1, 2, 0), (1, 0, 0)]
    assert points("Invocation5XXErrors") == [(4, 1, 0)]  # one request of four; none later
    assert points("InvocationModelErrors") == [(4, 1, 0)]
    assert points("Invocation4XXErrors", "B") == [(1, 1, 0)]
    ((samples, total, p50),) = points("ModelLatency")  # no latency without requests
    assert samples == 4 and total == pytest.approx(10_000, rel=0.01)
    assert p50 == pytest.approx(2_000, rel=0.01)  # microseconds
    ((samples, _, _),) = points("OverheadLatency")
    assert samples == 3  # one request had no overhead measured
    names = {s.name for s in repo.series(NAMESPACE, dimensions=[("VariantName", "B")])}
    assert names == {
        "Invocations", "InvocationsPerInstance", "Invocation4XXErrors", "Invocation5XXErrors",
        "InvocationModelErrors", "ModelLatency", "OverheadLatency",
    }  # fmt: skip


def test_worker_usage_and_the_async_backlog_become_sagemakers_metrics(tmp_path: Path) -> None:
    history = MetricHistory(
        MetricRepository(open_database(f"sqlite:///{tmp_path / 'sluice.db'}")),
        lambda: [], lambda name: {}, lambda name: {},
    )  # fmt: skip
    history.memory_total = 1000.0
    assert history.sample(T0, {("ep", "A"): (5.0, 100.0, 2)}) != []
    history.note_backlog("ep", 3, 1, 12.5, 0)
    periods = history.sample(T0 + timedelta(seconds=10), {("ep", "A"): (13.0, 300.0, 2)})
    found = {(p.series.namespace, p.series.name): p.total for p in periods}
    # 8 CPU seconds over 10 s on two workers: 40 % of a core each; 150 of 1000 bytes each.
    assert found[(INSTANCE_NAMESPACE, "CPUUtilization")] == pytest.approx(40.0)
    assert found[(INSTANCE_NAMESPACE, "MemoryUtilization")] == pytest.approx(15.0)
    assert found[(NAMESPACE, "ApproximateBacklogSize")] == 4
    assert found[(NAMESPACE, "ApproximateBacklogSizePerInstance")] == 4  # no instance: per 1
    assert found[(NAMESPACE, "ApproximateAgeOfOldestRequest")] == 12.5
    assert found[(NAMESPACE, "HasBacklogWithoutCapacity")] == 1


def test_a_fleet_gone_is_forgotten_and_a_new_one_counts_from_zero(tmp_path: Path) -> None:
    repo = MetricRepository(open_database(f"sqlite:///{tmp_path / 'sluice.db'}"))
    fleets: dict[tuple[str, str], FleetStats] = {("config-1", "A"): FleetStats()}
    history = MetricHistory(
        repo,
        lambda: ["ep"],
        lambda name: {key: stats.snapshot() for key, stats in fleets.items()},
        lambda name: {"A": 1},
    )
    history.sample(T0)
    fleets = {("config-2", "A"): FleetStats()}
    fleets[("config-2", "A")].record(0.001, None, OK)
    periods = history.sample(T0 + timedelta(seconds=10))
    invocations = next(p for p in periods if p.series.name == "Invocations")
    assert invocations.total == 1 and invocations.at == T0
    assert set(history.last) == {("ep", "config-2", "A")}


def test_tallied_figures_become_sagemakers_multi_model_and_container_metrics(
    tmp_path: Path,
) -> None:
    history = MetricHistory(
        MetricRepository(open_database(f"sqlite:///{tmp_path / 'sluice.db'}")),
        lambda: ["ep"], lambda name: {}, lambda name: {},
        tallies=lambda name: {"A": [blue, green]},
    )  # fmt: skip
    blue, green = Tallies(), Tallies()
    loaded = {"blue": 3.0, "green": 1.0}
    blue.gauge("LoadedModelCount", "Count", lambda: loaded["blue"])
    green.gauge("LoadedModelCount", "Count", lambda: loaded["green"])
    for hit in (1.0, 1.0, 0.0):
        blue.add("ModelCacheHit", hit, "Count")
    green.add("ModelCacheHit", 1.0, "Count")
    blue.add("ModelLoadingWaitTime", 2_000.0, "Microseconds")
    blue.add("ContainerLatency", 100.0, "Microseconds", ContainerName="first")
    blue.add("ContainerLatency", 300.0, "Microseconds", ContainerName="first")
    blue.add("ContainerLatency", 50.0, "Microseconds", ContainerName="second")

    periods = history.sample(T0)
    found = {(p.series.namespace, p.series.name, p.series.dimensions): p for p in periods}
    variant = (("EndpointName", "ep"), ("VariantName", "A"))
    hits = found[(NAMESPACE, "ModelCacheHit", variant)]  # both fleets' in one period
    assert (hits.samples, hits.total) == (4, 3)  # Average: the hit ratio
    assert hits.bins is None  # a 0 was among the values
    wait = found[(NAMESPACE, "ModelLoadingWaitTime", variant)]
    assert (wait.samples, wait.total, wait.unit) == (1, 2_000.0, "Microseconds")
    assert wait.bins is not None and sum(wait.bins.values()) == 1
    count = found[(INSTANCE_NAMESPACE, "LoadedModelCount", variant)]
    assert (count.samples, count.total, count.maximum) == (2, 4.0, 3.0)
    first = found[(NAMESPACE, "ContainerLatency", (("ContainerName", "first"), *variant))]
    assert (first.samples, first.total, first.minimum, first.maximum) == (2, 400.0, 100.0, 300.0)
    assert (NAMESPACE, "ContainerLatency", (("ContainerName", "second"), *variant)) in found

    # Taken: the next period holds only the gauges until more is added.
    later = history.sample(T0 + timedelta(seconds=10))
    assert {p.series.name for p in later} == {"LoadedModelCount"}
