"""Settings: one typed object, read from the environment (prefix SLUICE_) in one place."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_home() -> Path:
    return Path(os.environ.get("SLUICE_HOME") or Path.home() / ".sluice")


class Settings(BaseSettings):
    """Every knob of a sluice server. Environment variables: SLUICE_<FIELD>."""

    model_config = SettingsConfigDict(env_prefix="SLUICE_", extra="ignore")

    home: Path = Field(default_factory=default_home)
    """Directory for the metadata database, artifacts, captures and worker sockets."""

    database_url: str | None = None
    """Any SQLAlchemy URL; default: a SQLite file under `home`."""

    host: str = "127.0.0.1"
    port: int = 8080

    max_payload_bytes: int = 6 * 1024 * 1024
    """Largest request body accepted on the inference path (SageMaker's limit is 6 MB)."""

    invocation_timeout_s: float = 60.0
    """How long the gateway waits for a worker's answer before a 503."""

    model_load_timeout_s: float = 120.0
    """How long a worker may take to load its model before the endpoint fails."""

    target_model_ready_s: float = 60.0
    """A multi-model endpoint's request whose model is not known to be loaded waits this
    long, then gets ModelNotReadyException (429) while the load goes on (SageMaker's 60 s)."""

    target_model_load_timeout_s: float = 360.0
    """How long a multi-model endpoint's model may take to download, load and answer its
    first request before its worker is deemed stuck (SageMaker's 360 s)."""

    outlier_failures: int = 5
    """An instance whose requests fail (5xx) this many times in a row is ejected from its
    variant's pick list and replaced; 0 turns ejection off."""

    outlier_max_ejected_percent: int = 50
    """At most this share of a variant's instances is ejected at once (a model that fails
    everywhere keeps being served, with its errors, rather than by no instance at all)."""

    worker_restart_backoff_s: float = 0.5
    """First delay before restarting a dead worker; doubles per consecutive crash."""

    worker_restart_backoff_max_s: float = 30.0

    worker_environment: list[str] = Field(default_factory=list)
    """Names of the server's environment variables that workers get too (say
    CUDA_VISIBLE_DEVICES). Otherwise a worker sees only PATH, HOME, locale, TZ, TMPDIR,
    the server's PYTHON* variables and its model's environment: no secret of the server's."""

    shadow_queue_size: int = 1000
    """Copies waiting per shadow variant; beyond it copies are shed and counted."""

    shadow_concurrency_per_instance: int = 2
    """Copies in flight per shadow instance; the backlog waits in the bounded queue, where
    it can be shed, rather than inside the shadow's workers."""

    shadow_worker_nice: int = 10
    """Scheduling niceness of shadow workers (0 to 19): on a busy machine production
    workers get the CPU first and the shadow sheds copies instead."""

    capture_flush_interval_s: float = 1.0
    capture_fsync: bool = False
    """Force each capture flush to disk (fsync). Off: a crash of the server loses at most
    the records of one flush interval; a crash of the machine also what the OS had not yet
    written back (typically up to 30 s)."""

    capture_retention_hours: float | None = None
    """Delete capture hour folders this long after their hour ended. Unset: keep them."""

    capture_max_bytes: int | None = None
    """Per capture destination: delete the oldest hours beyond this size. Unset: no cap."""

    capture_buffer_records: int = 10_000
    """Records held in memory before a flush is forced; beyond twice this, records are dropped."""

    shutdown_grace_s: float = 10.0
    """How long a stopping server waits for in-flight requests."""

    deployment_restart_policy: Literal["rollback", "resume"] = "rollback"
    """What happens to an endpoint update the server was in the middle of when it stopped:
    `rollback` (the endpoint comes back on its old config, the reason recorded) or `resume`
    (the update restarts its current step, whose bake starts over)."""

    alarm_tick_s: float = 1.0
    """Longest sleep of the alarm evaluator; alarms are evaluated as each period ends."""

    metric_history: bool = True
    """Sample every endpoint's metrics into the history every 10 s (CloudWatch's
    GetMetricStatistics and alarms on stored series read it); off, only custom metrics are
    kept (for measuring what the sampling costs)."""

    autoscaling_tick_s: float = 1.0
    """How often the autoscaler reads each scaled variant's load and decides."""

    autoscaling_stable_window_s: float = 60.0
    """Target tracking averages the load over this window; it scales in only after the
    load stayed below target for a whole window."""

    autoscaling_panic_window_s: float = 6.0
    """A load that, averaged over this shorter window, needs twice the running instances
    scales out at once, past the scale-out cooldown, and holds off scale-in for a stable
    window (Knative's panic mode)."""

    autoscaling_realtime_scale_to_zero: bool = False
    """Let real-time variants register with MinCapacity 0 (SageMaker allows it for async
    endpoints only): scaled to zero, a variant's next request waits while an instance
    starts (up to invocation_timeout_s) instead of failing."""

    webhook_attempts: int = 4
    """Tries per webhook notification (backoff doubles from webhook_backoff_s)."""

    webhook_backoff_s: float = 0.5
    async_lease_s: float = 30.0
    """How long a claimed async invocation stays with its runner without a renewal; a
    runner that dies (a killed server) gives its work back after this long."""

    async_poll_s: float = 0.2
    """How often the async dispatcher looks for work queued by other servers (its own
    server's requests wake it at once)."""

    async_max_attempts: int = 3
    """Tries of an async invocation whose worker died or was unavailable (model errors
    are not retried)."""

    async_retry_backoff_s: float = 1.0
    """Delay before the first retry of an async invocation; doubled at each retry."""

    async_max_input_bytes: int = 1024 * 1024 * 1024
    """Largest input an async invocation may name (SageMaker's limit is 1 GB)."""

    async_gather_s: float = 0.02
    """When an async endpoint's queue is empty, how long a new request waits for others to
    be dispatched with it (batches cost the server far less per request; an async request
    does not notice 20 ms)."""

    async_concurrency_per_instance: int = 128
    """In-flight async invocations per instance when the endpoint config does not set
    MaxConcurrentInvocationsPerInstance. A worker answers them in batches (the model
    predicts a batch's rows in one call); the others wait at it, so it never idles while
    a batch's answers are forced to disk and reported. A request sent to an instance can
    no longer be cancelled or overtaken by a higher priority: with a slow model, set
    MaxConcurrentInvocationsPerInstance lower."""

    worker_preload: bool = True
    """Start workers by forking a template process that has loaded the runtimes' libraries
    (scikit-learn, NumPy): a worker is up in a fraction of the time it takes to import
    them. Off, or on a system without pidfds, each worker starts afresh; a model whose
    environment sets variables other than SLUICE_* always does (its libraries may read
    them as they are imported)."""

    async_idle_stop_s: float = 300.0
    """How long an async endpoint's variants that may run no instance (configured with 0,
    or every one under async_scale_to_zero) keep their instances with nothing queued or
    running; then they stop, and the next request starts them again."""

    async_scale_to_zero: bool = False
    """Let every async endpoint idle down to no instances (SageMaker's InitialInstanceCount
    cannot be 0, so this is how boto3 users get it); off: only variants configured with
    0 instances do."""

    async_retention_hours: float = 168.0
    """How long finished async invocations keep their status (the outputs stay)."""

    transform_chunk_bytes: int = 16 * 1024 * 1024
    """Size of the byte ranges a Line-split transform input is cut into: the unit a worker
    takes at once, and the unit of progress committed (a resumed job redoes at most the
    chunks that were in flight)."""

    transform_lease_s: float = 60.0
    """How long a claimed transform chunk stays with its runner without a renewal."""

    sns_topics: dict[str, str] = Field(default_factory=dict)
    """Where SNS topic ARNs named in async notification configs deliver: topic ARN to a
    webhook URL (checked like any webhook). A topic with no entry is refused."""

    webhook_destinations: list[str] = Field(default_factory=list)
    """Where webhooks may go: URL prefixes `scheme://host[:port][/path]`, the host may be
    `*.suffix`. Empty (the default): any http(s) URL whose host resolves to public
    addresses. A host listed by name may resolve to any address (loopback, private)."""

    webhook_secret: str | None = None
    """Key of the HMAC-SHA256 signature on every webhook body (X-Sluice-Signature);
    default: a random key kept in <home>/webhook-secret."""

    webhook_timeout_s: float = 5.0

    max_label_post_bytes: int = 100 * 1024 * 1024
    """Largest ground-truth or outcome post accepted (a bulk upload)."""

    experiment_tick_s: float = 1.0
    """How often scheduled inference experiments are checked for their start and end."""

    report_refresh_s: float = 10.0
    """A running experiment's report is recomputed at most this often; between, the last
    one is served."""

    instance_memory_mb: dict[str, int] = Field(default_factory=dict)
    """Instance type (SageMaker's InstanceType) to the memory, in MiB, each worker of a
    variant (or transform job) of that type, and each process of a processing or
    training job on it, may map; beyond it allocations fail. Empty (the default): no
    limits. Example: SLUICE_INSTANCE_MEMORY_MB='{"ml.t2.medium": 4096}'."""

    backend: Literal["local", "ray"] = "local"
    """Where instances run: `local`, worker processes on this machine; `ray`, Ray actors
    on a Ray cluster (`pip install 'sluice[ray]'`, setting ray_address)."""

    ray_address: str | None = None
    """The Ray cluster to join (`auto`, or the head's `host:port`); default: start a Ray
    instance on this machine."""

    ray_namespace: str = "sluice"

    shared_database: bool = False
    """Several gateways share this database (PostgreSQL) and object store, behind a load
    balancer: each serves every endpoint with instances of its own and follows what the
    others change within a second; the one holding the controller lease runs the
    autoscaler, alarms, schedules, experiments and guarded updates."""

    lease_term_s: float = 10.0
    """How long a lease (the controller's) lasts unless renewed: a gateway that dies is
    taken over from within this long."""

    instance_resources: dict[str, dict[str, float]] = Field(default_factory=dict)
    """On the Ray backend: instance type to the Ray resources each of its instances asks
    for (CPU, GPU and custom resources; memory comes from instance_memory_mb). A type not
    listed asks for one CPU. Example: SLUICE_INSTANCE_RESOURCES='{"ml.g5.xlarge": {"CPU":
    4, "GPU": 1}}'."""

    aws_region: str = "us-east-1"
    """The region in the ARNs of the SageMaker-compatible API."""

    aws_account_id: str = "000000000000"
    """The account in the ARNs of the SageMaker-compatible API (12 digits)."""

    insecure_local: bool = False
    """Turn authentication off. Allowed only for a server bound to a loopback address
    (`sluice server --insecure-local`): anyone who can reach the port may then deploy
    models, and a model is code. Off by default: every request needs credentials."""

    credentials_file: Path | None = None
    """Principals (role, bearer token, AWS key pair), managed with `sluice credentials`;
    default <home>/credentials.json. Created with one admin principal on the first start
    of a server that has no credentials at all. Re-read when it changes."""

    principals: dict[str, dict[str, str]] = Field(default_factory=dict)
    """More principals, as in the credentials file: name to {"role": "invoke"|"admin",
    "token": ..., "aws_access_key_id": ..., "aws_secret_access_key": ...}."""

    aws_access_keys: dict[str, str] = Field(default_factory=dict)
    """Access key id to secret key, each an admin principal (SigV4-signed requests).
    Environment: SLUICE_AWS_ACCESS_KEYS='{"AKID": "secret"}'."""

    allowed_hosts: list[str] = Field(default_factory=list)
    """Host header values the server answers to (names, `*.suffix`, or `*`), against DNS
    rebinding. Empty (the default): loopback names for a server bound to loopback, no
    check for a server on other interfaces (credentials are the defence there)."""

    allowed_roots: list[Path] = Field(default_factory=list)
    """Folders on this machine that requests may name: model data, baselines and reports
    are read, capture and experiment destinations written, only there (and in
    <home>/s3, which s3:// URIs name, and <home>/uploads, where clients' uploads land).
    Example: SLUICE_ALLOWED_ROOTS='["/srv/models"]'."""

    max_artifact_bytes: int = 10 * 1024**3
    """Largest model artifact (a folder, an archive unpacked, an upload) the server copies."""

    metrics_public: bool = False
    """Serve /metrics without credentials (for a scraper that cannot send a token)."""

    max_request_bytes: int = 16 * 1024 * 1024
    """Largest body on any path without a limit of its own (the control planes)."""

    s3: dict[str, Any] | None = None
    """An S3 store: fsspec's storage options for s3fs (endpoint_url, key, secret, ...;
    `{}` for AWS's own with the usual credentials). Unset (the default): s3:// URIs live
    under <home>/s3. Set: model data is read from S3, and capture files for s3://
    destinations are written under <home>/s3, then uploaded. Needs `sluice[s3]`.
    Example: SLUICE_S3='{"endpoint_url": "http://127.0.0.1:9000"}'."""

    capture_upload_interval_s: float = 60.0
    """How often capture files bound for S3 are closed and uploaded."""

    monitor_tick_s: float = 5.0
    """How often monitoring schedules are checked for runs that are due."""

    monitor_settle_s: float = 5.0
    """A scheduled run starts this long after its time, so the capture of its window's
    last requests has been flushed to files."""

    monitor_max_catch_up: int = 24
    """After downtime, a schedule whose missed runs are run catches up at most this many
    (the latest); older ones are skipped, and the skip is logged."""

    jobs_enabled: bool = True
    """Serve processing and training jobs (and pipelines, which run them). A job runs the
    caller's code as the server's user: on a shared server, require credentials or turn
    this off."""

    job_images: dict[str, str] = Field(default_factory=dict)
    """A job's image stands for a Python environment: image URI glob pattern to Python
    interpreter. Images no pattern matches run on the server's own interpreter. Example:
    SLUICE_JOB_IMAGES='{"*sagemaker-scikit-learn:1.2-1*": "/srv/venvs/sk12/bin/python"}'."""

    job_programs: list[str] = Field(default_factory=lambda: ["bash", "sh"])
    """Programs besides Python a job's entry point may start."""

    job_mount_namespace: bool = True
    """Run each job in mount and PID namespaces of its own, with its folder at /opt/ml
    (Linux). Off, or where the OS refuses them: paths under /opt/ml in the job's
    arguments and environment are rewritten to its folder instead."""

    max_concurrent_jobs: int = 4
    """Processing and training jobs run at once on this server; more wait (Pending)."""

    job_stop_grace_s: float = 10.0
    """A stopped job's program gets SIGTERM, then SIGKILL this much later."""

    checkpoint_sync_s: float = 1.0
    """How often a running job's new files are copied out: a training job's checkpoints to
    CheckpointConfig.S3Uri, a processing job's Continuous outputs to their S3Uri."""

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'sluice.db'}"

    @property
    def resolved_credentials_file(self) -> Path:
        return self.credentials_file or self.home / "credentials.json"

    @property
    def artifacts_dir(self) -> Path:
        return self.home / "artifacts"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def capture_dir(self) -> Path:
        return self.home / "capture"

    @property
    def ground_truth_dir(self) -> Path:
        return self.home / "ground-truth"

    @property
    def outcomes_dir(self) -> Path:
        return self.home / "outcomes"

    @property
    def transforms_dir(self) -> Path:
        """Batch transform jobs' chunk outputs until they are assembled: <job>/."""
        return self.home / "transforms"

    @property
    def jobs_dir(self) -> Path:
        """Processing and training jobs' folders: <kind>/<job>/ (ml/ and output.log)."""
        return self.home / "jobs"

    @property
    def pipelines_dir(self) -> Path:
        """Pipeline executions' folders: <pipeline>/<execution>/<step>/."""
        return self.home / "pipelines"

    @property
    def s3_dir(self) -> Path:
        """S3 on this machine: the stand-in for s3://bucket/key, or the local copy of it."""
        return self.home / "s3"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    @property
    def monitoring_dir(self) -> Path:
        """Monitoring executions' files: <schedule>/<scheduled time>/."""
        return self.home / "monitoring"
