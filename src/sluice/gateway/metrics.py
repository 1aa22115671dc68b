"""Every data-plane Prometheus metric, declared once, on a registry per server."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.00075,
    0.001,
    0.0025,
    0.005,
    0.0075,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
VARIANT = ("endpoint", "variant")

# The *_created series double the scrape size and tell nothing a counter reset does not.
disable_created_metrics()  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class VariantMetrics:
    """The labelled children of one variant, resolved once so the hot path only increments."""

    invocations: Counter
    errors_4xx: Counter
    errors_5xx: Counter
    model_latency: Histogram
    overhead_latency: Histogram
    shadow_sent: Counter
    shadow_shed: Counter
    shadow_failed: Counter
    restarts: Counter
    captured: Counter
    capture_dropped: Counter
    batch_size: Histogram
    batch_queue: Histogram


@dataclass(frozen=True)
class MultiModelMetrics:
    """SageMaker's multi-model metrics for one variant (labelled children)."""

    hits: Counter
    misses: Counter
    loading_wait: Histogram
    """ModelLoadingWaitTime: how long a request waited for its model to be downloaded,
    loaded, or both."""
    downloading: Histogram
    loading: Histogram
    unloading: Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.invocations = Counter(
            "sluice_invocations", "Inference requests answered or failed", VARIANT, registry=r
        )
        self.errors = Counter(
            "sluice_invocation_errors",
            "Failed inference requests by class",
            (*VARIANT, "class"),
            registry=r,
        )
        self.model_latency = Histogram(
            "sluice_model_latency_seconds",
            "Round trip to the worker (model and link)",
            VARIANT,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.overhead_latency = Histogram(
            "sluice_overhead_latency_seconds",
            "Gateway time outside the worker call",
            VARIANT,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "sluice_batch_size",
            "Requests in the dynamic batch each request was answered in (1: alone)",
            VARIANT,
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.batch_queue = Histogram(
            "sluice_batch_queue_seconds",
            "Time a request waited in its worker before its batch started",
            VARIANT,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.model_cache = Counter(
            "sluice_model_cache_requests",
            "Multi-model requests by whether their model was loaded already (ModelCacheHit)",
            (*VARIANT, "outcome"),
            registry=r,
        )
        self.model_loading_wait = Histogram(
            "sluice_model_loading_wait_seconds",
            "ModelLoadingWaitTime: how long a request waited for its model to be "
            "downloaded, loaded, or both",
            VARIANT,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.model_transfers = Histogram(
            "sluice_model_transfer_seconds",
            "Multi-model downloads (ModelDownloadingTime), loads (ModelLoadingTime) and "
            "unloads (ModelUnloadingTime), by kind",
            (*VARIANT, "kind"),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.container_invocations = Counter(
            "sluice_container_invocations",
            "Requests each container of a multi-container variant answered (in a pipeline, "
            "every container answers every request)",
            (*VARIANT, "container"),
            registry=r,
        )
        self.container_latency = Histogram(
            "sluice_container_latency_seconds",
            "ContainerLatency: each container's time on a request (in a pipeline, on the "
            "batch the request was in)",
            (*VARIANT, "container"),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.loaded_models = Gauge(
            "sluice_loaded_models",
            "LoadedModelCount: models loaded across a multi-model variant's instances",
            VARIANT,
            registry=r,
        )
        self.shadow_copies = Counter(
            "sluice_shadow_copies",
            "Copies of requests to shadow variants",
            (*VARIANT, "outcome"),
            registry=r,
        )
        self.worker_restarts = Counter(
            "sluice_worker_restarts", "Worker processes restarted", VARIANT, registry=r
        )
        self.capture_records = Counter(
            "sluice_capture_records", "Data-capture records", (*VARIANT, "outcome"), registry=r
        )
        self.monitoring_executions = Counter(
            "sluice_monitoring_executions",
            "Monitoring executions finished, by status",
            ("schedule", "endpoint", "status"),
            registry=r,
        )
        self.monitoring_violations = Gauge(
            "sluice_monitoring_violations",
            "Constraint violations found by a schedule's last completed execution",
            ("schedule", "endpoint"),
            registry=r,
        )
        self.monitoring_feature_drift = Gauge(
            "sluice_monitoring_feature_drift",
            "Baseline drift distance (KS D, or L-infinity for text) at the last execution",
            ("schedule", "endpoint", "feature"),
            registry=r,
        )
        self.monitoring_feature_completeness = Gauge(
            "sluice_monitoring_feature_completeness",
            "Share of non-null values at the last execution",
            ("schedule", "endpoint", "feature"),
            registry=r,
        )
        self.monitoring_model_metric = Gauge(
            "sluice_monitoring_model_metric",
            "Model-quality metric at the last execution with enough ground truth",
            ("schedule", "endpoint", "metric"),
            registry=r,
        )
        self.capture_uploads = Counter(
            "sluice_capture_uploads",
            "Capture files uploaded to S3, or attempts that failed (tried again later)",
            ("outcome",),
            registry=r,
        )
        self.webhooks = Counter(
            "sluice_webhook_notifications",
            "Webhook notifications by outcome",
            ("outcome",),
            registry=r,
        )

        # Asynchronous inference, under SageMaker's CloudWatch names where it has one.
        self.async_backlog = Gauge(
            "sluice_async_backlog_size",
            "ApproximateBacklogSize: async requests queued or being processed",
            ("endpoint",),
            registry=r,
        )
        self.async_backlog_per_instance = Gauge(
            "sluice_async_backlog_size_per_instance",
            "ApproximateBacklogSizePerInstance",
            ("endpoint",),
            registry=r,
        )
        self.async_oldest_age = Gauge(
            "sluice_async_age_of_oldest_request_seconds",
            "ApproximateAgeOfOldestRequest: how long the oldest queued request has waited",
            ("endpoint",),
            registry=r,
        )
        self.async_without_capacity = Gauge(
            "sluice_async_has_backlog_without_capacity",
            "HasBacklogWithoutCapacity: 1 when requests wait and no instance runs",
            ("endpoint",),
            registry=r,
        )
        self.async_requests = Counter(
            "sluice_async_invocations",
            "Async requests finished, by outcome (succeeded = InvocationsProcessed, "
            "failed = InvocationFailures, expired = ExpiredRequests)",
            (*VARIANT, "outcome"),
            registry=r,
        )
        self.async_time_in_backlog = Histogram(
            "sluice_async_time_in_backlog_seconds",
            "TimeInBacklog: from acceptance to the start of processing",
            ("endpoint",),
            buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 21600),
            registry=r,
        )
        self.async_transfer_failures = Counter(
            "sluice_async_transfer_failures",
            "Async transfers that failed, by kind (download = RequestDownloadFailures, "
            "upload = ResponseUploadFailures, notification = NotificationFailures)",
            (*VARIANT, "kind"),
            registry=r,
        )
        self.async_transfer_seconds = Histogram(
            "sluice_async_transfer_seconds",
            "Async transfers to and from S3, by kind (download = RequestDownloadLatency, "
            "upload = ResponseUploadLatency); none without an S3 store",
            (*VARIANT, "kind"),
            buckets=(0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300),
            registry=r,
        )
        self.transform_records = Counter(
            "sluice_transform_records",
            "Batch transform records, answered or failed (bad records set aside)",
            ("job", "outcome"),
            registry=r,
        )
        self.transform_chunks = Counter(
            "sluice_transform_chunks",
            "Batch transform chunks finished, by outcome (succeeded, failed, retried)",
            ("job", "outcome"),
            registry=r,
        )
        self.async_processing = Histogram(
            "sluice_async_processing_seconds",
            "TotalProcessingTime: reading the input, the model and writing the output",
            (*VARIANT,),
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300, 900, 3600),
            registry=r,
        )

    def transform_chunk(self, job: str, records: int, failed: int, outcome: str) -> None:
        """A transform chunk finished: its records answered and set aside, and how."""
        self.transform_records.labels(job, "answered").inc(records)
        if failed:
            self.transform_records.labels(job, "failed").inc(failed)
        self.transform_chunks.labels(job, outcome).inc()

    def async_outcome(
        self, endpoint: str, variant: str, outcome: str, queued_s: float, processing_s: float
    ) -> None:
        self.async_requests.labels(endpoint, variant, outcome).inc()
        self.async_time_in_backlog.labels(endpoint).observe(queued_s)
        if outcome != "expired":
            self.async_processing.labels(endpoint, variant).observe(processing_s)

    def async_transfer(self, endpoint: str, variant: str, kind: str, seconds: float | None) -> None:
        """A download, upload or notification of an async request: its time, or None if it
        failed."""
        if seconds is None:
            self.async_transfer_failures.labels(endpoint, variant, kind).inc()
        else:
            self.async_transfer_seconds.labels(endpoint, variant, kind).observe(seconds)

    def async_backlog_of(
        self, endpoint: str, queued: int, running: int, oldest_age_s: float, instances: int
    ) -> None:
        backlog = queued + running
        self.async_backlog.labels(endpoint).set(backlog)
        self.async_backlog_per_instance.labels(endpoint).set(backlog / max(instances, 1))
        self.async_oldest_age.labels(endpoint).set(oldest_age_s)
        self.async_without_capacity.labels(endpoint).set(int(backlog > 0 and instances == 0))

    def for_variant(self, endpoint: str, variant: str) -> VariantMetrics:
        labels = (endpoint, variant)
        return VariantMetrics(
            invocations=self.invocations.labels(*labels),
            errors_4xx=self.errors.labels(*labels, "4xx"),
            errors_5xx=self.errors.labels(*labels, "5xx"),
            model_latency=self.model_latency.labels(*labels),
            overhead_latency=self.overhead_latency.labels(*labels),
            shadow_sent=self.shadow_copies.labels(*labels, "sent"),
            shadow_shed=self.shadow_copies.labels(*labels, "shed"),
            shadow_failed=self.shadow_copies.labels(*labels, "failed"),
            restarts=self.worker_restarts.labels(*labels),
            captured=self.capture_records.labels(*labels, "written"),
            capture_dropped=self.capture_records.labels(*labels, "dropped"),
            batch_size=self.batch_size.labels(*labels),
            batch_queue=self.batch_queue.labels(*labels),
        )

    def for_multi_model(
        self, endpoint: str, variant: str, loaded: Callable[[], float]
    ) -> MultiModelMetrics:
        """A multi-model variant's metrics; `loaded` counts its loaded models when scraped."""
        labels = (endpoint, variant)
        self.loaded_models.labels(*labels).set_function(loaded)
        return MultiModelMetrics(
            hits=self.model_cache.labels(*labels, "hit"),
            misses=self.model_cache.labels(*labels, "miss"),
            loading_wait=self.model_loading_wait.labels(*labels),
            downloading=self.model_transfers.labels(*labels, "download"),
            loading=self.model_transfers.labels(*labels, "load"),
            unloading=self.model_transfers.labels(*labels, "unload"),
        )

    def for_containers(
        self, endpoint: str, variant: str, hostnames: Iterable[str]
    ) -> dict[str, tuple[Counter, Histogram]]:
        """Each container's invocations and latency, by hostname."""
        return {
            h: (
                self.container_invocations.labels(endpoint, variant, h),
                self.container_latency.labels(endpoint, variant, h),
            )
            for h in hostnames
        }

    def watch_workers(
        self, source: Callable[[], Iterable[tuple[str, str, dict[str, tuple[float, float]]]]]
    ) -> WorkerUsageCollector:
        """Report CPU and memory of worker processes, read when /metrics is scraped."""
        collector = WorkerUsageCollector(source)
        self.registry.register(collector)
        return collector

    def watch_alarms(self, source: Callable[[], Iterable[tuple[str, str]]]) -> None:
        """Report each alarm's state (one series per state, 1 for the current one)."""
        self.registry.register(AlarmStateCollector(source))


ALARM_STATES = ("OK", "ALARM", "INSUFFICIENT_DATA")


class AlarmStateCollector(Collector):
    def __init__(self, source: Callable[[], Iterable[tuple[str, str]]]) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "sluice_alarm_state", "1 for the state each alarm is in", labels=("alarm", "state")
        )
        for alarm, current in self.source():
            for state in ALARM_STATES:
                family.add_metric([alarm, state], 1.0 if state == current else 0.0)
        yield family


class WorkerUsageCollector(Collector):
    """CPU, memory and count of each variant's worker processes, read at scrape time.

    The CPU counter never goes down: the last CPU time seen of a process that has since
    stopped (replaced, scaled in, or its fleet retired after an update) stays in the total.
    """

    def __init__(
        self, source: Callable[[], Iterable[tuple[str, str, dict[str, tuple[float, float]]]]]
    ) -> None:
        """`source`: (endpoint, variant, CPU seconds and resident bytes of each live
        worker process, by a key unique to it) for every fleet's variants."""
        self.source = source
        self.lock = threading.Lock()
        self.seen: dict[tuple[str, str], dict[str, float]] = {}
        """Last CPU seconds read of each live process, per variant."""
        self.retired: dict[tuple[str, str], float] = {}
        """CPU seconds of a variant's processes that have stopped."""

    def read(self) -> dict[tuple[str, str], tuple[float, float, int]]:
        """(endpoint, variant) to CPU seconds so far, resident bytes now, live processes."""
        # During an update a variant has two fleets: their processes add up in one series.
        by_variant: dict[tuple[str, str], dict[str, tuple[float, float]]] = {}
        for endpoint, variant, figures in self.source():
            by_variant.setdefault((endpoint, variant), {}).update(figures)
        usage: dict[tuple[str, str], tuple[float, float, int]] = {}
        with self.lock:
            for key in set(self.seen) | set(by_variant):
                figures = by_variant.get(key, {})
                before = self.seen.get(key, {})
                now = {process: cpu for process, (cpu, _) in figures.items()}
                memory = sum(rss for _, rss in figures.values())
                gone = sum(seconds for process, seconds in before.items() if process not in now)
                self.retired[key] = self.retired.get(key, 0.0) + gone
                self.seen[key] = now
                if key not in by_variant:  # the endpoint was deleted
                    del self.seen[key], self.retired[key]
                    continue
                usage[key] = (self.retired[key] + sum(now.values()), memory, len(figures))
        return usage

    def collect(self) -> Iterator[Metric]:
        cpu = CounterMetricFamily(
            "sluice_worker_cpu_seconds",
            "CPU time of a variant's worker processes, stopped ones included",
            labels=VARIANT,
        )
        rss = GaugeMetricFamily(
            "sluice_worker_memory_bytes",
            "Resident memory of a variant's live worker processes",
            labels=VARIANT,
        )
        live = GaugeMetricFamily("sluice_worker_processes", "Live worker processes", labels=VARIANT)
        for key, (seconds, memory, processes) in self.read().items():
            cpu.add_metric(list(key), seconds)
            rss.add_metric(list(key), memory)
            live.add_metric(list(key), processes)
        yield from (cpu, rss, live)
