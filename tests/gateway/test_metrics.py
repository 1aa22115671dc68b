"""The worker-usage collector on real processes."""

from __future__ import annotations

import subprocess
import sys
import time

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest

from sluice.gateway.metrics import WorkerUsageCollector
from sluice.processes import process_usage

BUSY = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\n"
BUSY_THEN_WAIT = BUSY + "time.sleep(60)\n"


def _cpu(registry: CollectorRegistry) -> float:
    value = registry.get_sample_value(
        "sluice_worker_cpu_seconds_total", {"endpoint": "ep", "variant": "A"}
    )
    assert value is not None
    return value


def test_cpu_seconds_keep_what_stopped_workers_used() -> None:
    first = subprocess.Popen([sys.executable, "-c", BUSY_THEN_WAIT])
    second = subprocess.Popen([sys.executable, "-c", BUSY_THEN_WAIT])
    pids = [first.pid, second.pid]
    registry = CollectorRegistry()
    rows = [("ep", "A", pids)]

    def usage() -> list[tuple[str, str, dict[str, tuple[float, float]]]]:
        return [
            (
                endpoint,
                variant,
                {str(pid): figures for pid in live if (figures := process_usage(pid))},
            )
            for endpoint, variant, live in rows
        ]

    registry.register(WorkerUsageCollector(usage))
    try:
        time.sleep(1.0)  # both have burnt their 0.3 s
        both = _cpu(registry)
        assert both >= 0.5
        assert (
            registry.get_sample_value("sluice_worker_processes", {"endpoint": "ep", "variant": "A"})
            == 2
        )
        first.kill()
        first.wait()
        pids.remove(first.pid)  # a scale-in: the pool forgets the process
        assert _cpu(registry) >= both
        assert b'sluice_worker_processes{endpoint="ep",variant="A"} 1.0' in generate_latest(
            registry
        )
    finally:
        for proc in (first, second):
            proc.kill()
            proc.wait()
    rows.clear()  # the endpoint is gone: its series go too
    assert b"sluice_worker_cpu_seconds_total{" not in generate_latest(registry)
