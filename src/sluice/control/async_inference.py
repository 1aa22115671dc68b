"""Asynchronous inference: requests queued durably, answered into output objects.

`submit` checks a request and puts it in the endpoint's queue (the work queue in the
metadata store), so an accepted request survives a crash of the server. The dispatcher
claims queued requests as the endpoint's instances have room, has a worker read the input
and write the answer itself (big payloads never pass through the server's memory), then
moves the answer into place (`<S3OutputPath>/<uuid>.out`, or `<S3FailurePath>/<uuid>-error.out`
with the reason) and sends the SNS-format notification to the topic's sink.

Retries go by cause: a worker that died or was unavailable, or a server restart, gives
the request back to the queue with a growing delay (up to `async_max_attempts` tries);
a model error, an unreadable input, an expired TTL or an invocation timeout fail it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from sluice.entities import AsyncConfig, WorkItem, WorkStatus
from sluice.errors import (
    ModelError,
    NotFound,
    Restoring,
    SluiceError,
    ValidationError,
    WorkerUnavailable,
)
from sluice.gateway.routing import Router, RouteTable
from sluice.processes import runner_id
from sluice.settings import Settings
from sluice.store.group_commit import GroupCommit
from sluice.store.objects import ObjectStore, staging_for, sync_to_disk
from sluice.store.tables import utcnow
from sluice.store.work_queue import NewItem, Outcome, WorkQueue
from sluice.store.writer import Writer
from sluice.waiting import wait_at_most
from sluice.workers.client import WorkerDied
from sluice.workers.file_request import INPUT_FIELD, FileRequest, sweep_leftovers

log = logging.getLogger(__name__)
T = TypeVar("T")

QUEUE_PREFIX = "async:"
DEFAULT_TTL_S = 21600
DEFAULT_TIMEOUT_S = 900
CLAIM_AT_MOST = 32
"""Requests claimed, or outcomes committed, in one write of the dispatcher's."""
WAKE_RETRY_S = 10.0
"""Pause before starting an endpoint's instances again after they failed to start."""
INLINE_RESPONSE_LIMIT = 128 * 1024
"""SageMaker puts the answer in a notification only up to this size."""


def queue_name(endpoint: str) -> str:
    return f"{QUEUE_PREFIX}{endpoint.lower()}"


@dataclass(frozen=True)
class AsyncRequest:
    """One InvokeEndpointAsync call, as the runtime API or the native API received it."""

    endpoint: str
    input_location: str
    content_type: str = "application/octet-stream"
    accept: str = "*/*"
    custom_attributes: str | None = None
    inference_id: str | None = None
    ttl_s: int = DEFAULT_TTL_S
    timeout_s: int = DEFAULT_TIMEOUT_S
    priority: int = 0


@dataclass(frozen=True)
class Accepted:
    inference_id: str
    output_location: str
    failure_location: str | None
    item: WorkItem
    created: bool


class AsyncInference:
    def __init__(
        self,
        queue: WorkQueue,
        router: Router,
        objects: ObjectStore,
        notify: Callable[[str, dict[str, Any], Callable[[str], None]], None],
        check_webhook: Callable[[str, str], None],
        settings: Settings,
        on_outcome: Callable[[str, str, str, float, float], None] | None = None,
        on_backlog: Callable[[str, int, int, float, int], None] | None = None,
        on_transfer: Callable[[str, str, str, float | None], None] | None = None,
        wake: Callable[[str], Awaitable[bool]] | None = None,
        rest: Callable[[str], Awaitable[bool]] | None = None,
    ) -> None:
        self.queue = queue
        self.router = router
        self.objects = objects
        self.notify = notify
        self.check_webhook = check_webhook
        self.settings = settings
        self.on_outcome = on_outcome
        """(endpoint, variant, outcome, seconds queued, seconds processing), per request."""
        self.on_backlog = on_backlog
        """(endpoint, queued, running, age of the oldest queued s, instances), each second."""
        self.on_transfer = on_transfer
        """(endpoint, variant, download|upload|notification, seconds or None if it failed)."""
        self.wake_endpoint = wake
        """Starts instances for an endpoint whose variants run none (a request waits)."""
        self.rest_endpoint = rest
        """Stops the instances of an idle endpoint's variants that may run none."""
        self.idle_since: dict[str, float] = {}
        self.scaling: dict[str, asyncio.Task[None]] = {}
        """An endpoint's wake or rest under way (one at a time)."""
        self.wake_failed: dict[str, float] = {}
        """When an endpoint's instances last failed to start (retried after a pause)."""
        self.waiting: set[str] = set()
        """Endpoints that got a request since the dispatcher last looked."""
        self.drained: set[str] = set()
        """Endpoints whose last claim took every request that was due."""
        self.arrived: dict[str, float] = {}
        """When the first request an endpoint got since its last claim came (monotonic)."""
        self.owner = runner_id()
        self.wake = asyncio.Event()
        self.in_flight: dict[str, dict[int, asyncio.Task[None]]] = {}
        self._task: asyncio.Task[None] | None = None
        # One thread writes this server's queue changes, many at a time (group commits);
        # accepting a request goes ahead of the dispatcher's bookkeeping.
        self._writer = Writer("async-queue")
        self._enqueue = GroupCommit(queue.enqueue_many, self._writer.urgent)
        self._finish = GroupCommit(queue.finish_many, self._writer.background, CLAIM_AT_MOST)

    # -- configuration

    def check_config(self, config: AsyncConfig) -> None:
        """Refuse what could not work later: no output path, a path this server may not
        write, a topic with no sink."""
        if not config.output_path:
            raise ValidationError(
                "AsyncInferenceConfig.OutputConfig needs S3OutputPath or S3FailurePath",
                field="AsyncInferenceConfig.OutputConfig.S3OutputPath",
            )
        for path, field in (
            (config.output_path, "S3OutputPath"),
            (config.failure_path, "S3FailurePath"),
        ):
            if path:
                if path.startswith(("https://", "http://")):
                    raise ValidationError(
                        f"{path!r}: sluice writes async outputs to s3:// or file:// locations only",
                        field=f"AsyncInferenceConfig.OutputConfig.{field}",
                    )
                self.objects.writable(path, f"AsyncInferenceConfig.OutputConfig.{field}")
        for topic, field in (
            (config.success_topic, "SuccessTopic"),
            (config.error_topic, "ErrorTopic"),
        ):
            if topic:
                self.sink_of(topic, f"AsyncInferenceConfig.OutputConfig.NotificationConfig.{field}")
        if config.max_concurrent_per_instance is not None and not (
            1 <= config.max_concurrent_per_instance <= 1000
        ):
            raise ValidationError(
                "MaxConcurrentInvocationsPerInstance must be 1 to 1000",
                field="AsyncInferenceConfig.ClientConfig.MaxConcurrentInvocationsPerInstance",
            )

    def sink_of(self, topic: str, field: str) -> str:
        url = self.settings.sns_topics.get(topic)
        if url is None:
            raise ValidationError(
                f"no sink is configured for the SNS topic {topic!r} (setting sns_topics: "
                "topic ARN to a webhook URL)",
                field=field,
            )
        self.check_webhook(url, field)
        return url

    # -- requests

    async def submit(self, request: AsyncRequest) -> Accepted:
        """Queue one request; the same inference id again returns the first one. Requests
        arriving together are committed together (one transaction)."""
        table = self.router.get(request.endpoint)
        config = table.asynchronous
        if config is None:
            raise ValidationError(
                f"endpoint {request.endpoint!r} has no AsyncInferenceConfig: it takes "
                "real-time invocations (InvokeEndpoint)",
                field="EndpointName",
            )
        if not 60 <= request.ttl_s <= 21600:
            raise ValidationError(
                "RequestTTLSeconds must be 60 to 21600", field="X-Amzn-SageMaker-RequestTTLSeconds"
            )
        if not 1 <= request.timeout_s <= 3600:
            raise ValidationError(
                "InvocationTimeoutSeconds must be 1 to 3600",
                field="X-Amzn-SageMaker-InvocationTimeoutSeconds",
            )
        if request.input_location.startswith(("https://", "http://")):
            raise ValidationError(
                "InputLocation must be an s3:// or file:// URI (sluice fetches nothing from "
                "the web on a request's behalf)",
                field=INPUT_FIELD,
            )
        if self.objects.remote(request.input_location, INPUT_FIELD) is None:
            # A local input: the path rules apply now (and to the real path when the worker
            # opens it); whether it exists is checked when the request runs (as SageMaker
            # does).
            self.objects.plausible(request.input_location, INPUT_FIELD)
        inference_id = request.inference_id or str(uuid.uuid4())
        name = str(uuid.uuid4())
        output = f"{config.output_path.rstrip('/')}/{name}.out"
        failure = (
            f"{config.failure_path.rstrip('/')}/{name}-error.out" if config.failure_path else None
        )
        received = utcnow()
        payload = {
            "endpoint": request.endpoint,
            "input_location": request.input_location,
            "content_type": request.content_type,
            "accept": request.accept,
            "custom_attributes": request.custom_attributes,
            "timeout_s": request.timeout_s,
            "ttl_s": request.ttl_s,
            "output_location": output,
            "failure_location": failure,
            "received_at": received.isoformat(),
        }
        item, created = await self._enqueue.submit(
            NewItem(
                queue_name(request.endpoint),
                inference_id,
                payload,
                request.priority,
                received + timedelta(seconds=request.ttl_s),
            )
        )
        if created:
            self.waiting.add(request.endpoint)
            self.arrived.setdefault(request.endpoint, time.monotonic())
            self.wake.set()
        return Accepted(
            inference_id,
            item.payload["output_location"],
            item.payload["failure_location"],
            item,
            created,
        )

    def status(self, endpoint: str, inference_id: str) -> tuple[WorkItem, int | None]:
        """The request and, while it waits, how many are ahead of it."""
        item = self.queue.get(queue_name(endpoint), inference_id)
        if item is None:
            raise NotFound(
                f"no async invocation {inference_id!r} on endpoint {endpoint!r}",
                field="InferenceId",
            )
        return item, self.queue.position(item)

    def cancel(self, endpoint: str, inference_id: str) -> WorkItem:
        """Cancel a request that has not started; a running or finished one is refused."""
        item = self.queue.cancel(queue_name(endpoint), inference_id)
        if item is None:
            raise NotFound(
                f"no async invocation {inference_id!r} on endpoint {endpoint!r}",
                field="InferenceId",
            )
        if item.status is not WorkStatus.CANCELLED:
            raise ValidationError(
                f"async invocation {inference_id!r} is {item.status.value}: only a queued "
                "request can be cancelled",
                field="InferenceId",
            )
        return item

    def fetch_output(self, location: str) -> Path:
        """A local path holding an output or failure object this service wrote."""
        path = self.objects.fetch(location, "OutputLocation")
        if not path.is_file():
            raise NotFound(f"{location!r} is gone", field="OutputLocation")
        return path

    def backlog(self, endpoint: str) -> tuple[int, int, datetime | None]:
        return self.queue.backlog(queue_name(endpoint))

    # -- the dispatcher

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="async dispatcher")

    async def close(self) -> None:
        """Stop claiming; requests in flight are abandoned to their leases (another server,
        or this one after a restart, runs them again)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        tasks = [t for running in self.in_flight.values() for t in running.values()]
        tasks += [t for t in self.scaling.values() if not t.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # The writer thread stays (idle): a status read or a restart may still use it.

    async def _db(self, call: Callable[..., T], *args: Any) -> T:
        """Run a queue operation on the writer thread (behind any request being accepted)."""
        return await asyncio.get_running_loop().run_in_executor(
            self._writer.background, functools.partial(call, *args)
        )

    async def _run(self) -> None:
        taken = await self._db(self.queue.take_back_from_the_gone, QUEUE_PREFIX, self.owner)
        if taken:
            log.info("async: %d request(s) of a stopped server run again", taken)
        renew_every = self.settings.async_lease_s / 3
        renewed = time.monotonic()
        pruned = measured = 0.0
        polled = True
        while True:
            try:
                self.wake.clear()
                now = time.monotonic()
                measure = now - measured >= 1.0
                if measure:
                    measured = now
                for endpoint, table in list(self.router.tables.items()):
                    if table.asynchronous is not None:
                        if polled or not self._gathering(endpoint, now):
                            await self._fill(endpoint, table)
                        if measure or (endpoint in self.waiting and _cold(table)):
                            await self._measure(endpoint, table)  # (a cold one wakes)
                self.waiting.clear()
                if now - renewed >= renew_every:
                    renewed = now
                    await self._renew()
                if now - pruned >= 3600:
                    pruned = now
                    cutoff = utcnow() - timedelta(hours=self.settings.async_retention_hours)
                    await self._db(self.queue.prune, QUEUE_PREFIX, cutoff)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the dispatcher must outlive a bad moment
                log.exception("async dispatcher")
            polled = not await wait_at_most(self.wake, self._until_next_look())

    def _gathering(self, endpoint: str, now: float) -> bool:
        """Whether an endpoint's new requests wait a moment for more to go with them: when
        its queue was empty at the last claim (nothing else waits for the claim) and its
        first new request came less than `async_gather_s` ago. Claiming, sending, answering
        and committing a few dozen requests together costs a fraction of doing it one by one,
        which leaves the machine to accepting requests."""
        first = self.arrived.get(endpoint)
        return endpoint in self.drained and (
            first is None or now - first < self.settings.async_gather_s
        )

    def _until_next_look(self) -> float:
        """Seconds until the dispatcher looks again unless woken: the poll, or sooner when
        gathered requests are due."""
        wait = self.settings.async_poll_s
        now = time.monotonic()
        for endpoint, first in self.arrived.items():
            if endpoint in self.drained:
                wait = min(wait, first + self.settings.async_gather_s - now)
        return max(wait, 0.0)

    def capacity(self, table: RouteTable) -> int:
        config = table.asynchronous
        assert config is not None
        per_instance = (
            config.max_concurrent_per_instance or self.settings.async_concurrency_per_instance
        )
        instances = sum(
            route.backend.instance_count for route in table.variants if route.weight > 0
        )
        return per_instance * instances

    async def _fill(self, endpoint: str, table: RouteTable) -> None:
        """Claim as many requests as there is room for, once there is room for a quarter
        of the capacity (a claim serves many; the requests still waiting at the worker
        keep it busy meanwhile), CLAIM_AT_MOST at a time (a request being accepted waits
        for at most one such claim)."""
        running = self.in_flight.setdefault(endpoint, {})
        capacity = self.capacity(table)
        while (free := capacity - len(running)) >= max(1, capacity // 4):
            wanted = min(free, CLAIM_AT_MOST)
            self.arrived.pop(endpoint, None)  # what came so far goes in this claim
            items = await self._db(
                self.queue.claim,
                queue_name(endpoint),
                self.owner,
                self.settings.async_lease_s,
                wanted,
            )
            for item in items:
                task = asyncio.create_task(self._process(endpoint, item), name=f"async {item.key}")
                running[item.id] = task
                task.add_done_callback(functools.partial(self._done, endpoint, item.id))
            if len(items) < wanted:
                self.drained.add(endpoint)
                return
            self.drained.discard(endpoint)

    async def _measure(self, endpoint: str, table: RouteTable) -> None:
        queued, running, oldest = await self._db(self.backlog, endpoint)
        instances = sum(route.backend.instance_count for route in table.variants)
        if self.on_backlog is not None:
            age = (utcnow() - oldest).total_seconds() if oldest is not None else 0.0
            self.on_backlog(endpoint, queued, running, age, instances)
        self._size(endpoint, queued + running > 0, _cold(table), instances)

    def _size(self, endpoint: str, busy: bool, cold: bool, instances: int) -> None:
        """Wake an endpoint that has work and no instance; rest one idle long enough."""
        task = self.scaling.get(endpoint)
        if task is not None and not task.done():
            return
        now = time.monotonic()
        if busy:
            self.idle_since.pop(endpoint, None)
            failed = self.wake_failed.get(endpoint)
            if failed is not None and now - failed < WAKE_RETRY_S:
                return
            if cold and self.wake_endpoint is not None:
                self._scale_in_background(endpoint, self.wake_endpoint, "waking")
        elif instances and self.rest_endpoint is not None:
            since = self.idle_since.setdefault(endpoint, now)
            if now - since >= self.settings.async_idle_stop_s:
                self._scale_in_background(endpoint, self.rest_endpoint, "resting")

    def _scale_in_background(
        self, endpoint: str, scale: Callable[[str], Awaitable[bool]], doing: str
    ) -> None:
        async def run() -> None:
            try:
                if await scale(endpoint):
                    log.info("async endpoint %s: %s done", endpoint, doing)
                    self.wake_failed.pop(endpoint, None)
                    self.idle_since.pop(endpoint, None)
                    self.wake.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the queue waits; tried again later
                log.error("async endpoint %s: %s failed: %s", endpoint, doing, exc)
                self.wake_failed[endpoint] = time.monotonic()

        self.scaling[endpoint] = asyncio.create_task(run(), name=f"async {doing} {endpoint}")

    def _done(self, endpoint: str, item_id: int, _: asyncio.Task[None]) -> None:
        self.in_flight.get(endpoint, {}).pop(item_id, None)
        self.wake.set()  # room for another

    async def _renew(self) -> None:
        ids = [i for running in self.in_flight.values() for i in running]
        if ids:
            await self._db(self.queue.renew, ids, self.owner, self.settings.async_lease_s)

    async def _process(self, endpoint: str, item: WorkItem) -> None:
        p = item.payload
        received = datetime.fromisoformat(p["received_at"])
        queued_s = (utcnow() - received).total_seconds()
        started = time.perf_counter()
        variant = ""
        if item.expires_at is not None and utcnow() > item.expires_at and item.attempts == 1:
            await self._fail(
                item,
                WorkStatus.EXPIRED,
                f"Request expired: it waited in the queue longer than RequestTTLSeconds "
                f"({p['ttl_s']} s)",
                variant,
                queued_s,
                0.0,
            )
            return
        try:
            table = self.router.get(endpoint)
            route = table.pick()
            variant = route.name
            # The worker checks both paths against the policy, reads, answers and puts the
            # answer in place, on disk; the gateway touches no file on this path.
            home, roots = self._policy
            request = FileRequest(
                input=str(await self._input_path(p["input_location"], endpoint, variant)),
                output=str(self.objects.named(p["output_location"], "S3OutputPath")),
                content_type=p["content_type"],
                accept=p["accept"],
                max_input_bytes=self.settings.async_max_input_bytes,
                home=home,
                roots=roots,
                sweep=item.attempts > 1,
            )
            content_type = await route.backend.invoke_file(request, p["timeout_s"])
            key = self.objects.remote(p["output_location"], "S3OutputPath")
            if key is not None:
                await self._upload(Path(request.output), key, endpoint, variant)
        except (WorkerUnavailable, Restoring, WorkerDied, UploadFailed) as exc:
            # Nothing ran, the worker died under it, or S3 did not take the answer: worth
            # another try, later.
            await self._retry(item, exc.message, variant, queued_s, time.perf_counter() - started)
            return
        except SluiceError as exc:
            if exc.field == INPUT_FIELD:
                self._transfer(endpoint, variant, "download", None)
            await self._fail(
                item,
                WorkStatus.FAILED,
                _failure_text(exc),
                variant,
                queued_s,
                time.perf_counter() - started,
            )
            return
        processing_s = time.perf_counter() - started
        result = {
            "output_location": p["output_location"],
            "content_type": content_type,
            "variant": variant,
            "processing_s": round(processing_s, 6),
        }
        if await self._finish.submit(Outcome(item.id, self.owner, WorkStatus.SUCCEEDED, result)):
            self._outcome(endpoint, variant, "succeeded", queued_s, processing_s)
            self._notify_success(item, variant, content_type, Path(request.output))
        else:
            log.warning("async invocation %s finished after its lease passed on", item.key)

    @functools.cached_property
    def _policy(self) -> tuple[str | None, tuple[str, ...]]:
        """The server's path policy as a worker is told it: its home and allowed roots."""
        policy = self.objects.policy
        if policy is None:
            return None, ()
        return str(policy.home), tuple(str(root) for root in policy.allowed)

    async def _input_path(self, location: str, endpoint: str, variant: str) -> Path:
        """The input's local path: as named (the worker checks it), or a fresh download
        when it is in S3."""
        if self.objects.remote(location, INPUT_FIELD) is None:
            return self.objects.named(location, INPUT_FIELD)
        started = time.perf_counter()
        path = await asyncio.to_thread(self.objects.fetch, location, INPUT_FIELD)
        self._transfer(endpoint, variant, "download", time.perf_counter() - started)
        return path

    async def _upload(self, output: Path, key: str, endpoint: str, variant: str) -> None:
        started = time.perf_counter()
        try:
            await asyncio.to_thread(self.objects.upload, output, key)
        except (OSError, SluiceError) as exc:
            self._transfer(endpoint, variant, "upload", None)
            raise UploadFailed(f"S3 did not take the answer ({key}): {exc}") from exc
        self._transfer(endpoint, variant, "upload", time.perf_counter() - started)

    def _transfer(self, endpoint: str, variant: str, kind: str, seconds: float | None) -> None:
        if self.on_transfer is not None:
            self.on_transfer(endpoint, variant, kind, seconds)

    async def _retry(
        self, item: WorkItem, reason: str, variant: str, queued_s: float, processing_s: float
    ) -> None:
        if item.attempts >= self.settings.async_max_attempts:
            await self._fail(
                item,
                WorkStatus.FAILED,
                f"{reason} (gave up after {item.attempts} attempts)",
                variant,
                queued_s,
                processing_s,
            )
            return
        delay = self.settings.async_retry_backoff_s * 2 ** (item.attempts - 1)
        log.info("async invocation %s: %s; retried in %.1f s", item.key, reason, delay)
        await self._db(self.queue.retry, item.id, self.owner, delay, reason)

    async def _fail(
        self,
        item: WorkItem,
        status: WorkStatus,
        reason: str,
        variant: str,
        queued_s: float,
        processing_s: float,
    ) -> None:
        p = item.payload
        location = p["failure_location"] or p["output_location"].removesuffix(".out") + "-error.out"
        try:
            await self._write_failure(location, reason)
        except (OSError, SluiceError) as exc:
            log.error("async invocation %s: cannot write its failure: %s", item.key, exc)
        result = {"failure_location": location, "variant": variant}
        if await self._finish.submit(Outcome(item.id, self.owner, status, result, reason)):
            outcome = "expired" if status is WorkStatus.EXPIRED else "failed"
            self._outcome(p["endpoint"], variant, outcome, queued_s, processing_s)
            self._notify_error(item, variant, reason, location)

    async def _write_failure(self, location: str, reason: str) -> None:
        """The failure object, in place and on disk (then in S3 when it is configured)."""
        final = self.objects.writable(location, "S3FailurePath")

        def write() -> None:
            final.parent.mkdir(parents=True, exist_ok=True)
            sweep_leftovers(final)
            staging = staging_for(final)
            try:
                staging.write_text(reason)
                os.replace(staging, final)
            finally:
                staging.unlink(missing_ok=True)
            sync_to_disk([final])
            key = self.objects.remote(location, "S3FailurePath")
            if key is not None:
                self.objects.upload(final, key)

        await asyncio.to_thread(write)

    def _outcome(
        self, endpoint: str, variant: str, outcome: str, queued_s: float, processing_s: float
    ) -> None:
        if self.on_outcome is not None:
            self.on_outcome(endpoint, variant, outcome, queued_s, processing_s)

    # -- notifications, in SageMaker's format, wrapped as SNS delivers them

    def _notify_success(
        self, item: WorkItem, variant: str, content_type: str, output: Path
    ) -> None:
        config = self._config(item)
        if config is None or not config.success_topic:
            return
        p = item.payload
        message = self._message(item, "Completed")
        message["responseParameters"] = {
            "contentType": content_type,
            "outputLocation": p["output_location"],
        }
        if "SUCCESS_NOTIFICATION_TOPIC" in config.include_response_in:
            with contextlib.suppress(OSError):
                if output.stat().st_size <= INLINE_RESPONSE_LIMIT:
                    message["responseBody"] = {
                        "content": output.read_text(errors="replace"),
                        "message": "Response body included",
                        "encoding": "UTF-8",
                    }
        self._send(item, variant, config.success_topic, message)

    def _notify_error(self, item: WorkItem, variant: str, reason: str, location: str) -> None:
        config = self._config(item)
        if config is None or not config.error_topic:
            return
        message = self._message(item, "Failed")
        message["failureReason"] = reason
        message["responseParameters"] = {"failureLocation": location}
        self._send(item, variant, config.error_topic, message)

    def _config(self, item: WorkItem) -> AsyncConfig | None:
        table = self.router.tables.get(item.payload["endpoint"])
        return table.asynchronous if table is not None else None

    def _message(self, item: WorkItem, status: str) -> dict[str, Any]:
        p = item.payload
        return {
            "awsRegion": self.settings.aws_region,
            "eventTime": utcnow().isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "receivedTime": p["received_at"].replace("+00:00", "Z"),
            "invocationStatus": status,
            "requestParameters": {
                "contentType": p["content_type"],
                "endpointName": p["endpoint"],
                "inputLocation": p["input_location"],
            },
            "inferenceId": item.key,
            "eventVersion": "1.0",
            "eventSource": "aws:sagemaker",
            "eventName": "InferenceResult",
        }

    def _send(self, item: WorkItem, variant: str, topic: str, message: dict[str, Any]) -> None:
        try:
            url = self.sink_of(topic, "SNS topic")
        except ValidationError as exc:
            log.warning("async notification not sent: %s", exc.message)
            self._transfer(item.payload["endpoint"], variant, "notification", None)
            return

        def delivered(outcome: str) -> None:
            if outcome != "delivered":
                self._transfer(item.payload["endpoint"], variant, "notification", None)

        self.notify(
            url,
            {
                "Type": "Notification",
                "MessageId": str(uuid.uuid4()),
                "TopicArn": topic,
                "Subject": None,
                "Message": json.dumps(message),
                "Timestamp": utcnow().isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "SignatureVersion": "1",
            },
            delivered,
        )


def _cold(table: RouteTable) -> bool:
    """Some variant that takes traffic runs no instance."""
    return any(r.weight > 0 and r.backend.instance_count == 0 for r in table.variants)


class UploadFailed(SluiceError):
    """S3 did not take an answer (retried like a worker that was unavailable)."""

    code = "ServiceUnavailable"
    status = 503


def _failure_text(exc: SluiceError) -> str:
    if isinstance(exc, ModelError):
        return (
            f"Received server error ({exc.original_status}) from the model with message "
            f'"{exc.message}"'
        )
    return f"{exc.code}: {exc.message}"
