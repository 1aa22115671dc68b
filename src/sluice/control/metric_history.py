"""The metric history's writer: every 10 s, what each endpoint's variants answered, stored
as SageMaker's CloudWatch metrics (namespace `AWS/SageMaker`, dimensions `EndpointName` and
`VariantName`): `Invocations`, `InvocationsPerInstance`, `Invocation4XXErrors`,
`Invocation5XXErrors`, `InvocationModelErrors` (per request: 1 if it failed so, else 0;
so Sum counts and Average is the rate), `ModelLatency` and `OverheadLatency`
(microseconds, with bins for percentiles); the workers' `CPUUtilization` and
`MemoryUtilization` (namespace `/aws/sagemaker/Endpoints`, percent per instance, as
SageMaker's: 100 is one core, memory against the machine's); for async endpoints
`ApproximateBacklogSize`, `ApproximateBacklogSizePerInstance`,
`ApproximateAgeOfOldestRequest` and `HasBacklogWithoutCapacity` (`EndpointName` only);
for multi-model variants `ModelCacheHit` (1 per request whose model was loaded, else 0),
`ModelLoadingWaitTime`, `ModelDownloadingTime`, `ModelLoadingTime`, `ModelUnloadingTime`
(microseconds) and `LoadedModelCount` (instance namespace); for multi-container variants
`ContainerLatency` per `ContainerName` (microseconds).
Custom metrics (the native API's, monitoring's) are written through `record`. The last
half hour of each variant's figures is also kept in memory (`recent`), for the dashboard.

The gateway's hot path only adds to each fleet's running totals; this reads them every
10 s (at wall-clock multiples of 10 s), subtracts the previous reading, and hands the
periods to a writer thread, so the history costs a request nothing. Old periods are
rolled up to one minute after 3 hours and dropped after 15 days, as CloudWatch keeps them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sluice.gateway.fleet_stats import Tallies, Window, bin_of, bin_value, percentile
from sluice.store.metric_repo import MetricRepository, Period, Series, series
from sluice.store.writer import Writer

log = logging.getLogger(__name__)

NAMESPACE = "AWS/SageMaker"
INSTANCE_NAMESPACE = "/aws/sagemaker/Endpoints"
SLUICE_NAMESPACE = "Sluice/Endpoints"
"""Figures SageMaker does not publish: `InstanceCount` per variant."""
INSTANCE_FIGURES = frozenset({"LoadedModelCount"})
"""Tallied figures SageMaker publishes in the instance namespace."""
RESOLUTION_S = 10
ROLL_UP_AFTER = timedelta(hours=3)
KEEP = timedelta(days=15)
TIDY_EVERY_S = 600.0
"""How often old periods are rolled up and dropped."""
RECENT = 180
"""Samples kept in memory per variant: half an hour of 10 s periods."""


@dataclass(frozen=True)
class Recent:
    """One variant's figures over one 10 s period."""

    at: float
    """The period's start (epoch seconds)."""
    invocations: int
    errors_4xx: int
    errors_5xx: int
    p50_ms: float | None
    p99_ms: float | None
    instances: int


class MetricHistory:
    def __init__(
        self,
        repo: MetricRepository,
        endpoints: Callable[[], Iterable[str]],
        fleets: Callable[[str], Mapping[tuple[str, str], Window]],
        instances: Callable[[str], Mapping[str, int]],
        usage: Callable[[], Mapping[tuple[str, str], tuple[float, float, int]]] | None = None,
        tallies: Callable[[str], Mapping[str, Sequence[Tallies]]] | None = None,
    ) -> None:
        self.repo = repo
        self.endpoints = endpoints
        """The names of the endpoints running now."""
        self.fleets = fleets
        """An endpoint's (endpoint config, variant) to its running totals."""
        self.instances = instances
        """An endpoint's variants to their running instances."""
        self.usage = usage
        """(endpoint, variant) to its workers' CPU seconds so far, resident bytes, count."""
        self.tallies = tallies
        """An endpoint's variants to their fleets' figures beyond requests'."""
        self.last: dict[tuple[str, str, str], Window] = {}
        self.last_cpu: dict[tuple[str, str], float] = {}
        self.backlogs: dict[str, tuple[int, float, int]] = {}
        """An async endpoint's latest backlog, oldest request's age and instances."""
        self.recent: dict[tuple[str, str], deque[Recent]] = {}
        """(endpoint, variant) to its last RECENT periods, oldest first."""
        self.memory_total: float | None = None
        """The machine's memory in bytes (read on first use)."""
        self._writer = Writer("metric-history")
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="metric history")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def record(self, periods: list[Period]) -> None:
        """Store periods off the caller's thread (custom metrics); failures are logged."""

        def stored(future: Future[None]) -> None:
            if future.exception() is not None:
                log.error("custom metrics not stored: %s", future.exception())

        self._writer.background.submit(self.repo.add, periods).add_done_callback(stored)

    def note_backlog(
        self, endpoint: str, queued: int, running: int, oldest_age_s: float, instances: int
    ) -> None:
        """An async endpoint's backlog now (the dispatcher reports it as it changes)."""
        self.backlogs[endpoint] = (queued + running, oldest_age_s, instances)

    def sample(
        self,
        end: datetime,
        usage: Mapping[tuple[str, str], tuple[float, float, int]] | None = None,
    ) -> list[Period]:
        """The periods of the RESOLUTION_S seconds that end at `end`: what every variant
        answered since the last sample."""
        start = end - timedelta(seconds=RESOLUTION_S)
        reading: dict[tuple[str, str, str], Window] = {}
        periods: list[Period] = []
        for endpoint in list(self.endpoints()):
            by_variant: dict[str, Window] = {}
            for (config, variant), total in self.fleets(endpoint).items():
                key = (endpoint, config, variant)
                reading[key] = total
                # A fleet seen for the first time began within this period (or the server
                # did): all it counted is new.
                since = total - self.last.get(key, Window())
                by_variant[variant] = by_variant.get(variant, Window()) + since
            instances = self.instances(endpoint)
            for variant, window in by_variant.items():
                running = instances.get(variant, 0)
                periods += _periods(endpoint, variant, window, running, start)
                self._remember(endpoint, variant, window, running, start)
            if self.tallies is not None:
                periods += _tallied(endpoint, self.tallies(endpoint), start)
        for gone in set(self.recent) - {(e, v) for e, _, v in reading}:
            del self.recent[gone]  # the endpoint or variant is gone
        self.last = reading
        periods += self._utilization(usage or {}, start)
        periods += self._backlog(start)
        return periods

    def _remember(
        self, endpoint: str, variant: str, window: Window, instances: int, start: datetime
    ) -> None:
        p50, p99 = percentile(window.model_bins, 50), percentile(window.model_bins, 99)
        self.recent.setdefault((endpoint, variant), deque(maxlen=RECENT)).append(
            Recent(
                start.timestamp(),
                window.invocations,
                window.errors_4xx,
                window.errors_5xx,
                None if p50 is None else p50 * 1000,
                None if p99 is None else p99 * 1000,
                instances,
            )
        )

    def _utilization(
        self, usage: Mapping[tuple[str, str], tuple[float, float, int]], start: datetime
    ) -> list[Period]:
        periods: list[Period] = []
        if usage and self.memory_total is None:
            import psutil

            self.memory_total = float(psutil.virtual_memory().total)
        for (endpoint, variant), (cpu, memory, processes) in usage.items():
            before = self.last_cpu.get((endpoint, variant))
            self.last_cpu[(endpoint, variant)] = cpu
            if not processes:
                continue
            dimensions = {"EndpointName": endpoint, "VariantName": variant}
            figures = [("MemoryUtilization", memory / processes / (self.memory_total or 1) * 100)]
            if before is not None and cpu >= before:
                figures.append(("CPUUtilization", (cpu - before) / RESOLUTION_S / processes * 100))
            for name, value in figures:
                periods.append(
                    Period(series(INSTANCE_NAMESPACE, name, dimensions), start, RESOLUTION_S,
                           1, value, value, value, "Percent")
                )  # fmt: skip
        for key in set(self.last_cpu) - set(usage):
            del self.last_cpu[key]
        return periods

    def _backlog(self, start: datetime) -> list[Period]:
        periods: list[Period] = []
        for endpoint, (backlog, age, instances) in list(self.backlogs.items()):
            dimensions = {"EndpointName": endpoint}
            for name, value, unit in (
                ("ApproximateBacklogSize", backlog, "Count"),
                ("ApproximateBacklogSizePerInstance", backlog / max(instances, 1), "Count"),
                ("ApproximateAgeOfOldestRequest", age, "Seconds"),
                ("HasBacklogWithoutCapacity", float(backlog > 0 and instances == 0), "Count"),
            ):
                periods.append(
                    Period(series(NAMESPACE, name, dimensions), start, RESOLUTION_S,
                           1, value, value, value, unit)
                )  # fmt: skip
        return periods

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        self.sample(_now())  # the baseline: the first period is whole
        tidied = time.monotonic()
        while True:
            await asyncio.sleep(RESOLUTION_S - time.time() % RESOLUTION_S)
            try:
                end = _aligned_now()
                usage = None
                if self.usage is not None:
                    usage = await loop.run_in_executor(self._writer.background, self.usage)
                periods = self.sample(end, usage)
                await loop.run_in_executor(self._writer.background, self.repo.add, periods)
                if time.monotonic() - tidied >= TIDY_EVERY_S:
                    tidied = time.monotonic()
                    await loop.run_in_executor(self._writer.background, self._tidy)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the history must outlive a bad moment
                log.exception("metric history")

    def _tidy(self) -> None:
        now = _now()
        self.repo.roll_up(before=now - ROLL_UP_AFTER)
        self.repo.prune(before=now - KEEP)


def _periods(
    endpoint: str, variant: str, window: Window, instances: int, start: datetime
) -> list[Period]:
    dimensions = {"EndpointName": endpoint, "VariantName": variant}

    def count(name: str, value: float) -> Period:
        return Period(
            series(NAMESPACE, name, dimensions), start, RESOLUTION_S, 1, value, value, value, "None"
        )

    periods = [count("Invocations", window.invocations)]
    if window.invocations:
        # As SageMaker sends them: a 1 for each request that failed so, a 0 for the others
        # (Sum: how many failed; Average: the rate).
        for name, errors in (
            ("Invocation4XXErrors", window.errors_4xx),
            ("Invocation5XXErrors", window.errors_5xx),
            ("InvocationModelErrors", window.model_errors),
        ):
            periods.append(
                Period(
                    series(NAMESPACE, name, dimensions),
                    start,
                    RESOLUTION_S,
                    window.invocations,
                    errors,
                    float(errors == window.invocations),
                    float(errors > 0),
                    "None",
                )  # fmt: skip
            )
    if instances:
        periods.append(count("InvocationsPerInstance", window.invocations / instances))
    periods.append(
        Period(series(SLUICE_NAMESPACE, "InstanceCount", dimensions), start, RESOLUTION_S,
               1, instances, instances, instances, "Count")
    )  # fmt: skip
    latencies = (("ModelLatency", window.model_bins), ("OverheadLatency", window.overhead_bins))
    for name, bins in latencies:
        latency = _microseconds(series(NAMESPACE, name, dimensions), start, bins)
        if latency is not None:
            periods.append(latency)
    return periods


def _tallied(
    endpoint: str, by_variant: Mapping[str, Sequence[Tallies]], start: datetime
) -> list[Period]:
    """The periods of what each variant's fleets tallied (a figure of two fleets merged)."""
    merged: dict[Series, Period] = {}
    for variant, fleets in by_variant.items():
        for tallies in fleets:
            for name, unit, extra, tally in tallies.take():
                namespace = INSTANCE_NAMESPACE if name in INSTANCE_FIGURES else NAMESPACE
                dimensions = {"EndpointName": endpoint, "VariantName": variant, **extra}
                item = series(namespace, name, dimensions)
                period = Period(
                    item, start, RESOLUTION_S, tally.count, tally.total,
                    tally.minimum, tally.maximum, unit, tally.bins,
                )  # fmt: skip
                earlier = merged.get(item)
                merged[item] = period if earlier is None else earlier.merge(period)
    return list(merged.values())


def _microseconds(item: Series, start: datetime, bins: Mapping[int, int]) -> Period | None:
    """A latency period in microseconds from bins of seconds (re-binned: within 1 %)."""
    live = {i: n for i, n in bins.items() if n > 0}
    if not live:
        return None
    out: dict[int, int] = {}
    total = 0.0
    for index, n in live.items():
        value = bin_value(index) * 1e6
        total += value * n
        rebinned = bin_of(value)
        out[rebinned] = out.get(rebinned, 0) + n
    return Period(
        item,
        start,
        RESOLUTION_S,
        float(sum(live.values())),
        total,
        bin_value(min(live)) * 1e6,
        bin_value(max(live)) * 1e6,
        "Microseconds",
        out,
    )


def _now() -> datetime:
    return datetime.now(UTC)


def _aligned_now() -> datetime:
    """Now, rounded to the nearest multiple of RESOLUTION_S (the sleep lands just after)."""
    return datetime.fromtimestamp(round(time.time() / RESOLUTION_S) * RESOLUTION_S, UTC)
