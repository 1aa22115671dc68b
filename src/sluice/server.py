"""Composition root: settings, store, services, backend and gateway in one ASGI app."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import FrameType

from starlette.applications import Starlette

from sluice import dashboard
from sluice.api.routes import build_api
from sluice.backends.base import Backend
from sluice.backends.local import SOCKET_DIR_NOTE, LocalBackend
from sluice.compat import open_inference
from sluice.compat.autoscaling.api import AutoscalingApi
from sluice.compat.cloudwatch.alarms import CloudWatchAlarms
from sluice.compat.cloudwatch.api import CloudWatchApi
from sluice.compat.cloudwatch.metrics import CloudWatchMetrics
from sluice.compat.logs import LogsApi
from sluice.compat.sagemaker.arns import Arns
from sluice.compat.sagemaker.control import ControlPlane
from sluice.compat.sagemaker.idempotency import Idempotency
from sluice.compat.sagemaker.operations import Services
from sluice.compat.sagemaker.pipeline_steps import SageMakerSteps
from sluice.compat.sagemaker.runtime import RuntimeHandler
from sluice.control.alarms import AlarmService
from sluice.control.async_inference import AsyncInference
from sluice.control.autoscaling import Autoscaler
from sluice.control.deployments import DeploymentService
from sluice.control.endpoints import EndpointService
from sluice.control.experiment_reports import ExperimentReports
from sluice.control.experiments import ExperimentService
from sluice.control.gateways import Gateways
from sluice.control.jobs import JobService
from sluice.control.labels import LabelStore
from sluice.control.leadership import Leadership
from sluice.control.lineage import LineageService
from sluice.control.metric_history import MetricHistory
from sluice.control.mirror import Mirror
from sluice.control.monitoring import MonitoringService
from sluice.control.pipelines import PipelineService
from sluice.control.registry import RegistryService
from sluice.control.tags import TagService
from sluice.control.transforms import TransformService
from sluice.control.uploads import UploadStore
from sluice.control.webhooks import Notifier, WebhookPolicy
from sluice.entities import JobKind, ResourceKind
from sluice.errors import ValidationError
from sluice.gateway.app import SluiceApp, build_app
from sluice.gateway.capture import CaptureWriter
from sluice.gateway.capture_uploads import CaptureUploads
from sluice.gateway.invoke import Gateway
from sluice.gateway.metrics import Metrics
from sluice.gateway.routing import Router
from sluice.security.credentials import Credentials, parse_principals, secret_file
from sluice.security.guard import Guard, HostCheck, is_loopback
from sluice.settings import Settings
from sluice.store.alarm_repo import AlarmRepository
from sluice.store.artifacts import ArtifactStore
from sluice.store.db import open_database
from sluice.store.deployment_repo import DeploymentRepository
from sluice.store.experiment_repo import ExperimentRepository
from sluice.store.idempotency_repo import IdempotencyRepository
from sluice.store.job_repo import JobRepository
from sluice.store.lease_repo import LeaseRepository
from sluice.store.metric_repo import MetricRepository
from sluice.store.monitoring_repo import MonitoringRepository
from sluice.store.objects import ObjectStore
from sluice.store.pipeline_repo import PipelineRepository
from sluice.store.registry_repo import RegistryRepository
from sluice.store.repos import Repository
from sluice.store.scaling_repo import ScalingRepository
from sluice.store.serving_history import ServingHistory
from sluice.store.tag_repo import TagRepository
from sluice.store.transform_repo import TransformRepository
from sluice.store.work_queue import WorkQueue

log = logging.getLogger("sluice.server")


@dataclass
class Server:
    settings: Settings
    app: SluiceApp
    service: EndpointService
    deployments: DeploymentService
    alarms: AlarmService
    experiments: ExperimentService
    monitoring: MonitoringService
    pipelines: PipelineService


def open_credentials(settings: Settings) -> Credentials | None:
    """The server's principals, or None when authentication is off (--insecure-local,
    which only a loopback server may use). A server with no credentials at all writes an
    admin principal to its credentials file."""
    if settings.insecure_local:
        if not is_loopback(settings.host):
            raise ValidationError(
                f"--insecure-local turns authentication off, so the server must listen on "
                f"loopback only, not {settings.host!r}",
                field="insecure_local",
            )
        log.warning("authentication is OFF (--insecure-local): anyone on this machine may "
                    "deploy models, and a model is code")  # fmt: skip
        return None
    configured = parse_principals(settings.principals, "setting principals")
    configured += parse_principals(
        {
            f"aws-key-{key}": {"role": "admin", "aws_access_key_id": key,
                               "aws_secret_access_key": secret}
            for key, secret in settings.aws_access_keys.items()
        },
        "setting aws_access_keys",
    )  # fmt: skip
    credentials = Credentials(settings.resolved_credentials_file, configured)
    if credentials.ensure_some() is not None:
        log.warning(
            "no credentials were configured: an admin principal (bearer token and AWS key "
            "pair) was written to %s; `sluice credentials show --home %s` prints it",
            credentials.path,
            settings.home,
        )
    return credentials


def build_server(settings: Settings) -> Server:
    settings.home.mkdir(parents=True, exist_ok=True)
    guard = Guard(
        open_credentials(settings),
        HostCheck.for_server(settings.host, settings.allowed_hosts),
        settings.max_payload_bytes,
        settings.max_label_post_bytes,
        settings.max_request_bytes,
        settings.metrics_public,
    )
    database = open_database(settings.resolved_database_url)
    database.checkpoint_apart()
    repo = Repository(database)
    metrics = Metrics()
    router = Router()
    objects = ObjectStore.from_settings(settings, guarded=True)
    uploads = (
        CaptureUploads(
            objects,
            settings.home / "capture-uploads.journal",
            on_outcome=lambda outcome: metrics.capture_uploads.labels(outcome).inc(),
        )
        if objects.s3_configured
        else None
    )
    capture = CaptureWriter(
        settings.capture_flush_interval_s,
        settings.capture_buffer_records,
        uploads,
        settings.capture_upload_interval_s,
        settings.capture_fsync,
        settings.capture_retention_hours,
        settings.capture_max_bytes,
    )
    backend: Backend
    if settings.backend == "ray":
        from sluice.backends.ray_cluster import RayBackend

        backend = RayBackend(settings)
    else:
        backend = LocalBackend(settings, settings.home / SOCKET_DIR_NOTE)
    service = EndpointService(
        repo,
        ArtifactStore(settings.models_dir, objects, settings.max_artifact_bytes),
        backend,
        router,
        capture,
        metrics,
        settings,
    )
    usage = metrics.watch_workers(service.worker_usage)
    notifier = Notifier(
        settings.webhook_attempts,
        settings.webhook_backoff_s,
        settings.webhook_timeout_s,
        on_outcome=lambda outcome: metrics.webhooks.labels(outcome).inc(),
        policy=WebhookPolicy(settings.webhook_destinations),
        secret=(
            settings.webhook_secret.encode()
            if settings.webhook_secret
            else secret_file(settings.home / "webhook-secret")
        ),
    )
    metric_repo = MetricRepository(database)
    history = MetricHistory(
        metric_repo,
        lambda: list(service.live),
        lambda name: service.fleet_stats(name, shadows=True),
        service.instance_counts,
        usage.read,
        service.tallies,
    )
    alarms = AlarmService(
        AlarmRepository(database),
        service.fleet_stats,
        notifier,
        settings.alarm_tick_s,
        metric_repo,
        history.record,
    )
    metrics.watch_alarms(alarms.state_counts)
    deployments = DeploymentService(
        DeploymentRepository(database), service, alarms, settings.deployment_restart_policy
    )
    autoscaler = Autoscaler(
        ScalingRepository(database),
        service,
        alarms,
        metric_repo,
        settings.aws_region,
        settings.autoscaling_tick_s,
        settings.autoscaling_stable_window_s,
        settings.autoscaling_panic_window_s,
        settings.autoscaling_realtime_scale_to_zero,
    )
    deployments.blockers.append(autoscaler.blocks_update)
    experiments = ExperimentService(
        ExperimentRepository(database), service, deployments, settings.experiment_tick_s
    )
    reports = ExperimentReports(experiments, service, usage.read, settings)
    registry = RegistryService(
        RegistryRepository(database), service, deployments, settings.home / "registry"
    )
    monitoring = MonitoringService(
        MonitoringRepository(database), service, alarms, notifier, metrics, settings
    )
    transforms = TransformService(
        TransformRepository(database),
        WorkQueue(database),
        service.get_model,
        backend,
        objects,
        settings,
        on_chunk=metrics.transform_chunk,
    )
    leases = LeaseRepository(database)
    gateways = Gateways(leases if settings.shared_database else None, settings.lease_term_s)
    cloudwatch_metrics = CloudWatchMetrics(metric_repo)
    jobs = JobService(
        JobRepository(database),
        objects,
        settings,
        gateways,
        on_metrics=lambda job, points: cloudwatch_metrics.put_training_metrics(job.name, points),
    )
    arns = Arns(settings.aws_region, settings.aws_account_id)
    pipelines = PipelineService(
        PipelineRepository(database),
        settings,
        lambda name: arns.of(ResourceKind.PIPELINE, name),
        gateways,
    )
    tags = TagService(
        TagRepository(database),
        {
            ResourceKind.MODEL: service.get_model,
            ResourceKind.ENDPOINT_CONFIG: service.get_endpoint_config,
            ResourceKind.ENDPOINT: service.get_endpoint,
            ResourceKind.INFERENCE_EXPERIMENT: experiments.get,
            ResourceKind.MODEL_PACKAGE_GROUP: registry.get_group,
            ResourceKind.MODEL_PACKAGE: registry.get,
            ResourceKind.MONITORING_SCHEDULE: monitoring.get,
            ResourceKind.DATA_QUALITY_JOB_DEFINITION: monitoring.repo.get_definition,
            ResourceKind.MODEL_QUALITY_JOB_DEFINITION: monitoring.repo.get_definition,
            ResourceKind.TRANSFORM_JOB: transforms.get,
            ResourceKind.PROCESSING_JOB: lambda name: jobs.get(JobKind.PROCESSING, name),
            ResourceKind.TRAINING_JOB: lambda name: jobs.get(JobKind.TRAINING, name),
            ResourceKind.PIPELINE: pipelines.get,
        },
    )
    gateway = Gateway(router, capture)

    def report_backlog(
        endpoint: str, queued: int, running: int, age: float, instances: int
    ) -> None:
        metrics.async_backlog_of(endpoint, queued, running, age, instances)
        history.note_backlog(endpoint, queued, running, age, instances)

    asynchronous = AsyncInference(
        WorkQueue(database),
        router,
        objects,
        notifier.notify,
        notifier.check,
        settings,
        on_outcome=metrics.async_outcome,
        on_backlog=report_backlog,
        on_transfer=metrics.async_transfer,
        wake=service.wake,
        rest=service.rest,
    )

    driving: list[asyncio.Task[None]] = []

    async def lead() -> None:
        """Start what runs on one gateway only (all of it, for a gateway of its own)."""
        if deployments.shared is not None:
            driving.append(asyncio.create_task(deployments.drive(), name="drive updates"))
        alarms.start()
        autoscaler.start()
        await experiments.recover()
        experiments.start_scheduler()
        monitoring.recover()
        monitoring.start_scheduler()
        transforms.recover()
        jobs.recover()
        pipelines.recover()
        if settings.shared_database:
            driving.append(asyncio.create_task(adopt_orphans(), name="adopt orphans"))

    async def adopt_orphans() -> None:
        """Take up, every lease term, the jobs and pipeline executions a gateway that died
        left (others than the leader may die while it leads)."""
        while True:
            await asyncio.sleep(settings.lease_term_s)
            try:
                jobs.recover()
                pipelines.recover()
            except Exception:  # noqa: BLE001 - the database may be back at the next look
                log.exception("jobs and executions left by other gateways: not taken up")

    async def step_down() -> None:
        for task in driving:
            task.cancel()
        await asyncio.gather(*driving, return_exceptions=True)
        driving.clear()
        await transforms.close()
        await pipelines.close()
        await jobs.close()
        await monitoring.close()
        await experiments.close()
        await autoscaler.close()
        await alarms.close()

    shared: SharedDatabase | None = None
    if settings.shared_database:
        holder = gateways.me
        leadership = Leadership(leases, holder, settings.lease_term_s, lead, step_down)
        driven_here = deployments.controllers.__contains__
        shared = SharedDatabase(Mirror(service, deployments.repo, driven_here), leadership)
        deployments.share(leases, holder, settings.lease_term_s, lambda: leadership.held)

    stopping = asyncio.Event()
    """Set as SIGTERM or SIGINT arrives (long-lived streams end then)."""

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        _on_stop_signals(asyncio.get_running_loop(), stopping)
        if service.repo.list_endpoints() or transforms.repo.unfinished():
            backend.warm()  # workers to restore: the template loads while the rest starts
        capture.start()
        notifier.start()
        if settings.metric_history:
            # On every gateway: each records its own traffic, merged in the database.
            history.start()
        if shared is None:
            await deployments.recover()
            await lead()
        else:
            # Every endpoint served here as the database says; the singletons run on the
            # gateway holding the controller lease.
            await gateways.start()
            await shared.mirror.once()
            shared.mirror.start()
            await shared.leadership.start()
        asynchronous.start()
        # Everything alive now lives as long as the server: keep it out of the collector's
        # sweeps, which otherwise walk ~170k start-up objects (tens of ms of p99).
        gc.freeze()
        log.info("sluice is ready (home %s)", settings.home)
        try:
            yield
        finally:
            log.info("stopping: workers, capture, database")
            await asynchronous.close()
            if shared is not None:
                await shared.mirror.close()
                await shared.leadership.close()
            await step_down()
            await gateways.close()  # after its jobs and executions have stopped
            await history.close()
            await reports.close()
            await deployments.close()
            await service.close()
            await notifier.close()
            await capture.close()
            await backend.close()
            database.close()

    sagemaker_services = Services(
        service,
        deployments,
        experiments,
        registry,
        tags,
        arns,
        settings,
        monitoring,
        asynchronous,
        transforms,
        jobs,
        pipelines,
    )
    control_plane = ControlPlane(sagemaker_services, Idempotency(IdempotencyRepository(database)))
    pipelines.actions = SageMakerSteps(
        sagemaker_services, control_plane.model, control_plane.idempotency
    )
    app = build_app(
        guard,
        RuntimeHandler(gateway, settings.max_payload_bytes, arns, asynchronous),
        control_plane,
        CloudWatchApi(
            cloudwatch_metrics,
            CloudWatchAlarms(
                alarms, settings.sns_topics, settings.aws_region, autoscaler.check_actions
            ),
        ),
        AutoscalingApi(autoscaler),
        LogsApi(jobs, settings.aws_region, settings.aws_account_id),
        open_inference.routes(gateway, service),
        build_api(
            service,
            deployments,
            alarms,
            LabelStore(settings.ground_truth_dir, settings.outcomes_dir),
            experiments,
            reports,
            registry,
            LineageService(service, registry, ServingHistory(database), [settings.capture_dir]),
            monitoring,
            UploadStore(settings.home / "uploads", settings.max_artifact_bytes),
            asynchronous,
            UploadStore(
                settings.home / "uploads" / "inputs",
                settings.async_max_input_bytes,
                archives=False,
                setting="async_max_input_bytes",
            ),
            transforms,
            jobs,
            pipelines,
            history,
            metric_repo,
            stopping,
            settings.max_label_post_bytes,
        ),
        dashboard.routes(),
        router,
        metrics,
        lifespan,
    )
    return Server(settings, app, service, deployments, alarms, experiments, monitoring, pipelines)


@dataclass(frozen=True)
class SharedDatabase:
    """What a gateway sharing its database with others runs besides its own work."""

    mirror: Mirror
    leadership: Leadership


def _on_stop_signals(loop: asyncio.AbstractEventLoop, stopping: asyncio.Event) -> None:
    """Set `stopping` when SIGTERM or SIGINT arrives, then let the handler that was there
    (uvicorn's, which stops accepting and waits for open requests) do its part."""
    if threading.current_thread() is not threading.main_thread():
        return
    for number in (signal.SIGINT, signal.SIGTERM):
        previous = signal.getsignal(number)

        def handler(sig: int, frame: FrameType | None, previous: object = previous) -> None:
            loop.call_soon_threadsafe(stopping.set)
            if callable(previous):
                previous(sig, frame)

        signal.signal(number, handler)


def serve(settings: Settings) -> None:
    """Run the server until SIGTERM or SIGINT, then stop cleanly."""
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    server = build_server(settings)
    uvicorn.run(
        server.app,
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="info",
        timeout_graceful_shutdown=int(settings.shutdown_grace_s),
    )
