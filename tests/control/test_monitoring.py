"""Monitoring schedules in a server's own services, on a clock the test moves: runs are
claimed once, caught up or skipped after a restart by policy, never doubled; the checks
run for real (in their own processes) on capture files and publish what they find."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from sluice.control.monitoring import MonitoringService
from sluice.entities import (
    ExecutionStatus,
    MonitoringJob,
    MonitoringSchedule,
    MonitoringType,
    ScheduleStatus,
)
from sluice.errors import ValidationError
from sluice.monitor.baseline import baseline
from sluice.server import Server, build_server
from sluice.settings import Settings
from sluice.store.db import open_database
from sluice.store.monitoring_repo import MonitoringRepository
from tests.monitor.data import make_table, write_capture, write_training

H0 = datetime(2026, 9, 21, 14, 0, tzinfo=UTC).timestamp()
HOUR = 3600.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A server home with a baseline and five hours of capture for endpoint ep; the
    fourth hour's x4 is widened (drift)."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "baseline"
    folder.mkdir()
    write_training(folder / "train.csv", make_table(rng, 20_000))
    statistics, constraints = baseline(folder / "train.csv")
    (folder / "statistics.json").write_text(json.dumps(statistics))
    (folder / "constraints.json").write_text(json.dumps(constraints))
    capture = tmp_path / "home" / "capture"
    for hour in range(5):
        scale = 2.0 if hour == 3 else 1.0
        write_capture(
            capture, make_table(rng, 600, x4_scale=scale), start=H0 + hour * HOUR, step=5.0
        )
    return tmp_path / "home"


@pytest.fixture
def server(home: Path) -> Iterator[Server]:
    built = build_server(Settings(home=home, monitor_settle_s=10, insecure_local=True))
    yield built


def _schedule(
    service: MonitoringService, name: str, missed: str = "run", last: float = H0
) -> MonitoringSchedule:
    """An hourly data-quality schedule last run at `last` (added to the store directly:
    the endpoint it names is not served in this test; the API path checks it)."""
    job = MonitoringJob(
        MonitoringType.DATA_QUALITY, "ep", str(service.settings.home.parent / "baseline")
    )
    at = datetime.fromtimestamp(last, UTC)
    return service.repo.add(
        MonitoringSchedule(
            name, "cron(0 * ? * * *)", job, ScheduleStatus.SCHEDULED, missed, at, at,
            last_scheduled_at=at,
        )
    )  # fmt: skip


def _restarted(server: Server, clock: Clock) -> MonitoringService:
    """The monitoring service of a server started afresh on the same database."""
    settings = server.settings
    repo = MonitoringRepository(open_database(settings.resolved_database_url))
    m = server.monitoring
    return MonitoringService(repo, m.endpoints, m.alarms, m.notifier, m.metrics, settings, clock)


async def _drain(service: MonitoringService) -> None:
    runner = asyncio.create_task(service._runner_loop())
    try:
        await asyncio.wait_for(service.wait_idle(), 120)
    finally:
        runner.cancel()


def test_runs_missed_while_down_are_caught_up_once(server: Server) -> None:
    clock = Clock(H0 + HOUR + 11)
    first = _restarted(server, clock)
    _schedule(first, "hourly")
    assert [x.scheduled_at.timestamp() for x in first.tick()] == [H0 + HOUR]
    assert first.tick() == []  # already claimed
    asyncio.run(_drain(first))

    # Down for three hours; two servers come back at once (or one ticks twice).
    clock.now = H0 + 4 * HOUR + 11
    again, rival = _restarted(server, clock), _restarted(server, clock)
    again.recover()
    claimed = again.tick()
    assert [x.scheduled_at.timestamp() for x in claimed] == [
        H0 + 2 * HOUR, H0 + 3 * HOUR, H0 + 4 * HOUR,
    ]  # fmt: skip
    assert rival.tick() == [] and again.tick() == []
    asyncio.run(_drain(again))

    executions = again.executions("hourly", limit=None)
    assert len(executions) == 4
    assert len({x.scheduled_at for x in executions}) == 4
    by_hour = {round((x.scheduled_at.timestamp() - H0) / HOUR): x for x in executions}
    for hour, execution in by_hour.items():
        # Each run checks the hour before it: hour 4's run saw the widened x4.
        assert execution.window_end is not None and execution.window_start is not None
        assert execution.window_end.timestamp() == H0 + hour * HOUR
        assert execution.window_start.timestamp() == H0 + (hour - 1) * HOUR
        assert execution.counts["rows"] == 600
        expected = (
            ExecutionStatus.COMPLETED_WITH_VIOLATIONS if hour == 4 else ExecutionStatus.COMPLETED
        )
        assert execution.status is expected, execution
        assert Path(execution.report_dir or "", "report.html").is_file()
    assert by_hour[4].summary["drifted"] == ["x4"]
    assert by_hour[4].summary["violations_by_check"] == {
        "baseline_drift_check": 1,
        "out_of_range_check": 1,  # twice the spread also leaves the baseline's range
    }


def test_skip_policy_runs_only_the_latest(server: Server) -> None:
    clock = Clock(H0 + 4 * HOUR + 11)
    service = _restarted(server, clock)
    _schedule(service, "skipper", missed="skip")
    claimed = service.tick()
    assert [x.scheduled_at.timestamp() for x in claimed] == [H0 + 4 * HOUR]
    assert service.repo.get("skipper").last_scheduled_at == claimed[0].scheduled_at


def test_a_run_is_not_claimed_before_capture_settles(server: Server) -> None:
    clock = Clock(H0 + HOUR + 5)  # settle is 10 s
    service = _restarted(server, clock)
    _schedule(service, "hourly")
    assert service.tick() == []
    clock.now += 6
    assert len(service.tick()) == 1


def test_an_execution_cut_off_by_a_stop_runs_again_as_itself(server: Server) -> None:
    clock = Clock(H0 + HOUR + 11)
    service = _restarted(server, clock)
    _schedule(service, "hourly")
    (claimed,) = service.tick()
    service.repo.update_execution(claimed.id, status=ExecutionStatus.IN_PROGRESS)

    back = _restarted(server, clock)
    back.recover()
    assert back.tick() == []
    asyncio.run(_drain(back))
    (execution,) = back.executions("hourly")
    assert execution.id == claimed.id and execution.status is ExecutionStatus.COMPLETED


def test_results_are_published(server: Server) -> None:
    clock = Clock(H0 + 4 * HOUR + 11)
    service = _restarted(server, clock)
    _schedule(service, "hourly", missed="skip")
    sent: list[tuple[str, dict[str, object]]] = []
    service.notifier.notify = lambda url, payload: sent.append((url, payload))  # type: ignore[method-assign]
    service.repo.update("hourly", webhook_url="http://127.0.0.1:9/hook")
    service.tick()
    asyncio.run(_drain(service))
    (execution,) = service.executions("hourly")
    assert execution.status is ExecutionStatus.COMPLETED_WITH_VIOLATIONS
    registry = service.metrics.registry
    drift = registry.get_sample_value(
        "sluice_monitoring_feature_drift", {"schedule": "hourly", "endpoint": "ep", "feature": "x4"}
    )
    assert drift is not None and drift > 0.1
    assert (
        registry.get_sample_value(
            "sluice_monitoring_violations", {"schedule": "hourly", "endpoint": "ep"}
        )
        == 2
    )
    # The same figures reach alarms as custom metrics, under SageMaker's names.
    series = service.alarms.custom.series
    assert ("feature_baseline_drift_x4", "ep", None) in series
    assert ("feature_non_null_x3", "ep", None) in series
    assert list(series[("monitoring_violations", "ep", None)])[-1][1] == 2
    # The alert state moved from OK to Violations, and the webhook heard of it.
    assert service.get("hourly").alert_state == "Violations"
    ((url, payload),) = sent
    assert payload["old_state"] == "OK" and payload["new_state"] == "Violations"
    assert payload["drifted"] == ["x4"]


def test_a_failing_check_is_recorded(server: Server, home: Path) -> None:
    clock = Clock(H0 + HOUR + 11)
    service = _restarted(server, clock)
    schedule = _schedule(service, "hourly")
    (home.parent / "baseline" / "statistics.json").write_text("{not json")
    service.tick()
    asyncio.run(_drain(service))
    (execution,) = service.executions(schedule.name)
    assert execution.status is ExecutionStatus.FAILED
    assert execution.failure_reason and "JSON" in execution.failure_reason
    assert service.get("hourly").alert_state == "Failed"


def test_bad_jobs_are_refused(server: Server, home: Path) -> None:
    from sluice.control.monitoring import ScheduleSpec

    service = server.monitoring
    job = MonitoringJob(MonitoringType.DATA_QUALITY, "nope", str(home.parent / "baseline"))
    with pytest.raises(Exception, match="nope"):
        service.create(ScheduleSpec("s", "cron(0 * ? * * *)", job))
    with pytest.raises(ValidationError, match="is not cron"):
        service.create(ScheduleSpec("s", "hourly", job))
    with pytest.raises(ValidationError, match="run or skip"):
        service.create(ScheduleSpec("s", "rate(1 hour)", job, missed_runs="sometimes"))
