"""Comparison reports of inference experiments, computed in a child process.

A report reads the experiment's window of capture (its start to now, or to its end) and
the ground truth posted so far. It runs in a separate process, so a large window never
stalls the gateway's event loop. While an experiment runs, its report is recomputed at
most every `refresh_s` seconds and the last one is served in between; when the
experiment ends, its final report is written as JSON and HTML under
`reports/experiments/` and served from there.
"""

from __future__ import annotations

import asyncio
import json
import logging
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sluice.control.endpoints import EndpointService
from sluice.control.experiments import ExperimentService
from sluice.entities import Experiment
from sluice.errors import InvalidState
from sluice.processes import die_with_parent
from sluice.settings import Settings

if TYPE_CHECKING:
    # numpy, scipy and jinja2 load only with the first report: the server starts lighter.
    from sluice.reports.compare import Extras, Source

log = logging.getLogger(__name__)

Usage = Callable[[], dict[tuple[str, str], tuple[float, float, int]]]
"""(endpoint, variant) to CPU seconds so far, resident bytes, live worker processes."""


class ExperimentReports:
    def __init__(
        self,
        experiments: ExperimentService,
        endpoints: EndpointService,
        usage: Usage,
        settings: Settings,
    ) -> None:
        self.experiments = experiments
        self.endpoints = endpoints
        self.usage = usage
        self.settings = settings
        self.folder = settings.reports_dir / "experiments"
        self.cache: dict[str, tuple[float, dict[str, Any]]] = {}
        self.computing: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.cpu_at_start: dict[str, dict[str, float]] = {}
        self.last_extras: dict[str, Extras] = {}
        """Worker figures read as the experiment began to stop, for its final report."""
        self.pool: ProcessPoolExecutor | None = None
        self.finals: set[asyncio.Task[None]] = set()
        experiments.on_started.append(self._started)
        experiments.on_stopping.append(self._stopping)
        experiments.on_finished.append(self._finished)

    async def report(self, name: str, refresh: bool = False) -> dict[str, Any]:
        """The experiment's comparison report (JSON document, schema sluice.report/1)."""
        experiment = self.experiments.get(name)
        if experiment.started_at is None:
            raise InvalidState(
                f"inference experiment {name!r} has not started: no report yet", field="Name"
            )
        if experiment.status.finished:
            saved = self.path(name, "json")
            if saved.exists() and not refresh:
                return json.loads(saved.read_text())  # type: ignore[no-any-return]
            return await self._final(experiment)
        cached = self.cache.get(name)
        if cached and not refresh and time.monotonic() - cached[0] < self.settings.report_refresh_s:
            return cached[1]
        return await self._compute(experiment)

    async def html(self, name: str, refresh: bool = False) -> str:
        from sluice.reports.html import render

        report = await self.report(name, refresh)
        return await asyncio.to_thread(render, report)

    def path(self, name: str, suffix: str) -> Path:
        return self.folder / f"{name}.{suffix}"

    async def close(self) -> None:
        for task in list(self.finals):
            task.cancel()
        await asyncio.gather(*self.finals, return_exceptions=True)
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)

    # -- computing

    async def _compute(self, experiment: Experiment) -> dict[str, Any]:
        from sluice.reports.compare import ReportOptions, shadow_report

        running = self.computing.get(experiment.name)
        if running is not None:  # one computation per experiment at a time
            return await asyncio.shield(running)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.computing[experiment.name] = future
        try:
            report = await asyncio.get_running_loop().run_in_executor(
                self._pool(),
                shadow_report,
                self._source(experiment),
                experiment.source_variant,
                experiment.shadow_names,
                ReportOptions(),
                self._extras(experiment),
                f"Shadow test {experiment.name}",
            )
            report["experiment"] = {
                "name": experiment.name,
                "status": experiment.status.value,
                "final": experiment.status.finished,
            }
            self.cache[experiment.name] = (time.monotonic(), report)
            future.set_result(report)
            return report
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody else logs it
            raise
        finally:
            del self.computing[experiment.name]

    async def _final(self, experiment: Experiment) -> dict[str, Any]:
        from sluice.reports.html import render

        report = await self._compute(experiment)
        self.folder.mkdir(parents=True, exist_ok=True)
        page = await asyncio.to_thread(render, report)
        _write(self.path(experiment.name, "json"), json.dumps(report, indent=1))
        _write(self.path(experiment.name, "html"), page)
        self.cache.pop(experiment.name, None)
        return report

    def _pool(self) -> ProcessPoolExecutor:
        if self.pool is None:
            self.pool = ProcessPoolExecutor(
                1, mp_context=multiprocessing.get_context("spawn"), initializer=die_with_parent
            )
        return self.pool

    def _source(self, experiment: Experiment) -> Source:
        from sluice.reports.compare import Source

        assert experiment.started_at is not None
        end = experiment.completion_time or datetime.now(UTC)
        root = (
            self.endpoints.artifacts.objects.local(experiment.destination, "Destination")
            if experiment.destination
            else self.settings.capture_dir
        )
        return Source(
            experiment.endpoint,
            root,
            self.settings.ground_truth_dir,
            self.settings.outcomes_dir,
            experiment.started_at.timestamp(),
            end.timestamp(),
        )

    def _extras(self, experiment: Experiment) -> Extras:
        """CPU seconds since the start, memory now and shed copies of each variant's workers."""
        from sluice.reports.compare import Extras

        if experiment.status.finished or experiment.name in self.last_extras:
            return self.last_extras.get(experiment.name) or Extras()
        usage = self.usage()
        at_start = self.cpu_at_start.get(experiment.name, {})
        extras = Extras()
        live = self.endpoints.live.get(experiment.endpoint)
        for variant in [experiment.source_variant, *experiment.shadow_names]:
            figures = usage.get((experiment.endpoint, variant))
            if figures is not None:
                extras.cpu_seconds[variant] = round(figures[0] - at_start.get(variant, 0.0), 3)
                extras.memory_bytes[variant] = figures[1]
            handle = live.blue.variants.get(variant) if live else None
            if handle is not None and handle.sender is not None:
                extras.shed_copies[variant] = handle.sender.shed
        return extras

    # -- listeners

    def _started(self, experiment: Experiment) -> None:
        usage = self.usage()
        self.cpu_at_start[experiment.name] = {
            variant: figures[0]
            for (endpoint, variant), figures in usage.items()
            if endpoint == experiment.endpoint
        }

    def _stopping(self, experiment: Experiment) -> None:
        self.last_extras.pop(experiment.name, None)
        self.last_extras[experiment.name] = self._extras(experiment)

    def _finished(self, experiment: Experiment) -> None:
        if experiment.started_at is None:
            return
        task = asyncio.create_task(self._final_quietly(experiment.name))
        self.finals.add(task)
        task.add_done_callback(self.finals.discard)

    async def _final_quietly(self, name: str) -> None:
        try:
            await self._final(self.experiments.get(name))
        except Exception:  # noqa: BLE001 - served on request later; never breaks the stop
            log.exception("the final report of inference experiment %s failed", name)


def _write(path: Path, text: str) -> None:
    partial = path.with_suffix(path.suffix + ".partial")
    partial.write_text(text)
    partial.replace(path)
