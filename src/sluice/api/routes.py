"""One handler per operation: parse, call a service, shape the answer. No logic here."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from sluice import __version__
from sluice.api.async_routes import async_router
from sluice.api.dashboard_routes import dashboard_router
from sluice.api.monitoring_routes import monitoring_router
from sluice.api.pipeline_routes import pipeline_router
from sluice.api.registry_routes import registry_router
from sluice.api.schemas import (
    AlarmIn,
    AlarmOut,
    AlarmTransitionOut,
    DeploymentOut,
    EndpointConfigCreate,
    EndpointConfigOut,
    EndpointCreate,
    EndpointOut,
    ErrorOut,
    ExperimentCreate,
    ExperimentOut,
    ExperimentStop,
    ExperimentUpdate,
    FleetOut,
    LabelsAccepted,
    LiveOut,
    MetricsIn,
    ModelCreate,
    ModelOut,
    StoredId,
    UpdateEndpointIn,
    UploadOut,
    WeightsUpdate,
)
from sluice.api.transform_routes import transform_router
from sluice.control.alarms import AlarmService, MetricPoint
from sluice.control.async_inference import AsyncInference
from sluice.control.deployments import DeploymentService
from sluice.control.endpoints import EndpointService
from sluice.control.experiment_reports import ExperimentReports
from sluice.control.experiments import ExperimentService
from sluice.control.jobs import JobService
from sluice.control.labels import LabelStore, parse_labels, parse_outcomes
from sluice.control.lineage import LineageService
from sluice.control.metric_history import MetricHistory
from sluice.control.monitoring import MonitoringService
from sluice.control.pipelines import PipelineService
from sluice.control.registry import RegistryService
from sluice.control.transforms import TransformService
from sluice.control.uploads import UploadStore
from sluice.entities import AsyncConfig
from sluice.errors import SluiceError, ValidationError
from sluice.runtimes.container_manifest import DIRECT, SERIAL, ContainerDef
from sluice.store.metric_repo import MetricRepository

LABELS_DOC: dict[str, Any] = {
    "requestBody": {
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "application/jsonlines": {"schema": {"type": "string"}},
            "text/csv": {"schema": {"type": "string"}},
        }
    }
}
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut},
    404: {"model": ErrorOut},
    409: {"model": ErrorOut},
}


def build_api(
    service: EndpointService,
    deployments: DeploymentService,
    alarms: AlarmService,
    labels: LabelStore,
    experiments: ExperimentService,
    reports: ExperimentReports,
    registry: RegistryService,
    lineage: LineageService,
    monitoring: MonitoringService,
    uploads: UploadStore,
    asynchronous: AsyncInference,
    async_inputs: UploadStore,
    transforms: TransformService,
    jobs: JobService,
    pipelines: PipelineService,
    history: MetricHistory,
    metric_repo: MetricRepository,
    stopping: asyncio.Event,
    max_label_bytes: int = 100 * 1024 * 1024,
) -> FastAPI:
    api = FastAPI(
        title="sluice",
        version=__version__,
        openapi_url="/openapi.json",
        docs_url=None,  # the dashboard's API page (#/docs) serves it, with no CDN
        redoc_url=None,
    )
    router = APIRouter(responses=ERRORS)

    @router.post("/models", status_code=201, tags=["models"])
    async def create_model(body: ModelCreate) -> ModelOut:
        if body.package is not None:
            made = body.artifact is not None or body.runtime or body.image or body.environment
            if made or body.multi_model or body.containers is not None:
                raise ValidationError(
                    "give exactly one of artifact and package: a model made from a package "
                    "takes its artifact, runtime, image and environment from it",
                    field="package",
                )
            return ModelOut.of(await registry.create_model(body.name, body.package))
        if body.containers is not None:
            if body.artifact is not None or body.runtime or body.multi_model:
                raise ValidationError(
                    "give containers or an artifact, not both: each container names its "
                    "own artifact",
                    field="containers",
                )
            containers = [
                ContainerDef(c.hostname, c.artifact, c.image, c.environment)
                for c in body.containers
            ]
            mode = SERIAL if body.mode == "serial" else DIRECT
            return ModelOut.of(await service.create_containers_model(body.name, containers, mode))
        if body.artifact is None:
            raise ValidationError("artifact (or package) is required", field="artifact")
        return ModelOut.of(
            await service.create_model(
                body.name,
                body.artifact,
                body.runtime,
                body.image,
                body.environment,
                multi_model=body.multi_model,
            )
        )

    @router.post(
        "/uploads",
        status_code=201,
        tags=["models"],
        openapi_extra={
            "requestBody": {
                "content": {
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
                }
            }
        },
    )
    async def upload(request: Request) -> UploadOut:
        """A model artifact (a tar archive) from the client's disk; name the returned `uri`
        as a model's or package's artifact. `sluice.Client` and the CLI upload local paths
        this way on their own."""
        return UploadOut(**asdict(await uploads.receive(request.stream())))

    @router.get("/models", tags=["models"])
    def list_models() -> list[ModelOut]:
        return [ModelOut.of(m) for m in service.list_models()]

    @router.get("/models/{name}", tags=["models"])
    def get_model(name: str) -> ModelOut:
        return ModelOut.of(service.get_model(name))

    @router.delete("/models/{name}", status_code=204, tags=["models"])
    def delete_model(name: str) -> Response:
        service.delete_model(name)
        return Response(status_code=204)

    @router.post("/endpoint-configs", status_code=201, tags=["endpoint configs"])
    def create_endpoint_config(body: EndpointConfigCreate) -> EndpointConfigOut:
        config = body.to_entity()
        settings = AsyncConfig.from_details(config.details)
        if settings is not None:
            asynchronous.check_config(settings)
        return EndpointConfigOut.of(service.create_endpoint_config(config))

    @router.get("/endpoint-configs", tags=["endpoint configs"])
    def list_endpoint_configs() -> list[EndpointConfigOut]:
        return [EndpointConfigOut.of(c) for c in service.list_endpoint_configs()]

    @router.get("/endpoint-configs/{name}", tags=["endpoint configs"])
    def get_endpoint_config(name: str) -> EndpointConfigOut:
        return EndpointConfigOut.of(service.get_endpoint_config(name))

    @router.delete("/endpoint-configs/{name}", status_code=204, tags=["endpoint configs"])
    def delete_endpoint_config(name: str) -> Response:
        service.delete_endpoint_config(name)
        return Response(status_code=204)

    @router.post("/endpoints", status_code=201, tags=["endpoints"])
    async def create_endpoint(body: EndpointCreate) -> EndpointOut:
        return EndpointOut.of(await service.create_endpoint(body.name, body.config))

    @router.get("/endpoints", tags=["endpoints"])
    async def list_endpoints() -> list[EndpointOut]:
        return [EndpointOut.of(ep) for ep in service.list_endpoints()]

    @router.get("/endpoints/{name}", tags=["endpoints"])
    async def get_endpoint(name: str) -> EndpointOut:
        return EndpointOut.of(service.get_endpoint(name))

    @router.put("/endpoints/{name}/weights", tags=["endpoints"])
    async def update_weights(name: str, body: WeightsUpdate) -> EndpointOut:
        return EndpointOut.of(await service.update_capacity(name, body.weights, body.instances))

    @router.post("/endpoints/{name}/deployments", status_code=201, tags=["deployments"])
    async def update_endpoint(name: str, body: UpdateEndpointIn) -> DeploymentOut:
        """Move the endpoint to another endpoint config under a deployment policy."""
        return DeploymentOut.of(
            await deployments.update_endpoint(name, body.config, body.deployment_config)
        )

    @router.get("/endpoints/{name}/deployments", tags=["deployments"])
    def list_deployments(name: str) -> list[DeploymentOut]:
        """Every update of the endpoint, newest first."""
        return [DeploymentOut.of(d) for d in deployments.history(name, details=True)]

    @router.post("/endpoints/{name}/cancel-update", tags=["deployments"])
    async def cancel_update(name: str) -> DeploymentOut:
        """Roll back the endpoint's running update, or retry a rollback that failed.

        On the event loop: it wakes the deployment's controller."""
        return DeploymentOut.of(deployments.cancel(name))

    @router.get("/endpoints/{name}/live", tags=["deployments"])
    def live(name: str) -> LiveOut:
        """The split, step, per-fleet figures and alarm states, as of now."""
        view = deployments.live_view(name)
        progress = view.progress
        return LiveOut(
            endpoint=EndpointOut.of(view.endpoint),
            deployment=DeploymentOut.of(view.deployment) if view.deployment else None,
            step_started_at=progress.step_started if progress else None,
            bake_until=progress.bake_until if progress else None,
            checks=[c.to_dict() for c in progress.checks] if progress else [],
            fleets=[
                FleetOut(
                    config=f.config,
                    variant=f.variant,
                    role=f.role,
                    green_share=f.share,
                    window=f.window.summary(),
                )
                for f in view.fleets
            ],
            alarms=[AlarmOut.of(a, alarms.recent(a.name)) for a in view.alarms],
        )

    @router.get("/deployments/{deployment_id}", tags=["deployments"])
    def get_deployment(deployment_id: StoredId) -> DeploymentOut:
        """One update with its steps, events and the transitions of the alarms it watched."""
        return DeploymentOut.of(
            deployments.get(deployment_id), alarms.history(deployment_id=deployment_id)
        )

    @router.put("/alarms/{name}", tags=["alarms"])
    def put_alarm(name: str, body: AlarmIn) -> AlarmOut:
        """Create an alarm, or replace its definition (its state starts over)."""
        return AlarmOut.of(alarms.put(body.to_entity(name)))

    @router.get("/alarms", tags=["alarms"])
    def list_alarms(endpoint: str | None = None) -> list[AlarmOut]:
        return [AlarmOut.of(a, alarms.recent(a.name)) for a in alarms.find(endpoint)]

    @router.get("/alarms/{name}", tags=["alarms"])
    def get_alarm(name: str) -> AlarmOut:
        return AlarmOut.of(alarms.get(name), alarms.recent(name))

    @router.get("/alarms/{name}/history", tags=["alarms"])
    def alarm_history(
        name: str, limit: Annotated[int, Query(ge=1, le=10_000)] = 100
    ) -> list[AlarmTransitionOut]:
        return [AlarmTransitionOut.of(t) for t in alarms.history(name, limit=limit)]

    @router.delete("/alarms/{name}", status_code=204, tags=["alarms"])
    def delete_alarm(name: str) -> Response:
        alarms.delete(name)
        return Response(status_code=204)

    @router.post("/metrics", status_code=204, tags=["alarms"])
    def put_metrics(body: MetricsIn) -> Response:
        """Push values of custom metrics, for alarms to watch."""
        alarms.put_metrics(
            [MetricPoint(m.name, m.value, m.endpoint, m.variant, m.timestamp) for m in body.metrics]
        )
        return Response(status_code=204)

    async def _label_body(name: str, request: Request) -> tuple[bytes, str]:
        service.get_endpoint(name)  # 404 for an unknown endpoint
        size = int(request.headers.get("content-length") or 0)
        if size > max_label_bytes:
            raise ValidationError(
                f"the body is {size:,} bytes; at most {max_label_bytes:,} per post", field="body"
            )
        body = await request.body()
        if len(body) > max_label_bytes:
            raise ValidationError(f"the body is over {max_label_bytes:,} bytes", field="body")
        return body, request.headers.get("content-type", "application/json")

    @router.post("/endpoints/{name}/ground-truth", tags=["labels"], openapi_extra=LABELS_DOC)
    async def post_ground_truth(name: str, request: Request) -> LabelsAccepted:
        """Labels for captured inferences, by inference id: JSON, JSON Lines or CSV.

        A record is {"inference_id", "label"} (a list of labels for a multi-row request)
        or a SageMaker ground-truth record. The whole post is checked before any is kept.
        """
        body, content_type = await _label_body(name, request)
        records = await asyncio.to_thread(parse_labels, body, content_type)
        count = await asyncio.to_thread(labels.put_ground_truth, name, records)
        return LabelsAccepted(accepted=count)

    @router.post("/endpoints/{name}/outcomes", tags=["labels"], openapi_extra=LABELS_DOC)
    async def post_outcomes(name: str, request: Request) -> LabelsAccepted:
        """Business outcomes of inferences ({"inference_id", "name", "value"}), for A/B tests.
        A request with no outcome of a name counts as 0 for it."""
        body, content_type = await _label_body(name, request)
        records = await asyncio.to_thread(parse_outcomes, body, content_type)
        count = await asyncio.to_thread(labels.put_outcomes, name, records)
        return LabelsAccepted(accepted=count)

    @router.post("/experiments", status_code=201, tags=["experiments"])
    def create_experiment(body: ExperimentCreate) -> ExperimentOut:
        """A shadow test: shadows beside a production variant, from its start to its end."""
        return ExperimentOut.of(experiments.create(body.to_spec()))

    @router.get("/experiments", tags=["experiments"])
    def list_experiments(endpoint: str | None = None) -> list[ExperimentOut]:
        return [ExperimentOut.of(x) for x in experiments.find(endpoint)]

    @router.get("/experiments/{name}", tags=["experiments"])
    def get_experiment(name: str) -> ExperimentOut:
        return ExperimentOut.of(experiments.get(name))

    @router.patch("/experiments/{name}", tags=["experiments"])
    async def update_experiment(name: str, body: ExperimentUpdate) -> ExperimentOut:
        return ExperimentOut.of(
            await experiments.update(
                name,
                start=body.start,
                end=body.end,
                description=body.description,
                sampling=body.sampling,
                instances=body.instances,
                destination=body.destination,
            )
        )

    @router.post("/experiments/{name}/start", tags=["experiments"])
    async def start_experiment(name: str) -> ExperimentOut:
        """Start a Created experiment now rather than at its scheduled start."""
        return ExperimentOut.of(await experiments.start(name))

    @router.post("/experiments/{name}/stop", tags=["experiments"])
    async def stop_experiment(name: str, body: ExperimentStop) -> ExperimentOut:
        """Promote, retain or remove each variant, and end the experiment."""
        request = body.to_request(experiments.get(name))
        return ExperimentOut.of(await experiments.stop(name, request))

    @router.delete("/experiments/{name}", status_code=204, tags=["experiments"])
    def delete_experiment(name: str) -> Response:
        experiments.delete(name)
        return Response(status_code=204)

    @router.get("/experiments/{name}/report", tags=["experiments"], response_model=None)
    async def experiment_report(
        name: str, format: str = "json", refresh: bool = False
    ) -> dict[str, Any] | HTMLResponse:
        """The comparison report so far (final once the experiment has ended): JSON
        (schema sluice.report/1) or a self-contained HTML page (format=html)."""
        if format == "html":
            return HTMLResponse(await reports.html(name, refresh))
        if format != "json":
            raise ValidationError("format is json or html", field="format")
        return await reports.report(name, refresh)

    @router.delete("/endpoints/{name}", status_code=204, tags=["endpoints"])
    async def delete_endpoint(name: str) -> Response:
        await service.delete_endpoint(name)
        return Response(status_code=204)

    api.include_router(router)
    api.include_router(registry_router(registry, lineage, ERRORS))
    api.include_router(monitoring_router(monitoring, ERRORS))
    api.include_router(async_router(asynchronous, async_inputs, ERRORS))
    api.include_router(transform_router(transforms, ERRORS))
    api.include_router(pipeline_router(jobs, pipelines, ERRORS))
    api.include_router(
        dashboard_router(service, alarms, history, metric_repo, transforms, ERRORS, stopping)
    )

    @api.get("/docs", include_in_schema=False)
    async def docs() -> RedirectResponse:
        return RedirectResponse("/ui/#/docs")

    @api.exception_handler(SluiceError)
    async def sluice_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, SluiceError)
        return JSONResponse(exc.to_dict(), status_code=exc.status)

    @api.exception_handler(RequestValidationError)
    async def invalid_body(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        field = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or None
        message = f"{field}: {first['msg']}" if field else str(first["msg"])
        return JSONResponse(
            {"error": "ValidationError", "message": message, "field": field}, status_code=400
        )

    return api
