"""Request and response bodies of the native API; the source of its OpenAPI document."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Path as PathParameter
from pydantic import BaseModel, ConfigDict, Field

from sluice import entities as e
from sluice.control.experiments import ExperimentSpec, StopRequest
from sluice.control.policies import DeploymentConfig
from sluice.control.validation import MAX_ID

StoredId = Annotated[int, PathParameter(ge=1, le=MAX_ID)]
"""A path's numeric id: a stored 64-bit one (so a huge number is a 400, not a 500)."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ContainerIn(Strict):
    hostname: str = Field(description="The container's name (SageMaker's ContainerHostname).")
    artifact: str = Field(description="A directory or model.tar.gz: a path, file:// or s3:// URI.")
    image: str | None = Field(None, description="A container image name, used as a runtime hint.")
    environment: dict[str, str] = Field(default_factory=dict)


class ModelCreate(Strict):
    name: str = Field(description="Unique model name (SageMaker's name rules).")
    artifact: str | None = Field(
        None,
        description="A directory or model.tar.gz: a path, file:// or s3:// URI; with "
        "multi_model, the prefix the models are under.",
    )
    multi_model: bool = Field(
        False,
        description="Serve every model under the artifact prefix, named per request "
        "(X-Amzn-SageMaker-Target-Model), each loaded on first use.",
    )
    containers: list[ContainerIn] | None = Field(
        None,
        description="Several containers instead of one artifact (2 to 15), run in series "
        "(mode serial: an inference pipeline) or named per request (mode direct: "
        "X-Amzn-SageMaker-Target-Container-Hostname).",
    )
    mode: Literal["serial", "direct"] = "serial"
    runtime: str | None = Field(None, description="sklearn, onnx or python; detected if absent.")
    image: str | None = Field(None, description="A container image name, used as a runtime hint.")
    environment: dict[str, str] = Field(default_factory=dict)
    package: str | None = Field(
        None,
        description="Make the model from a registry package instead: GROUP/VERSION or "
        "GROUP@latest-approved (artifact, runtime, image and environment come from it).",
    )


class ModelOut(BaseModel):
    name: str
    artifact: str
    runtime: str
    image: str | None
    environment: dict[str, str]
    created_at: datetime
    package: str | None = None
    """The registry package (GROUP/VERSION) the model was made from."""

    @classmethod
    def of(cls, m: e.Model) -> ModelOut:
        return cls(
            name=m.name,
            artifact=m.artifact_uri,
            runtime=m.runtime,
            image=m.image,
            environment=m.environment,
            created_at=m.created_at,
            package=m.package,
        )


class VariantIn(Strict):
    name: str
    model: str
    weight: float = Field(1.0, ge=0, description="Relative share of production traffic.")
    instances: int = Field(
        1,
        ge=0,
        description="Worker processes serving this variant (0, for an async endpoint only: "
        "none until a request wakes one).",
    )


class ShadowIn(Strict):
    name: str
    model: str
    instances: int = Field(1, ge=1)
    sampling_percentage: int = Field(
        100, ge=0, le=100, description="Share of production requests copied here."
    )


class DataCaptureIn(Strict):
    enabled: bool = True
    sampling_percentage: int = Field(100, ge=0, le=100)
    capture_input: bool = True
    capture_output: bool = True
    destination: str | None = Field(None, description="Directory or file:// URI.")


class AsyncInferenceIn(Strict):
    """SageMaker's AsyncInferenceConfig, flat: an endpoint with it takes only async calls."""

    output_path: str = Field(max_length=512, description="s3:// or file:// folder for answers")
    failure_path: str | None = Field(None, max_length=512, description="Folder for failures")
    max_concurrent_per_instance: int | None = Field(None, ge=1, le=1000)
    success_topic: str | None = Field(None, max_length=256, description="SNS topic ARN")
    error_topic: str | None = Field(None, max_length=256, description="SNS topic ARN")
    include_response_in: list[str] = Field(
        default_factory=list,
        description="SUCCESS_NOTIFICATION_TOPIC and/or ERROR_NOTIFICATION_TOPIC",
    )

    def to_details(self) -> dict[str, Any]:
        notes = {
            k: v
            for k, v in (
                ("SuccessTopic", self.success_topic),
                ("ErrorTopic", self.error_topic),
                ("IncludeInferenceResponseIn", self.include_response_in),
            )
            if v
        }
        output: dict[str, Any] = {"S3OutputPath": self.output_path}
        if self.failure_path:
            output["S3FailurePath"] = self.failure_path
        if notes:
            output["NotificationConfig"] = notes
        document: dict[str, Any] = {"OutputConfig": output}
        if self.max_concurrent_per_instance:
            document["ClientConfig"] = {
                "MaxConcurrentInvocationsPerInstance": self.max_concurrent_per_instance
            }
        return {"AsyncInferenceConfig": document}

    @classmethod
    def of(cls, config: e.AsyncConfig | None) -> AsyncInferenceIn | None:
        if config is None:
            return None
        return cls(
            output_path=config.output_path,
            failure_path=config.failure_path,
            max_concurrent_per_instance=config.max_concurrent_per_instance,
            success_topic=config.success_topic,
            error_topic=config.error_topic,
            include_response_in=list(config.include_response_in),
        )


class EndpointConfigCreate(Strict):
    name: str
    variants: list[VariantIn] = Field(min_length=1)
    shadows: list[ShadowIn] = Field(default_factory=list)
    data_capture: DataCaptureIn | None = None
    sticky_header: str | None = Field(
        None, description="Request header whose value keeps a caller on one variant."
    )
    async_inference: AsyncInferenceIn | None = None

    def to_entity(self) -> e.EndpointConfig:
        variants = [
            e.VariantSpec(v.name, v.model, e.VariantKind.PRODUCTION, v.weight, v.instances)
            for v in self.variants
        ]
        variants += [
            e.VariantSpec(
                s.name, s.model, e.VariantKind.SHADOW, 0.0, s.instances, s.sampling_percentage
            )
            for s in self.shadows
        ]
        capture = e.DataCapture(**self.data_capture.model_dump()) if self.data_capture else None
        details = self.async_inference.to_details() if self.async_inference else {}
        return e.EndpointConfig(
            self.name, tuple(variants), capture, self.sticky_header, details=details
        )


class EndpointConfigOut(BaseModel):
    name: str
    variants: list[VariantIn]
    shadows: list[ShadowIn]
    data_capture: DataCaptureIn | None
    sticky_header: str | None
    async_inference: AsyncInferenceIn | None = None
    created_at: datetime | None

    @classmethod
    def of(cls, c: e.EndpointConfig) -> EndpointConfigOut:
        return cls(
            name=c.name,
            variants=[
                VariantIn(
                    name=v.name,
                    model=v.model_name,
                    weight=v.initial_weight,
                    instances=v.instance_count,
                )
                for v in c.production
            ],
            shadows=[
                ShadowIn(
                    name=v.name,
                    model=v.model_name,
                    instances=v.instance_count,
                    sampling_percentage=v.sampling_percentage,
                )
                for v in c.shadows
            ],
            data_capture=DataCaptureIn(**c.data_capture.to_dict()) if c.data_capture else None,
            sticky_header=c.sticky_header,
            async_inference=AsyncInferenceIn.of(e.AsyncConfig.from_details(c.details)),
            created_at=c.created_at,
        )


class EndpointCreate(Strict):
    name: str
    config: str


class EndpointVariantOut(BaseModel):
    name: str
    model: str
    kind: str
    current_weight: float
    desired_weight: float
    current_instance_count: int
    desired_instance_count: int
    sampling_percentage: int
    status: str


class EndpointOut(BaseModel):
    name: str
    config: str
    status: str
    failure_reason: str | None
    created_at: datetime
    updated_at: datetime
    variants: list[EndpointVariantOut]

    @classmethod
    def of(cls, ep: e.Endpoint) -> EndpointOut:
        return cls(
            name=ep.name,
            config=ep.config_name,
            status=ep.status.value,
            failure_reason=ep.failure_reason,
            created_at=ep.created_at,
            updated_at=ep.updated_at,
            variants=[
                EndpointVariantOut(
                    name=v.name,
                    model=v.model_name,
                    kind=v.kind.value,
                    current_weight=v.current_weight,
                    desired_weight=v.desired_weight,
                    current_instance_count=v.current_instance_count,
                    desired_instance_count=v.desired_instance_count,
                    sampling_percentage=v.sampling_percentage,
                    status=v.status,
                )
                for v in ep.variants
            ],
        )


class WeightsUpdate(Strict):
    weights: dict[str, float] = Field(
        default_factory=dict, description="Production variant name to its new weight."
    )
    instances: dict[str, int] = Field(
        default_factory=dict,
        description="Variant name to its new instance count (reached in the background).",
    )


class UploadOut(BaseModel):
    uri: str = Field(description="Where the server keeps the upload: name it as an artifact.")
    sha256: str
    size_bytes: int


class ErrorOut(BaseModel):
    error: str
    message: str
    field: str | None = None


class UpdateEndpointIn(Strict):
    config: str = Field(description="The endpoint config to move to.")
    deployment_config: DeploymentConfig | None = Field(
        None,
        description="SageMaker's DeploymentConfig (BlueGreenUpdatePolicy or RollingUpdatePolicy, "
        "AutoRollbackConfiguration), plus sluice's ComparativeGuard. Absent: all at once.",
    )


class StepOut(BaseModel):
    index: int
    label: str
    green_shares: dict[str, float]
    bake_s: float
    started_at: datetime
    ended_at: datetime | None
    decision: str | None
    reason: str | None
    fleets: dict[str, Any]
    alarms: dict[str, str]
    checks: list[dict[str, Any]]


class EventOut(BaseModel):
    at: datetime
    kind: str
    message: str
    data: dict[str, Any]


class AlarmTransitionOut(BaseModel):
    alarm: str
    at: datetime
    old_state: str
    new_state: str
    reason: str
    scope: str
    deployment_id: int | None

    @classmethod
    def of(cls, t: e.AlarmTransition) -> AlarmTransitionOut:
        return cls(
            alarm=t.alarm,
            at=t.at,
            old_state=t.old_state.value,
            new_state=t.new_state.value,
            reason=t.reason,
            scope=t.scope,
            deployment_id=t.deployment_id,
        )


class DeploymentOut(BaseModel):
    id: int
    endpoint: str
    from_config: str
    to_config: str
    kind: str
    """ALL_AT_ONCE, CANARY, LINEAR, ROLLING or NONE."""
    state: str
    reason: str | None
    step_index: int
    plan: list[dict[str, Any]]
    policy: dict[str, Any]
    created_at: datetime
    finished_at: datetime | None
    duration_s: float
    steps: list[StepOut] = Field(default_factory=list)
    events: list[EventOut] = Field(default_factory=list)
    alarm_transitions: list[AlarmTransitionOut] = Field(default_factory=list)

    @classmethod
    def of(cls, d: e.Deployment, transitions: Sequence[e.AlarmTransition] = ()) -> DeploymentOut:
        return cls(
            id=d.id,
            endpoint=d.endpoint,
            from_config=d.from_config,
            to_config=d.to_config,
            kind=DeploymentConfig.model_validate(d.policy).kind,
            state=d.state.value,
            reason=d.reason,
            step_index=d.step_index,
            plan=d.plan,
            policy=d.policy,
            created_at=d.created_at,
            finished_at=d.finished_at,
            duration_s=round(d.duration_s, 3),
            steps=[StepOut(**asdict(s)) for s in d.steps],
            events=[EventOut(**asdict(ev)) for ev in d.events],
            alarm_transitions=[AlarmTransitionOut.of(t) for t in transitions],
        )


class AlarmIn(Strict):
    metric: str = Field(
        description="Invocations, Invocation4XXErrors, Invocation5XXErrors, InvocationErrors, "
        "ModelLatency, OverheadLatency (ms), or a custom metric pushed to /metrics."
    )
    statistic: str = Field(
        "Average", description="Average, Sum, SampleCount, Minimum, Maximum or pNN (e.g. p99)."
    )
    comparison: str = Field(
        "GreaterThanThreshold",
        description="GreaterThanThreshold, GreaterThanOrEqualToThreshold, LessThanThreshold, "
        "LessThanOrEqualToThreshold.",
    )
    threshold: float
    period_s: int = Field(60, description="Seconds per datapoint.")
    evaluation_periods: int = 1
    datapoints_to_alarm: int | None = Field(
        None, description="Breaching datapoints (of evaluation_periods) that raise the alarm."
    )
    endpoint: str | None = None
    variant: str | None = None
    treat_missing_data: str = Field(
        "missing", description="missing, notBreaching, breaching, ignore."
    )
    webhook_url: str | None = Field(None, description="Receives a POST on every transition.")
    description: str = ""

    def to_entity(self, name: str) -> e.Alarm:
        return e.Alarm(
            name,
            self.metric,
            self.statistic,
            self.comparison,
            self.threshold,
            self.period_s,
            self.evaluation_periods,
            self.datapoints_to_alarm or self.evaluation_periods,
            self.endpoint,
            self.variant,
            self.treat_missing_data,
            self.webhook_url,
            self.description,
        )


class AlarmOut(AlarmIn):
    name: str
    state: str
    state_reason: str
    state_updated_at: datetime | None
    created_at: datetime | None
    recent: list[tuple[float, float | None]] = Field(
        default_factory=list, description="The datapoints the state rests on (epoch s, value)."
    )

    @classmethod
    def of(cls, a: e.Alarm, recent: Sequence[tuple[float, float | None]] = ()) -> AlarmOut:
        return cls(
            name=a.name,
            metric=a.metric,
            statistic=a.statistic,
            comparison=a.comparison,
            threshold=a.threshold,
            period_s=a.period_s,
            evaluation_periods=a.evaluation_periods,
            datapoints_to_alarm=a.datapoints_to_alarm,
            endpoint=a.endpoint,
            variant=a.variant,
            treat_missing_data=a.treat_missing_data,
            webhook_url=a.webhook_url,
            description=a.description,
            state=a.state.value,
            state_reason=a.state_reason,
            state_updated_at=a.state_updated_at,
            created_at=a.created_at,
            recent=list(recent),
        )


class MetricDatum(Strict):
    name: str
    value: float
    endpoint: str | None = None
    variant: str | None = None
    timestamp: float | None = Field(None, description="Epoch seconds; default: now.")


class MetricsIn(Strict):
    metrics: list[MetricDatum] = Field(min_length=1, max_length=1000)


class FleetOut(BaseModel):
    config: str
    variant: str
    role: str
    """blue or green."""
    green_share: float | None
    window: dict[str, Any]
    """Invocations, errors and latency since the current step began (or since start)."""


class LiveOut(BaseModel):
    endpoint: EndpointOut
    deployment: DeploymentOut | None
    step_started_at: float | None
    bake_until: float | None
    checks: list[dict[str, Any]]
    fleets: list[FleetOut]
    alarms: list[AlarmOut]


class LabelsAccepted(BaseModel):
    accepted: int
    """Records stored (all of the post: a bad record rejects the whole post)."""


# -- inference experiments


class ExperimentShadowIn(Strict):
    name: str = Field(description="The shadow variant's name (new on the endpoint).")
    model: str
    instances: int = Field(1, ge=1)
    sampling_percentage: int = Field(
        100, ge=0, le=100, description="Share of the source variant's requests copied here."
    )


class ExperimentCreate(Strict):
    name: str = Field(description="1 to 120 letters, digits and hyphens.")
    endpoint: str
    source_variant: str = Field(description="The production variant whose requests are copied.")
    shadows: list[ExperimentShadowIn] = Field(min_length=1)
    start: datetime | None = Field(None, description="Default: now.")
    end: datetime | None = Field(None, description="Default: 7 days after the start; ≤ 30 days.")
    description: str = Field("", max_length=1024)
    destination: str | None = Field(
        None, description="Directory or file:// URI for the captured pairs; default: capture/."
    )

    def to_spec(self) -> ExperimentSpec:
        return ExperimentSpec(
            self.name,
            self.endpoint,
            self.source_variant,
            tuple(e.ShadowSampling(s.name, s.sampling_percentage) for s in self.shadows),
            tuple(e.ExperimentVariant(s.name, s.model, s.instances) for s in self.shadows),
            self.start,
            self.end,
            self.description,
            self.destination,
        )


class ExperimentUpdate(Strict):
    start: datetime | None = None
    end: datetime | None = None
    description: str | None = Field(None, max_length=1024)
    sampling: dict[str, int] = Field(
        default_factory=dict, description="Shadow name to its new sampling percentage."
    )
    instances: dict[str, int] = Field(
        default_factory=dict, description="Shadow name to its new instance count."
    )
    destination: str | None = None


class ExperimentStop(Strict):
    actions: dict[str, e.VariantAction] = Field(
        default_factory=dict,
        description="Variant name to Promote, Retain or Remove. Default: the source is "
        "retained and the shadows removed; promoting a shadow replaces the source.",
    )
    desired_state: Literal["Completed", "Cancelled"] = "Completed"
    reason: str | None = Field(None, max_length=1024)
    deployment_config: DeploymentConfig | None = Field(
        None, description="How a promoted shadow reaches production; absent: all at once."
    )
    instances: dict[str, int] = Field(
        default_factory=dict, description="Instance count of a promoted variant."
    )

    def to_request(self, experiment: e.Experiment) -> StopRequest:
        models = {v.variant_name: v.model_name for v in experiment.variants}
        return StopRequest(
            dict(self.actions),
            e.ExperimentStatus(self.desired_state),
            self.reason,
            self.deployment_config.document() if self.deployment_config else None,
            tuple(
                e.ExperimentVariant(name, models.get(name, ""), count)
                for name, count in self.instances.items()
            ),
        )


class ExperimentVariantOut(BaseModel):
    variant_name: str
    model_name: str
    role: str
    """source or shadow."""
    instance_count: int
    sampling_percentage: int | None
    status: str


class ExperimentEventOut(BaseModel):
    at: datetime
    message: str


class ExperimentOut(BaseModel):
    name: str
    type: str
    endpoint: str
    source_variant: str
    variants: list[ExperimentVariantOut]
    start: datetime
    end: datetime
    status: str
    status_reason: str | None
    description: str
    destination: str | None
    base_config: str | None
    experiment_config: str | None
    stop: dict[str, Any]
    created_at: datetime | None
    updated_at: datetime | None
    started_at: datetime | None
    completion_time: datetime | None
    events: list[ExperimentEventOut]

    @classmethod
    def of(cls, x: e.Experiment) -> ExperimentOut:
        sampling = {s.variant_name: s.sampling_percentage for s in x.shadows}
        return cls(
            name=x.name,
            type=x.type,
            endpoint=x.endpoint,
            source_variant=x.source_variant,
            variants=[
                ExperimentVariantOut(
                    variant_name=v.variant_name,
                    model_name=v.model_name,
                    role="source" if v.variant_name == x.source_variant else "shadow",
                    instance_count=v.instance_count,
                    sampling_percentage=sampling.get(v.variant_name),
                    status=v.status,
                )
                for v in x.variants
            ],
            start=x.start,
            end=x.end,
            status=x.status.value,
            status_reason=x.status_reason,
            description=x.description,
            destination=x.destination,
            base_config=x.base_config,
            experiment_config=x.experiment_config,
            stop=x.stop,
            created_at=x.created_at,
            updated_at=x.updated_at,
            started_at=x.started_at,
            completion_time=x.completion_time,
            events=[ExperimentEventOut(at=ev.at, message=ev.message) for ev in x.events],
        )
