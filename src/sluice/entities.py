"""Domain objects returned by the store and the services: frozen, no ORM, no HTTP."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class EndpointStatus(StrEnum):
    CREATING = "Creating"
    IN_SERVICE = "InService"
    UPDATING = "Updating"
    DELETING = "Deleting"
    FAILED = "Failed"
    SYSTEM_UPDATING = "SystemUpdating"
    """Workers are being brought back after a server restart (SageMaker's maintenance state)."""
    UPDATE_ROLLBACK_FAILED = "UpdateRollbackFailed"
    """An update failed and so did its rollback: old and new fleets may both serve."""


class VariantKind(StrEnum):
    PRODUCTION = "production"
    SHADOW = "shadow"


@dataclass(frozen=True)
class Model:
    name: str
    artifact_uri: str
    model_dir: str
    """Where the artifact was unpacked inside the artifact store."""
    runtime: str
    image: str | None
    environment: dict[str, str]
    created_at: datetime
    details: dict[str, Any] = field(default_factory=dict)
    """SageMaker members accepted and stored as given, not acted on (ExecutionRoleArn,
    the container as sent, VpcConfig, ...)."""
    package: str | None = None
    """The model package (`group/version`) the model was made from, if any."""


@dataclass(frozen=True)
class VariantSpec:
    """One variant in an endpoint config: a production variant or a shadow."""

    name: str
    model_name: str
    kind: VariantKind = VariantKind.PRODUCTION
    initial_weight: float = 1.0
    instance_count: int = 1
    sampling_percentage: int = 100
    """Shadows only: the share of production requests copied to this variant."""
    source_variant: str | None = None
    """Shadows only: copy only requests this production variant answered (None: all)."""
    instance_type: str | None = None
    """SageMaker's instance type, as given (see the compatibility table for its limits)."""
    details: dict[str, Any] = field(default_factory=dict)
    """SageMaker ProductionVariant members stored as given, not acted on."""


@dataclass(frozen=True)
class DataCapture:
    enabled: bool = True
    sampling_percentage: int = 100
    capture_input: bool = True
    capture_output: bool = True
    destination: str | None = None
    """A directory or file:// URI; default: `capture/` under the home."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "sampling_percentage": self.sampling_percentage,
            "capture_input": self.capture_input,
            "capture_output": self.capture_output,
            "destination": self.destination,
        }


@dataclass(frozen=True)
class EndpointConfig:
    name: str
    variants: tuple[VariantSpec, ...]
    data_capture: DataCapture | None = None
    sticky_header: str | None = None
    """A request header whose value keeps a caller on the same production variant."""
    created_at: datetime | None = None
    details: dict[str, Any] = field(default_factory=dict)
    """SageMaker members stored as given, not acted on (KmsKeyId, AsyncInferenceConfig,
    the data capture options sluice does not use, ...)."""

    @property
    def production(self) -> tuple[VariantSpec, ...]:
        return tuple(v for v in self.variants if v.kind is VariantKind.PRODUCTION)

    @property
    def shadows(self) -> tuple[VariantSpec, ...]:
        return tuple(v for v in self.variants if v.kind is VariantKind.SHADOW)


@dataclass(frozen=True)
class EndpointVariant:
    name: str
    model_name: str
    kind: VariantKind
    current_weight: float
    desired_weight: float
    current_instance_count: int
    desired_instance_count: int
    sampling_percentage: int
    status: str


@dataclass(frozen=True)
class Endpoint:
    name: str
    config_name: str
    status: EndpointStatus
    failure_reason: str | None
    created_at: datetime
    updated_at: datetime
    variants: tuple[EndpointVariant, ...] = field(default=())
    sticky_layout: tuple[tuple[float, float, str], ...] = ()
    """Key-space segments per production variant, kept so sticky callers stay put."""

    def production_weights(self) -> dict[str, float]:
        return {v.name: v.current_weight for v in self.variants if v.kind is VariantKind.PRODUCTION}

    def variant(self, name: str) -> EndpointVariant | None:
        return next((v for v in self.variants if v.name == name), None)


# -- alarms


class AlarmState(StrEnum):
    OK = "OK"
    ALARM = "ALARM"
    INSUFFICIENT_DATA = "INSUFFICIENT_DATA"


@dataclass(frozen=True)
class Alarm:
    """A threshold on a metric over periods (CloudWatch's metric alarm, on sluice's metrics)."""

    name: str
    metric: str
    """A built-in metric (see control/alarms.py) or a custom one pushed through the API."""
    statistic: str
    """Average, Sum, SampleCount, Minimum, Maximum, or a percentile such as p99."""
    comparison: str
    threshold: float
    period_s: int
    evaluation_periods: int = 1
    datapoints_to_alarm: int = 1
    endpoint: str | None = None
    variant: str | None = None
    treat_missing_data: str = "missing"
    webhook_url: str | None = None
    description: str = ""
    state: AlarmState = AlarmState.INSUFFICIENT_DATA
    state_reason: str = "not evaluated yet"
    state_updated_at: datetime | None = None
    created_at: datetime | None = None
    actions: tuple[str, ...] = ()
    """Scaling policy ARNs this alarm invokes while in ALARM (CloudWatch's AlarmActions)."""
    actions_enabled: bool = True
    """False: neither the webhook nor the actions are invoked (DisableAlarmActions)."""
    namespace: str | None = None
    """Set: the alarm watches a series of the metric history (CloudWatch's namespace and
    `dimensions`, exactly), not the gateway's live totals or the native custom metrics."""
    dimensions: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class AlarmTransition:
    alarm: str
    at: datetime
    old_state: AlarmState
    new_state: AlarmState
    reason: str
    scope: str
    """What the alarm was evaluated on: the endpoint, or an update's green fleet."""
    deployment_id: int | None = None


# -- deployments


class DeploymentState(StrEnum):
    PROVISIONING = "Provisioning"
    """The green fleet is starting."""
    SHIFTING = "Shifting"
    BAKING = "Baking"
    ROLLING_BACK = "RollingBack"
    COMPLETED = "Completed"
    ROLLED_BACK = "RolledBack"
    ROLLBACK_FAILED = "RollbackFailed"

    @property
    def finished(self) -> bool:
        return self in (
            DeploymentState.COMPLETED,
            DeploymentState.ROLLED_BACK,
            DeploymentState.ROLLBACK_FAILED,
        )


@dataclass(frozen=True)
class DeploymentStep:
    """One step as it ran: the split reached, how long it baked, what was seen and decided."""

    index: int
    label: str
    green_shares: dict[str, float]
    bake_s: float
    started_at: datetime
    ended_at: datetime | None = None
    decision: str | None = None
    """passed, rolled back, or None while the step runs."""
    reason: str | None = None
    fleets: dict[str, Any] = field(default_factory=dict)
    """Per fleet (blue, green): invocations, errors and latency over the step."""
    alarms: dict[str, str] = field(default_factory=dict)
    """Alarm states when the step ended."""
    checks: list[dict[str, Any]] = field(default_factory=list)
    """The comparative guard's last checks in the step."""


@dataclass(frozen=True)
class DeploymentEvent:
    at: datetime
    kind: str
    """state, shift, alarm, guard, scale or note."""
    message: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Deployment:
    """One update of an endpoint from one endpoint config (blue) to another (green)."""

    id: int
    endpoint: str
    from_config: str
    to_config: str
    policy: dict[str, Any]
    """The DeploymentConfig document as given (SageMaker's field names)."""
    plan: list[dict[str, Any]]
    state: DeploymentState
    reason: str | None
    step_index: int
    """The step running (or last run); -1 before the first shift."""
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None = None
    steps: tuple[DeploymentStep, ...] = ()
    events: tuple[DeploymentEvent, ...] = ()

    @property
    def duration_s(self) -> float:
        end = self.finished_at or self.updated_at
        return (end - self.created_at).total_seconds()


# -- inference experiments (shadow tests)


class ExperimentStatus(StrEnum):
    CREATING = "Creating"
    CREATED = "Created"
    """Waiting for its scheduled start."""
    UPDATING = "Updating"
    STARTING = "Starting"
    """Its shadow variants are starting beside the endpoint's production variant."""
    RUNNING = "Running"
    STOPPING = "Stopping"
    """Applying the variant actions (promote, retain, remove)."""
    COMPLETED = "Completed"
    CANCELLED = "Cancelled"
    """Stopped early on request, or an operation failed (see the reason)."""

    @property
    def finished(self) -> bool:
        return self in (ExperimentStatus.COMPLETED, ExperimentStatus.CANCELLED)


class VariantAction(StrEnum):
    PROMOTE = "Promote"
    """A shadow replaces the source variant's model; the source is kept as it is."""
    RETAIN = "Retain"
    """The variant stays on the endpoint as it is (a shadow keeps receiving copies)."""
    REMOVE = "Remove"


@dataclass(frozen=True)
class ExperimentVariant:
    """A variant taking part in an experiment: the source production variant or a shadow."""

    variant_name: str
    model_name: str
    instance_count: int = 1
    instance_type: str = "local"
    """Accepted for SageMaker's sake; workers run where the server runs."""
    status: str = "Creating"
    """Creating, Updating, InService, Deleting or Deleted (SageMaker's ModelVariantStatus)."""


@dataclass(frozen=True)
class ShadowSampling:
    variant_name: str
    sampling_percentage: int


@dataclass(frozen=True)
class ExperimentEvent:
    at: datetime
    message: str


@dataclass(frozen=True)
class Experiment:
    """An inference experiment (SageMaker's shadow mode): shadows beside a production variant."""

    name: str
    endpoint: str
    source_variant: str
    variants: tuple[ExperimentVariant, ...]
    shadows: tuple[ShadowSampling, ...]
    start: datetime
    end: datetime
    status: ExperimentStatus
    status_reason: str | None = None
    description: str = ""
    destination: str | None = None
    """Where the pairs are captured (directory or file:// URI); default: the capture dir."""
    data_storage: dict[str, Any] = field(default_factory=dict)
    """SageMaker's DataStorageConfig as given (Destination, KmsKey, ContentType)."""
    role_arn: str | None = None
    kms_key: str | None = None
    base_config: str | None = None
    """The endpoint config the endpoint ran when the experiment started."""
    experiment_config: str | None = None
    """The endpoint config with the shadows added, served while the experiment runs."""
    stop: dict[str, Any] = field(default_factory=dict)
    """The stop request: actions, desired state, reason, deployment config, deployment id."""
    created_at: datetime | None = None
    updated_at: datetime | None = None
    started_at: datetime | None = None
    completion_time: datetime | None = None
    events: tuple[ExperimentEvent, ...] = ()
    type: str = "ShadowMode"

    @property
    def shadow_names(self) -> list[str]:
        return [s.variant_name for s in self.shadows]

    def variant(self, name: str) -> ExperimentVariant | None:
        return next((v for v in self.variants if v.variant_name == name), None)

    def sampling(self, name: str) -> int:
        return next(s.sampling_percentage for s in self.shadows if s.variant_name == name)


# -- tags


class ResourceKind(StrEnum):
    """What a tag is on; the values are the resource types of SageMaker's ARNs."""

    MODEL = "model"
    ENDPOINT_CONFIG = "endpoint-config"
    ENDPOINT = "endpoint"
    INFERENCE_EXPERIMENT = "inference-experiment"
    MODEL_PACKAGE_GROUP = "model-package-group"
    MODEL_PACKAGE = "model-package"
    MONITORING_SCHEDULE = "monitoring-schedule"
    DATA_QUALITY_JOB_DEFINITION = "data-quality-job-definition"
    MODEL_QUALITY_JOB_DEFINITION = "model-quality-job-definition"
    TRANSFORM_JOB = "transform-job"
    PROCESSING_JOB = "processing-job"
    TRAINING_JOB = "training-job"
    PIPELINE = "pipeline"


@dataclass(frozen=True)
class Tag:
    key: str
    value: str


# -- the model registry


class ApprovalStatus(StrEnum):
    PENDING = "PendingManualApproval"
    APPROVED = "Approved"
    REJECTED = "Rejected"


@dataclass(frozen=True)
class PackageGroup:
    name: str
    description: str | None
    requires_approval: bool
    """Only Approved packages of this group can be made into models and deployed."""
    created_at: datetime
    details: dict[str, Any] = field(default_factory=dict)
    """SageMaker members stored as given."""
    latest_version: int = 0
    """The highest version number handed out (numbers are never reused)."""


@dataclass(frozen=True)
class PackageContainer:
    """What serves the package: an artifact and how to load it."""

    artifact_uri: str
    image: str | None = None
    runtime: str | None = None
    environment: dict[str, str] = field(default_factory=dict)
    kept_dir: str | None = None
    """The server's own unpacked copy, made at registration: models are made from it, so
    moving or changing the source never changes an approved package."""


@dataclass(frozen=True)
class DataVersion:
    """One training data file or directory, by content."""

    uri: str
    sha256: str
    size_bytes: int


@dataclass(frozen=True)
class Lineage:
    """Where a package came from."""

    code_commit: str | None = None
    code_dirty: bool | None = None
    code_repository: str | None = None
    data: tuple[DataVersion, ...] = ()
    parameters: dict[str, Any] = field(default_factory=dict)
    parent: str | None = None
    """The package (`group/version`) this one was derived from."""
    build_id: str | None = None
    build_system: str | None = None
    build_url: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "code_commit": self.code_commit,
            "code_dirty": self.code_dirty,
            "code_repository": self.code_repository,
            "data": [
                {"uri": d.uri, "sha256": d.sha256, "size_bytes": d.size_bytes} for d in self.data
            ],
            "parameters": dict(self.parameters),
            "parent": self.parent,
            "build_id": self.build_id,
            "build_system": self.build_system,
            "build_url": self.build_url,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Lineage:
        fields = {k: v for k, v in raw.items() if k != "data"}
        return cls(data=tuple(DataVersion(**d) for d in raw.get("data", ())), **fields)


@dataclass(frozen=True)
class EvaluationReport:
    """A file attached to a package (an evaluation, a validation gate's result)."""

    name: str
    uri: str
    content_type: str = "application/json"


@dataclass(frozen=True)
class PackageEvent:
    """One line of a package's history: registration, approval changes, deployments."""

    at: datetime
    kind: str
    """registered, approval, deployment, metadata."""
    message: str
    actor: str | None = None
    status: str | None = None
    """The approval status set, for approval events."""
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelPackage:
    group: str
    version: int
    containers: tuple[PackageContainer, ...]
    approval: ApprovalStatus
    description: str | None
    metrics: dict[str, float]
    reports: tuple[EvaluationReport, ...]
    metadata: dict[str, str]
    lineage: Lineage
    created_at: datetime
    updated_at: datetime
    content_types: tuple[str, ...] = ()
    response_types: tuple[str, ...] = ()
    created_by: str | None = None
    approval_by: str | None = None
    approval_reason: str | None = None
    history: tuple[PackageEvent, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)
    """SageMaker members stored as given (ModelMetrics, DriftCheckBaselines, ...)."""

    @property
    def ref(self) -> str:
        """`group/version`: how the CLI and the native API name a package."""
        return f"{self.group}/{self.version}"


@dataclass(frozen=True)
class ServingPeriod:
    """One variant of an endpoint served `model` from `since` until `until` (None: now)."""

    endpoint: str
    config: str
    variant: str
    kind: VariantKind
    model: str
    package: str | None
    since: datetime
    until: datetime | None
    deployment: int | None = None
    """The deployment that brought it in (None: creation or a shadow change)."""
    capture: str | None = None
    """Where its config captured to, if the config named a destination."""


# -- model monitoring


class MonitoringType(StrEnum):
    DATA_QUALITY = "DataQuality"
    MODEL_QUALITY = "ModelQuality"


class ScheduleStatus(StrEnum):
    SCHEDULED = "Scheduled"
    STOPPED = "Stopped"


class ExecutionStatus(StrEnum):
    """SageMaker's execution statuses, and sluice's InsufficientGroundTruth: a model-quality
    run that joined too few labelled rows to judge."""

    PENDING = "Pending"
    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"
    COMPLETED_WITH_VIOLATIONS = "CompletedWithViolations"
    INSUFFICIENT_GROUND_TRUTH = "InsufficientGroundTruth"
    FAILED = "Failed"
    STOPPED = "Stopped"

    @property
    def finished(self) -> bool:
        return self not in (ExecutionStatus.PENDING, ExecutionStatus.IN_PROGRESS)


@dataclass(frozen=True)
class MonitoringJob:
    """What each execution checks: a job definition, resolved to local files."""

    kind: MonitoringType
    endpoint: str
    baseline: str
    """Folder with statistics.json and constraints.json (model quality: constraints.json)."""
    variant: str | None = None
    """One variant's capture, or None for every variant of the endpoint."""
    window_start: str | None = None
    """ISO-8601 duration from the scheduled time (-PT1H); None: one period back."""
    window_end: str = "-PT0S"
    problem_type: str | None = None
    inference_attribute: str | None = None
    probability_attribute: str | None = None
    probability_threshold: float | None = None
    positive_label: str = "1"
    min_rows: int = 100
    max_runtime_s: int = 3600


@dataclass(frozen=True)
class MonitoringSchedule:
    name: str
    expression: str
    job: MonitoringJob
    status: ScheduleStatus
    missed_runs: str
    """After downtime: "run" every missed time (at most MAX_CATCH_UP) or "skip" to the last."""
    created_at: datetime
    updated_at: datetime
    last_scheduled_at: datetime | None = None
    job_definition: str | None = None
    webhook_url: str | None = None
    alert_state: str = "OK"
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MonitoringExecution:
    id: int
    schedule: str
    scheduled_at: datetime
    status: ExecutionStatus
    created_at: datetime
    updated_at: datetime
    window_start: datetime | None = None
    window_end: datetime | None = None
    counts: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    """Violations by check, drifted features or metric values: what the metrics publish."""
    report_dir: str | None = None
    failure_reason: str | None = None
    kind: MonitoringType = MonitoringType.DATA_QUALITY
    endpoint: str = ""


@dataclass(frozen=True)
class MonitoringJobDefinition:
    """A SageMaker data- or model-quality job definition: the request as sent, and the
    job it resolves to."""

    name: str
    kind: MonitoringType
    job: MonitoringJob
    request: dict[str, Any]
    created_at: datetime


class WorkStatus(StrEnum):
    """A queued unit of work: async invocations (and batch chunks) move through these."""

    QUEUED = "Queued"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    EXPIRED = "Expired"
    CANCELLED = "Cancelled"

    @property
    def finished(self) -> bool:
        return self not in (WorkStatus.QUEUED, WorkStatus.RUNNING)


@dataclass(frozen=True)
class WorkItem:
    """One durable unit of work in a named queue, idempotent by (queue, key)."""

    id: int
    queue: str
    key: str
    status: WorkStatus
    priority: int
    payload: dict[str, Any]
    attempts: int
    created_at: datetime
    not_before: datetime
    expires_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    result: dict[str, Any] = field(default_factory=dict)
    failure_reason: str | None = None


@dataclass(frozen=True)
class AsyncConfig:
    """An endpoint config's AsyncInferenceConfig, read for use: such an endpoint takes
    only asynchronous invocations."""

    output_path: str
    failure_path: str | None = None
    max_concurrent_per_instance: int | None = None
    """None: sluice chooses (SageMaker's "optimal value")."""
    success_topic: str | None = None
    error_topic: str | None = None
    include_response_in: tuple[str, ...] = ()
    """SUCCESS_NOTIFICATION_TOPIC and/or ERROR_NOTIFICATION_TOPIC."""

    @classmethod
    def from_details(cls, details: dict[str, Any]) -> AsyncConfig | None:
        document = details.get("AsyncInferenceConfig")
        if not isinstance(document, dict):
            return None
        output = document.get("OutputConfig") or {}
        notes = output.get("NotificationConfig") or {}
        client = document.get("ClientConfig") or {}
        output_path = output.get("S3OutputPath") or output.get("S3FailurePath")
        return cls(
            output_path=str(output_path or ""),
            failure_path=output.get("S3FailurePath") or None,
            max_concurrent_per_instance=client.get("MaxConcurrentInvocationsPerInstance"),
            success_topic=notes.get("SuccessTopic") or None,
            error_topic=notes.get("ErrorTopic") or None,
            include_response_in=tuple(notes.get("IncludeInferenceResponseIn") or ()),
        )


class TransformStatus(StrEnum):
    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"
    FAILED = "Failed"
    STOPPING = "Stopping"
    STOPPED = "Stopped"

    @property
    def finished(self) -> bool:
        return self in (TransformStatus.COMPLETED, TransformStatus.FAILED, TransformStatus.STOPPED)


@dataclass(frozen=True)
class TransformSpec:
    """What a batch transform job reads, how it cuts it into records and where it writes.

    SageMaker's names: `split_type` None|Line, `batch_strategy` MultiRecord|SingleRecord,
    `assemble_with` None|Line, `compression` None|Gzip, `data_type` S3Prefix|ManifestFile.
    `on_bad_record` is sluice's: "fail" (SageMaker's: the file gets no output and the job
    fails) or "continue" (bad records go to `<key>.out.errors` with their line numbers).
    """

    input_uri: str
    output_path: str
    data_type: str = "S3Prefix"
    content_type: str = "application/json"
    compression: str = "None"
    split_type: str = "None"
    batch_strategy: str = "MultiRecord"
    max_payload_mb: int = 6
    max_concurrent: int = 1
    accept: str | None = None
    assemble_with: str = "None"
    instance_type: str = "ml.m5.large"
    instance_count: int = 1
    environment: dict[str, str] = field(default_factory=dict)
    timeout_s: int = 600
    max_retries: int = 3
    on_bad_record: str = "fail"
    input_filter: str = "$"
    join_source: str = "None"
    output_filter: str = "$"


@dataclass(frozen=True)
class TransformCounts:
    """Progress of a transform job, from its committed chunks."""

    files: int = 0
    files_done: int = 0
    chunks: int = 0
    chunks_done: int = 0
    records: int = 0
    """Records in the input (known once the input is planned; 0 before)."""
    records_done: int = 0
    records_failed: int = 0


@dataclass(frozen=True)
class TransformJob:
    name: str
    model_name: str
    status: TransformStatus
    spec: TransformSpec
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    ended_at: datetime | None = None
    failure_reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    """SageMaker members kept as sent (DataCaptureConfig, ExperimentConfig, ...)."""


@dataclass(frozen=True)
class ScalableTarget:
    """A variant's instance count under autoscaling (Application Auto Scaling's target,
    dimension `sagemaker:variant:DesiredInstanceCount`)."""

    endpoint: str
    variant: str
    min_capacity: int
    max_capacity: int
    role_arn: str = ""
    suspended: frozenset[str] = frozenset()
    """Any of DynamicScalingInSuspended, DynamicScalingOutSuspended, ScheduledScalingSuspended."""
    created_at: datetime | None = None

    @property
    def resource_id(self) -> str:
        return f"endpoint/{self.endpoint}/variant/{self.variant}"


@dataclass(frozen=True)
class ScalingPolicy:
    arn: str
    name: str
    endpoint: str
    variant: str
    policy_type: str
    """TargetTrackingScaling or StepScaling."""
    configuration: dict[str, Any]
    """The policy's configuration in Application Auto Scaling's field names."""
    created_at: datetime | None = None


@dataclass(frozen=True)
class ScalingActivity:
    """One scaling decision: what was asked, why, and how it ended."""

    id: str
    endpoint: str
    variant: str
    description: str
    cause: str
    status: str
    """Pending, InProgress, Successful, Failed (Application Auto Scaling's codes)."""
    started_at: datetime
    ended_at: datetime | None = None
    message: str = ""
    details: str = ""


@dataclass(frozen=True)
class ScheduledAction:
    arn: str
    name: str
    endpoint: str
    variant: str
    schedule: str
    """at(yyyy-mm-ddThh:mm:ss), rate(N unit) or cron(...)."""
    timezone: str = "UTC"
    start_time: datetime | None = None
    end_time: datetime | None = None
    min_capacity: int | None = None
    max_capacity: int | None = None
    created_at: datetime | None = None
    last_run_at: datetime | None = None


# -- processing and training jobs, pipelines


class JobKind(StrEnum):
    PROCESSING = "processing"
    TRAINING = "training"


class JobStatus(StrEnum):
    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"
    FAILED = "Failed"
    STOPPING = "Stopping"
    STOPPED = "Stopped"

    @property
    def finished(self) -> bool:
        return self in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.STOPPED)


@dataclass(frozen=True)
class Job:
    """A processing or training job: its SageMaker request as sent, and what became of it.

    `details` holds what a run learns: `folder` (where its /opt/ml tree and log are),
    `transitions` (training's secondary statuses), `metrics`, `model_artifacts`,
    `exit_message`, `attempts`, `pid`."""

    kind: JobKind
    name: str
    status: JobStatus
    request: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    ended_at: datetime | None = None
    failure_reason: str | None = None
    secondary_status: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Pipeline:
    name: str
    definition: str
    """The pipeline definition JSON, as sent."""
    role_arn: str
    created_at: datetime
    updated_at: datetime
    display_name: str | None = None
    description: str | None = None
    parallelism: int | None = None
    """ParallelismConfiguration.MaxParallelExecutionSteps."""
    last_run_at: datetime | None = None
    version: int = 1


class PipelineExecutionStatus(StrEnum):
    EXECUTING = "Executing"
    STOPPING = "Stopping"
    STOPPED = "Stopped"
    FAILED = "Failed"
    SUCCEEDED = "Succeeded"

    @property
    def finished(self) -> bool:
        return self in (
            PipelineExecutionStatus.STOPPED,
            PipelineExecutionStatus.FAILED,
            PipelineExecutionStatus.SUCCEEDED,
        )


class StepStatus(StrEnum):
    STARTING = "Starting"
    EXECUTING = "Executing"
    STOPPING = "Stopping"
    STOPPED = "Stopped"
    FAILED = "Failed"
    SUCCEEDED = "Succeeded"

    @property
    def finished(self) -> bool:
        return self in (StepStatus.STOPPED, StepStatus.FAILED, StepStatus.SUCCEEDED)


@dataclass(frozen=True)
class PipelineExecution:
    id: str
    pipeline: str
    status: PipelineExecutionStatus
    definition: str
    """The pipeline's definition when the execution started (retries run it too)."""
    parameters: dict[str, Any]
    """Every parameter's value: those sent, and the definition's defaults."""
    created_at: datetime
    updated_at: datetime
    display_name: str | None = None
    description: str | None = None
    failure_reason: str | None = None
    parallelism: int | None = None
    ended_at: datetime | None = None
    runner: str | None = None
    """The server running it (`processes.runner_id`)."""
    selected_steps: tuple[str, ...] | None = None
    """A selective execution's steps (SelectiveExecutionConfig): only these run."""
    source_execution: str | None = None
    """The execution whose results the steps not selected take (its id)."""


@dataclass(frozen=True)
class ExecutionStep:
    """One step's run in one execution (a step skipped by a condition has none)."""

    execution_id: str
    name: str
    type: str
    status: StepStatus
    started_at: datetime
    updated_at: datetime
    ended_at: datetime | None = None
    failure_reason: str | None = None
    attempts: int = 1
    metadata: dict[str, Any] = field(default_factory=dict)
    """SageMaker's step metadata (the job's ARN, a condition's outcome, ...)."""
    properties: dict[str, Any] = field(default_factory=dict)
    """What later steps may reference: the job's description, property files."""
    cache_key: str | None = None
    cached_from: str | None = None
    """The execution whose run of this step was reused (a cache hit)."""
    reused_from: str | None = None
    """The execution whose results a selective execution took for this step, not run."""
    display_name: str | None = None
    description: str | None = None
