"""sluice.Client: the native API from Python (httpx)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx

from sluice import errors
from sluice.api.async_routes import AsyncInvocationOut
from sluice.api.monitoring_routes import ExecutionOut, ScheduleOut
from sluice.api.pipeline_routes import JobOut, PipelineExecutionOut, PipelineOut
from sluice.api.registry_schemas import ApprovalOut, GroupOut, PackageOut
from sluice.api.schemas import (
    AlarmOut,
    AlarmTransitionOut,
    DeploymentOut,
    EndpointConfigOut,
    EndpointOut,
    ExperimentOut,
    LiveOut,
    ModelOut,
    UploadOut,
)
from sluice.api.transform_routes import TransformJobOut

DEFAULT_URL = "http://127.0.0.1:8080"


def client_token(url: str) -> str | None:
    """$SLUICE_TOKEN; else, for a loopback URL only (a local token never goes to another
    host), the admin token in $SLUICE_HOME's (or ~/.sluice's) credentials file."""
    from sluice.security.credentials import default_token
    from sluice.security.guard import is_loopback
    from sluice.settings import default_home

    token = os.environ.get("SLUICE_TOKEN")
    if token:
        return token
    host = httpx.URL(url).host
    return default_token(default_home()) if host and is_loopback(host) else None


FINISHED = ("Completed", "Cancelled")


@dataclass(frozen=True)
class Invocation:
    """One answer from an endpoint."""

    body: bytes
    content_type: str
    variant: str

    def json(self) -> Any:
        import json

        return json.loads(self.body)


State = TypeVar("State")


def poll_until(
    read: Callable[[], State],
    done: Callable[[State], bool],
    still: Callable[[State], str],
    timeout: float,
    poll: float = 0.2,
    on_progress: Callable[[State], None] | None = None,
) -> State:
    """`read()` every `poll` s until `done` holds for what it read, which is returned;
    after `timeout` s, TimeoutError with `still`'s account of the last state.
    `on_progress` sees each state on the way."""
    deadline = time.monotonic() + timeout
    while True:
        state = read()
        if on_progress is not None:
            on_progress(state)
        if done(state):
            return state
        if time.monotonic() > deadline:
            raise TimeoutError(still(state))
        time.sleep(poll)


class Client:
    """Talks to a running `sluice server`.

    >>> with Client("http://127.0.0.1:8080") as c:
    ...     c.create_endpoint("digits", "digits-v1", wait=True)
    """

    def __init__(
        self, url: str = DEFAULT_URL, timeout: float = 60.0, token: str | None = None
    ) -> None:
        """`token`: the bearer token to send; default $SLUICE_TOKEN, else, for a server on
        this machine (a loopback URL), the admin token in the home's credentials file."""
        self.url = url.rstrip("/")
        token = token or client_token(self.url)
        headers = {"Authorization": f"Bearer {token}"} if token else None
        self.http = httpx.Client(base_url=self.url, timeout=timeout, headers=headers)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    # -- models

    def create_model(
        self,
        name: str,
        artifact: str | None = None,
        runtime: str | None = None,
        image: str | None = None,
        environment: Mapping[str, str] | None = None,
        package: str | None = None,
        multi_model: bool = False,
        containers: Sequence[Mapping[str, Any]] | None = None,
        mode: str = "serial",
    ) -> ModelOut:
        """A model from an artifact, or from a registry `package` (GROUP/VERSION or
        GROUP@latest-approved). With `multi_model`, `artifact` is a prefix the server reads
        (an s3:// prefix or a folder of its own) whose models each request names
        (`invoke(..., target_model=)`). `containers` ({"hostname", "artifact", and
        optionally "image" and "environment"} each) make a model of several containers,
        in series (`mode` "serial") or named per request ("direct")."""
        sent_artifact = artifact if multi_model or artifact is None else self._artifact(artifact)
        body: dict[str, Any] = {
            "name": name,
            "artifact": sent_artifact,
            "runtime": runtime,
            "image": image,
            "environment": dict(environment or {}),
            "package": package,
            "multi_model": multi_model,
        }
        if containers is not None:
            body["containers"] = [
                {**c, "artifact": self._artifact(str(c["artifact"]))} for c in containers
            ]
            body["mode"] = mode
        return ModelOut.model_validate(self._call("POST", "/models", body))

    def upload(self, path: str | Path) -> UploadOut:
        """Send a model artifact from this machine (a folder, packed on the way, or a tar
        archive) to the server, which keeps it under its home; returns where."""
        import tarfile
        import tempfile

        source = Path(path).expanduser()
        with tempfile.TemporaryDirectory(prefix="sluice-upload-") as scratch:
            if source.is_dir():
                packed = Path(scratch) / "artifact.tar.gz"
                with tarfile.open(packed, "w:gz") as tar:
                    for item in sorted(source.rglob("*")):
                        tar.add(item, arcname=str(item.relative_to(source)), recursive=False)
                source = packed
            with source.open("rb") as body:
                response = self.http.post(
                    "/api/v1/uploads", content=body, headers={"Content-Type": "application/gzip"}
                )
        if response.status_code >= 400:
            raise _api_error(response)
        return UploadOut.model_validate(response.json())

    def _artifact(self, artifact: str) -> str:
        """A file or folder on this machine is uploaded; a URI (s3://, file://) or any other
        path names the server's own."""
        local = Path(artifact).expanduser()
        if "://" in artifact or not (local.is_file() or local.is_dir()):
            return artifact
        return self.upload(artifact).uri

    def get_model(self, name: str) -> ModelOut:
        return ModelOut.model_validate(self._call("GET", f"/models/{name}"))

    def list_models(self) -> list[ModelOut]:
        return [ModelOut.model_validate(m) for m in self._call("GET", "/models")]

    def delete_model(self, name: str) -> None:
        self._call("DELETE", f"/models/{name}")

    # -- endpoint configs

    def create_endpoint_config(
        self,
        name: str,
        variants: Sequence[Mapping[str, Any]],
        shadows: Sequence[Mapping[str, Any]] = (),
        data_capture: Mapping[str, Any] | None = None,
        sticky_header: str | None = None,
    ) -> EndpointConfigOut:
        """Variants: dicts with name, model, weight, instances. Shadows: name, model,
        instances, sampling_percentage. Data capture: enabled, sampling_percentage,
        capture_input, capture_output, destination."""
        body = {
            "name": name,
            "variants": list(variants),
            "shadows": list(shadows),
            "data_capture": dict(data_capture) if data_capture is not None else None,
            "sticky_header": sticky_header,
        }
        return EndpointConfigOut.model_validate(self._call("POST", "/endpoint-configs", body))

    def get_endpoint_config(self, name: str) -> EndpointConfigOut:
        return EndpointConfigOut.model_validate(self._call("GET", f"/endpoint-configs/{name}"))

    def list_endpoint_configs(self) -> list[EndpointConfigOut]:
        return [EndpointConfigOut.model_validate(c) for c in self._call("GET", "/endpoint-configs")]

    def delete_endpoint_config(self, name: str) -> None:
        self._call("DELETE", f"/endpoint-configs/{name}")

    # -- endpoints

    def create_endpoint(
        self, name: str, config: str, wait: bool = False, timeout: float = 300.0
    ) -> EndpointOut:
        created = EndpointOut.model_validate(
            self._call("POST", "/endpoints", {"name": name, "config": config})
        )
        return self.wait_for_endpoint(name, timeout) if wait else created

    def wait_for_endpoint(self, name: str, timeout: float = 300.0) -> EndpointOut:
        """Poll until the endpoint settles; raise if it Failed or `timeout` passes."""
        endpoint = poll_until(
            lambda: self.get_endpoint(name),
            lambda e: e.status in ("InService", "Failed"),
            lambda e: f"endpoint {name!r} still {e.status} after {timeout:g} s",
            timeout,
        )
        if endpoint.status == "Failed":
            raise errors.ModelLoadError(f"endpoint {name!r} failed: {endpoint.failure_reason}")
        return endpoint

    def get_endpoint(self, name: str) -> EndpointOut:
        return EndpointOut.model_validate(self._call("GET", f"/endpoints/{name}"))

    def list_endpoints(self) -> list[EndpointOut]:
        return [EndpointOut.model_validate(e) for e in self._call("GET", "/endpoints")]

    def update_weights(
        self,
        name: str,
        weights: Mapping[str, float] | None = None,
        instances: Mapping[str, int] | None = None,
    ) -> EndpointOut:
        """New weights apply at once; new instance counts are reached in the background."""
        body = {"weights": dict(weights or {}), "instances": dict(instances or {})}
        return EndpointOut.model_validate(self._call("PUT", f"/endpoints/{name}/weights", body))

    # -- updates (deployments)

    def update_endpoint(
        self,
        name: str,
        config: str,
        deployment_config: Mapping[str, Any] | None = None,
        wait: bool = False,
        timeout: float = 3600.0,
    ) -> DeploymentOut:
        """Move an endpoint to another config; `deployment_config` is SageMaker's
        DeploymentConfig (plus an optional ComparativeGuard). With `wait`, returns once the
        update has completed or rolled back."""
        body = {"config": config, "deployment_config": deployment_config}
        deployment = DeploymentOut.model_validate(
            self._call("POST", f"/endpoints/{name}/deployments", body)
        )
        return self.wait_for_deployment(deployment.id, timeout) if wait else deployment

    def wait_for_deployment(self, deployment_id: int, timeout: float = 3600.0) -> DeploymentOut:
        return poll_until(
            lambda: self.get_deployment(deployment_id),
            lambda d: d.finished_at is not None,
            lambda d: f"deployment {deployment_id} still {d.state}",
            timeout,
        )

    def get_deployment(self, deployment_id: int) -> DeploymentOut:
        return DeploymentOut.model_validate(self._call("GET", f"/deployments/{deployment_id}"))

    def list_deployments(self, endpoint: str) -> list[DeploymentOut]:
        return [
            DeploymentOut.model_validate(d)
            for d in self._call("GET", f"/endpoints/{endpoint}/deployments")
        ]

    def cancel_update(self, endpoint: str) -> DeploymentOut:
        return DeploymentOut.model_validate(
            self._call("POST", f"/endpoints/{endpoint}/cancel-update")
        )

    def live(self, endpoint: str) -> LiveOut:
        return LiveOut.model_validate(self._call("GET", f"/endpoints/{endpoint}/live"))

    # -- alarms

    def put_alarm(self, name: str, **definition: Any) -> AlarmOut:
        """Create or replace an alarm: metric, statistic, comparison, threshold, period_s,
        evaluation_periods, datapoints_to_alarm, endpoint, variant, treat_missing_data,
        webhook_url, description."""
        return AlarmOut.model_validate(self._call("PUT", f"/alarms/{name}", definition))

    def get_alarm(self, name: str) -> AlarmOut:
        return AlarmOut.model_validate(self._call("GET", f"/alarms/{name}"))

    def list_alarms(self, endpoint: str | None = None) -> list[AlarmOut]:
        path = "/alarms" if endpoint is None else f"/alarms?endpoint={endpoint}"
        return [AlarmOut.model_validate(a) for a in self._call("GET", path)]

    def alarm_history(self, name: str, limit: int = 100) -> list[AlarmTransitionOut]:
        return [
            AlarmTransitionOut.model_validate(t)
            for t in self._call("GET", f"/alarms/{name}/history?limit={limit}")
        ]

    def delete_alarm(self, name: str) -> None:
        self._call("DELETE", f"/alarms/{name}")

    def put_metrics(self, metrics: Sequence[Mapping[str, Any]]) -> None:
        """Custom metric values: dicts with name, value and optionally endpoint, variant,
        timestamp (epoch seconds)."""
        self._call("POST", "/metrics", {"metrics": [dict(m) for m in metrics]})

    def put_ground_truth(
        self, endpoint: str, records: Sequence[Mapping[str, Any]] | bytes, content_type: str = ""
    ) -> int:
        """Labels by inference id: dicts {"inference_id", "label"}, or a file's bytes (JSON
        Lines or CSV, with its `content_type`). Returns how many were stored."""
        return self._post_labels(f"/endpoints/{endpoint}/ground-truth", records, content_type)

    def put_outcomes(
        self, endpoint: str, records: Sequence[Mapping[str, Any]] | bytes, content_type: str = ""
    ) -> int:
        """Outcomes by inference id: dicts {"inference_id", "name", "value"}, or a file's bytes."""
        return self._post_labels(f"/endpoints/{endpoint}/outcomes", records, content_type)

    def _post_labels(
        self, path: str, records: Sequence[Mapping[str, Any]] | bytes, content_type: str
    ) -> int:
        if isinstance(records, bytes):
            response = self.http.post(
                f"/api/v1{path}", content=records, headers={"Content-Type": content_type}
            )
        else:
            response = self.http.post(
                f"/api/v1{path}", json={"records": [dict(r) for r in records]}
            )
        if response.status_code >= 400:
            raise _api_error(response)
        return int(response.json()["accepted"])

    # -- inference experiments (shadow tests)

    def create_experiment(
        self,
        name: str,
        endpoint: str,
        source_variant: str,
        shadows: Sequence[Mapping[str, Any]],
        start: datetime | None = None,
        end: datetime | None = None,
        description: str = "",
        destination: str | None = None,
    ) -> ExperimentOut:
        """`shadows`: {"name", "model", "instances", "sampling_percentage"} each."""
        body = {
            "name": name,
            "endpoint": endpoint,
            "source_variant": source_variant,
            "shadows": [dict(s) for s in shadows],
            "start": start.isoformat() if start else None,
            "end": end.isoformat() if end else None,
            "description": description,
            "destination": destination,
        }
        return ExperimentOut.model_validate(self._call("POST", "/experiments", body))

    def get_experiment(self, name: str) -> ExperimentOut:
        return ExperimentOut.model_validate(self._call("GET", f"/experiments/{name}"))

    def list_experiments(self, endpoint: str | None = None) -> list[ExperimentOut]:
        query = f"?endpoint={endpoint}" if endpoint else ""
        return [ExperimentOut.model_validate(x) for x in self._call("GET", f"/experiments{query}")]

    def update_experiment(self, name: str, **changes: Any) -> ExperimentOut:
        """start, end (datetimes), description, sampling / instances ({shadow: value})."""
        body = {k: v.isoformat() if isinstance(v, datetime) else v for k, v in changes.items()}
        return ExperimentOut.model_validate(self._call("PATCH", f"/experiments/{name}", body))

    def start_experiment(
        self, name: str, wait: bool = False, timeout: float = 300.0
    ) -> ExperimentOut:
        started = ExperimentOut.model_validate(self._call("POST", f"/experiments/{name}/start"))
        return self.wait_for_experiment(name, ("Running",), timeout) if wait else started

    def stop_experiment(
        self,
        name: str,
        actions: Mapping[str, str] | None = None,
        desired_state: str = "Completed",
        reason: str | None = None,
        deployment_config: Mapping[str, Any] | None = None,
        wait: bool = False,
        timeout: float = 3600.0,
    ) -> ExperimentOut:
        """`actions`: variant name to Promote, Retain or Remove."""
        body = {
            "actions": dict(actions or {}),
            "desired_state": desired_state,
            "reason": reason,
            "deployment_config": deployment_config,
        }
        stopped = ExperimentOut.model_validate(
            self._call("POST", f"/experiments/{name}/stop", body)
        )
        return self.wait_for_experiment(name, FINISHED, timeout) if wait else stopped

    def wait_for_experiment(
        self, name: str, statuses: Sequence[str] = ("Running",), timeout: float = 300.0
    ) -> ExperimentOut:
        """Poll until the experiment is in one of `statuses` (or has finished)."""
        return poll_until(
            lambda: self.get_experiment(name),
            lambda e: e.status in statuses or e.status in FINISHED,
            lambda e: f"experiment {name!r} still {e.status}",
            timeout,
        )

    def delete_experiment(self, name: str) -> None:
        self._call("DELETE", f"/experiments/{name}")

    def experiment_report(self, name: str, refresh: bool = False) -> dict[str, Any]:
        """The comparison report (JSON document, schema sluice.report/1)."""
        query = "?refresh=true" if refresh else ""
        report: dict[str, Any] = self._call("GET", f"/experiments/{name}/report{query}")
        return report

    def experiment_report_html(self, name: str, refresh: bool = False) -> str:
        response = self.http.get(
            f"/api/v1/experiments/{name}/report",
            params={"format": "html", "refresh": str(refresh).lower()},
        )
        if response.status_code >= 400:
            raise _api_error(response)
        return response.text

    def delete_endpoint(self, name: str) -> None:
        self._call("DELETE", f"/endpoints/{name}")

    # -- inference

    def invoke(
        self,
        endpoint: str,
        body: bytes | str,
        content_type: str = "application/json",
        accept: str = "application/json",
        target_variant: str | None = None,
        inference_id: str | None = None,
        headers: Mapping[str, str] | None = None,
        target_model: str | None = None,
        target_container: str | None = None,
    ) -> Invocation:
        """One request; `target_model` names a multi-model endpoint's model (its key under
        the prefix), `target_container` a container invoked directly."""
        sent = {"Content-Type": content_type, "Accept": accept, **(headers or {})}
        if target_variant:
            sent["X-Amzn-SageMaker-Target-Variant"] = target_variant
        if target_model:
            sent["X-Amzn-SageMaker-Target-Model"] = target_model
        if target_container:
            sent["X-Amzn-SageMaker-Target-Container-Hostname"] = target_container
        if inference_id:
            sent["X-Amzn-SageMaker-Inference-Id"] = inference_id
        data = body.encode() if isinstance(body, str) else body
        response = self.http.post(f"/endpoints/{endpoint}/invocations", content=data, headers=sent)
        if response.status_code != 200:
            raise _runtime_error(response)
        return Invocation(
            response.content,
            response.headers.get("content-type", ""),
            response.headers.get("x-amzn-invoked-production-variant", ""),
        )

    # -- asynchronous inference

    def invoke_async(
        self,
        endpoint: str,
        input_location: str,
        content_type: str = "application/json",
        accept: str = "application/json",
        inference_id: str | None = None,
        priority: int = 0,
        ttl_s: int = 21600,
        timeout_s: int = 900,
        custom_attributes: str | None = None,
    ) -> AsyncInvocationOut:
        """Queue one request whose body is at `input_location` (an s3:// or file:// URI the
        server may read; a file on this machine is uploaded first). Answers at once."""
        local = Path(input_location).expanduser()
        if "://" not in input_location and local.is_file():
            with local.open("rb") as content:
                response = self.http.post(
                    "/api/v1/async-inputs",
                    content=content,
                    headers={"Content-Type": "application/octet-stream"},
                )
            if response.status_code >= 400:
                raise _api_error(response)
            input_location = UploadOut.model_validate(response.json()).uri
        body = {
            "input_location": input_location,
            "content_type": content_type,
            "accept": accept,
            "inference_id": inference_id,
            "priority": priority,
            "ttl_s": ttl_s,
            "timeout_s": timeout_s,
            "custom_attributes": custom_attributes,
        }
        return AsyncInvocationOut.model_validate(
            self._call("POST", f"/endpoints/{endpoint}/async-invocations", body)
        )

    def async_status(self, endpoint: str, inference_id: str) -> AsyncInvocationOut:
        return AsyncInvocationOut.model_validate(
            self._call("GET", f"/endpoints/{endpoint}/async-invocations/{inference_id}")
        )

    def cancel_async(self, endpoint: str, inference_id: str) -> AsyncInvocationOut:
        """Cancel a request that has not started (a running one is refused)."""
        return AsyncInvocationOut.model_validate(
            self._call("DELETE", f"/endpoints/{endpoint}/async-invocations/{inference_id}")
        )

    def async_output(self, endpoint: str, inference_id: str) -> bytes:
        """The answer of a finished request (the reason, for a failed one)."""
        response = self.http.get(
            f"/api/v1/endpoints/{endpoint}/async-invocations/{inference_id}/output"
        )
        if response.status_code >= 400:
            raise _api_error(response)
        return response.content

    def wait_for_async(
        self, endpoint: str, inference_id: str, timeout: float = 3600, poll: float = 0.25
    ) -> AsyncInvocationOut:
        """Poll until the request has finished (Succeeded, Failed, Expired or Cancelled)."""
        return poll_until(
            lambda: self.async_status(endpoint, inference_id),
            lambda state: state.status.finished,
            lambda state: (
                f"async invocation {inference_id!r} is still {state.status.value} "
                f"after {timeout:g} s"
            ),
            timeout,
            poll,
        )

    # -- batch transform

    def create_transform(
        self, name: str, model: str, input: str, output: str, **options: Any
    ) -> TransformJobOut:
        """Start a batch transform job over `input` (an s3:// or file:// prefix, or a
        manifest with data_type="ManifestFile", that the server may read) into `output`.
        `options`: the other fields of `TransformJobIn` (content_type, split_type, accept,
        assemble_with, instance_count, on_bad_record, ...)."""
        body = {"name": name, "model": model, "input": input, "output": output, **options}
        return TransformJobOut.model_validate(self._call("POST", "/transform-jobs", body))

    def describe_transform(self, name: str) -> TransformJobOut:
        return TransformJobOut.model_validate(self._call("GET", f"/transform-jobs/{name}"))

    def list_transforms(self, status: str | None = None) -> list[TransformJobOut]:
        query = f"?status={status}" if status else ""
        return [
            TransformJobOut.model_validate(job)
            for job in self._call("GET", f"/transform-jobs{query}")
        ]

    def stop_transform(self, name: str) -> TransformJobOut:
        return TransformJobOut.model_validate(self._call("POST", f"/transform-jobs/{name}/stop"))

    def wait_for_transform(
        self,
        name: str,
        timeout: float = 24 * 3600,
        poll: float = 0.5,
        on_progress: Callable[[TransformJobOut], None] | None = None,
    ) -> TransformJobOut:
        """Poll until the job has ended (Completed, Failed or Stopped); `on_progress` sees
        each state on the way."""
        return poll_until(
            lambda: self.describe_transform(name),
            lambda job: job.status.finished,
            lambda job: f"transform job {name!r} is still {job.status.value}",
            timeout,
            poll,
            on_progress,
        )

    def metrics(self) -> str:
        """The Prometheus exposition text of /metrics."""
        return self.http.get("/metrics").text

    # -- the model registry

    def create_package_group(
        self, name: str, description: str | None = None, requires_approval: bool = False
    ) -> GroupOut:
        body = {"name": name, "description": description, "requires_approval": requires_approval}
        return GroupOut.model_validate(self._call("POST", "/model-package-groups", body))

    def get_package_group(self, name: str) -> GroupOut:
        return GroupOut.model_validate(self._call("GET", f"/model-package-groups/{name}"))

    def list_package_groups(self) -> list[GroupOut]:
        return [GroupOut.model_validate(g) for g in self._call("GET", "/model-package-groups")]

    def delete_package_group(self, name: str) -> None:
        self._call("DELETE", f"/model-package-groups/{name}")

    def register_package(
        self,
        group: str,
        artifact: str,
        *,
        runtime: str | None = None,
        image: str | None = None,
        environment: Mapping[str, str] | None = None,
        description: str | None = None,
        approval: str = "PendingManualApproval",
        metrics: Mapping[str, float] | None = None,
        metadata: Mapping[str, str] | None = None,
        lineage: Mapping[str, Any] | None = None,
        created_by: str | None = None,
    ) -> PackageOut:
        """Register the next version of `group`."""
        container = {
            "artifact": self._artifact(artifact),
            "runtime": runtime,
            "image": image,
            "environment": dict(environment or {}),
        }
        body = {
            "containers": [container],
            "description": description,
            "approval": approval,
            "metrics": dict(metrics or {}),
            "metadata": dict(metadata or {}),
            "lineage": dict(lineage) if lineage is not None else None,
            "created_by": created_by,
        }
        path = f"/model-package-groups/{group}/packages"
        return PackageOut.model_validate(self._call("POST", path, body))

    def get_package(self, ref: str) -> PackageOut:
        """`ref`: GROUP/VERSION or GROUP@latest-approved."""
        return PackageOut.model_validate(self._call("GET", _package_path(ref)))

    def list_packages(self, group: str, approval: str | None = None) -> list[PackageOut]:
        path = f"/model-package-groups/{group}/packages"
        if approval:
            path += f"?approval={approval}"
        return [PackageOut.model_validate(p) for p in self._call("GET", path)]

    def set_approval(
        self,
        ref: str,
        status: str,
        by: str | None = None,
        reason: str | None = None,
        deploy_to: Sequence[str] = (),
        deployment_config: Mapping[str, Any] | None = None,
    ) -> ApprovalOut:
        """Approve or reject; an approval may update `deploy_to` endpoints to the package."""
        body = {
            "status": status,
            "by": by,
            "reason": reason,
            "deploy_to": list(deploy_to),
            "deployment_config": dict(deployment_config) if deployment_config else None,
        }
        answer = self._call("PUT", _package_path(ref) + "/approval", body)
        return ApprovalOut.model_validate(answer)

    def update_package(
        self,
        ref: str,
        description: str | None = None,
        metadata: Mapping[str, str] | None = None,
        remove_metadata: Sequence[str] = (),
        by: str | None = None,
    ) -> PackageOut:
        body = {
            "description": description,
            "metadata": dict(metadata or {}),
            "remove_metadata": list(remove_metadata),
            "by": by,
        }
        return PackageOut.model_validate(self._call("PATCH", _package_path(ref), body))

    def attach_report(
        self,
        ref: str,
        name: str,
        uri: str | None = None,
        content_type: str = "application/json",
        metrics: Mapping[str, float] | None = None,
        by: str | None = None,
        content: str | None = None,
    ) -> PackageOut:
        """Attach an evaluation: its `content` (kept by the server) or a `uri` to it."""
        body = {
            "name": name,
            "uri": uri,
            "content": content,
            "content_type": content_type,
            "metrics": dict(metrics or {}),
            "by": by,
        }
        answer = self._call("POST", _package_path(ref) + "/reports", body)
        return PackageOut.model_validate(answer)

    def read_report(self, ref: str, name: str) -> bytes:
        """A report the server keeps for a package."""
        response = self.http.get(f"/api/v1{_package_path(ref)}/reports/{name}")
        if response.status_code >= 400:
            raise _api_error(response)
        return response.content

    def delete_package(self, ref: str) -> None:
        self._call("DELETE", _package_path(ref))

    def lineage(
        self,
        endpoint: str | None = None,
        variant: str | None = None,
        inference_id: str | None = None,
        package: str | None = None,
    ) -> dict[str, Any]:
        """Back from an endpoint, variant or inference id; forward from a package."""
        query = {"endpoint": endpoint, "variant": variant, "inference_id": inference_id,
                 "package": package}  # fmt: skip
        response = self.http.get(
            "/api/v1/lineage", params={k: v for k, v in query.items() if v is not None}
        )
        if response.status_code >= 400:
            raise _api_error(response)
        result: dict[str, Any] = response.json()
        return result

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self.http.get("/healthz").json()
        return result

    # -- monitoring

    def create_monitoring_schedule(
        self,
        name: str,
        schedule: str,
        job: Mapping[str, Any],
        missed_runs: str = "run",
        webhook_url: str | None = None,
    ) -> ScheduleOut:
        """`job`: kind (DataQuality or ModelQuality), endpoint, baseline (a folder on the
        server), and optionally variant, window_start, window_end, problem_type,
        inference_attribute, probability_attribute, probability_threshold,
        positive_label, min_rows, max_runtime_s."""
        body = {
            "name": name,
            "schedule": schedule,
            "job": dict(job),
            "missed_runs": missed_runs,
            "webhook_url": webhook_url,
        }
        return ScheduleOut.model_validate(self._call("POST", "/monitoring-schedules", body))

    def get_monitoring_schedule(self, name: str) -> ScheduleOut:
        return ScheduleOut.model_validate(self._call("GET", f"/monitoring-schedules/{name}"))

    def list_monitoring_schedules(self, endpoint: str | None = None) -> list[ScheduleOut]:
        path = "/monitoring-schedules" + (f"?endpoint={endpoint}" if endpoint else "")
        return [ScheduleOut.model_validate(s) for s in self._call("GET", path)]

    def stop_monitoring_schedule(self, name: str) -> ScheduleOut:
        return ScheduleOut.model_validate(self._call("POST", f"/monitoring-schedules/{name}/stop"))

    def start_monitoring_schedule(self, name: str) -> ScheduleOut:
        return ScheduleOut.model_validate(self._call("POST", f"/monitoring-schedules/{name}/start"))

    def delete_monitoring_schedule(self, name: str) -> None:
        self._call("DELETE", f"/monitoring-schedules/{name}")

    def run_monitoring_schedule(self, name: str) -> ExecutionOut:
        """Run the schedule's check now; returns the new execution (Pending)."""
        return ExecutionOut.model_validate(self._call("POST", f"/monitoring-schedules/{name}/run"))

    def list_monitoring_executions(
        self, schedule: str, status: str | None = None, limit: int = 100
    ) -> list[ExecutionOut]:
        path = f"/monitoring-schedules/{schedule}/executions?limit={limit}"
        if status:
            path += f"&status={status}"
        return [ExecutionOut.model_validate(x) for x in self._call("GET", path)]

    def get_monitoring_execution(self, execution_id: int) -> ExecutionOut:
        return ExecutionOut.model_validate(
            self._call("GET", f"/monitoring-executions/{execution_id}")
        )

    def wait_for_monitoring_execution(
        self, execution_id: int, timeout: float = 600.0
    ) -> ExecutionOut:
        """Poll until the execution has finished (any status but Pending or InProgress)."""
        return poll_until(
            lambda: self.get_monitoring_execution(execution_id),
            lambda e: e.status not in ("Pending", "InProgress"),
            lambda e: f"monitoring execution {execution_id} still {e.status}",
            timeout,
        )

    def monitoring_file(self, execution_id: int, name: str = "report.html") -> bytes:
        response = self.http.get(f"/api/v1/monitoring-executions/{execution_id}/{name}")
        if response.status_code >= 400:
            raise _api_error(response)
        return response.content

    # -- processing and training jobs, pipelines

    def list_jobs(self, kind: str | None = None, status: str | None = None) -> list[JobOut]:
        query = "&".join(f"{k}={v}" for k, v in (("kind", kind), ("status", status)) if v)
        return [
            JobOut.model_validate(j)
            for j in self._call("GET", f"/jobs{'?' + query if query else ''}")
        ]

    def describe_job(self, kind: str, name: str) -> JobOut:
        return JobOut.model_validate(self._call("GET", f"/jobs/{kind}/{name}"))

    def job_log(self, kind: str, name: str, lines: int = 200) -> list[str]:
        return list(self._call("GET", f"/jobs/{kind}/{name}/log?lines={lines}")["lines"])

    def stop_job(self, kind: str, name: str) -> JobOut:
        return JobOut.model_validate(self._call("POST", f"/jobs/{kind}/{name}/stop"))

    def create_pipeline(self, name: str, definition: dict[str, Any], **options: Any) -> PipelineOut:
        """Create a pipeline from a SageMaker pipeline definition (the SDK's
        `pipeline.definition()`, parsed). `options`: role_arn, description, parallelism."""
        body = {"name": name, "definition": definition, **options}
        return PipelineOut.model_validate(self._call("POST", "/pipelines", body))

    def update_pipeline(
        self, name: str, definition: dict[str, Any] | None = None, **options: Any
    ) -> PipelineOut:
        """A new definition (a new version), description or parallelism."""
        body = {"definition": definition, **options}
        return PipelineOut.model_validate(self._call("PUT", f"/pipelines/{name}", body))

    def list_pipelines(self) -> list[PipelineOut]:
        return [PipelineOut.model_validate(p) for p in self._call("GET", "/pipelines")]

    def describe_pipeline(self, name: str) -> PipelineOut:
        return PipelineOut.model_validate(self._call("GET", f"/pipelines/{name}"))

    def start_pipeline(
        self,
        name: str,
        parameters: dict[str, Any] | None = None,
        steps: Sequence[str] | None = None,
        source: str | None = None,
    ) -> PipelineExecutionOut:
        """Start an execution; with `steps`, only those run, the steps they wait for
        taking their results from the execution `source`."""
        body: dict[str, Any] = {"parameters": parameters or {}}
        if steps is not None:
            body["steps"] = list(steps)
        if source is not None:
            body["source"] = source
        return PipelineExecutionOut.model_validate(
            self._call("POST", f"/pipelines/{name}/executions", body)
        )

    def list_executions(self, pipeline: str) -> list[PipelineExecutionOut]:
        return [
            PipelineExecutionOut.model_validate(x)
            for x in self._call("GET", f"/pipelines/{pipeline}/executions")
        ]

    def describe_execution(self, execution_id: str) -> PipelineExecutionOut:
        return PipelineExecutionOut.model_validate(self._call("GET", f"/executions/{execution_id}"))

    def stop_execution(self, execution_id: str) -> PipelineExecutionOut:
        return PipelineExecutionOut.model_validate(
            self._call("POST", f"/executions/{execution_id}/stop")
        )

    def retry_execution(self, execution_id: str) -> PipelineExecutionOut:
        return PipelineExecutionOut.model_validate(
            self._call("POST", f"/executions/{execution_id}/retry")
        )

    def why_missed(self, execution_id: str, step: str) -> list[str]:
        answer = self._call("GET", f"/executions/{execution_id}/steps/{step}/why-missed")
        return list(answer["reasons"])

    def wait_for_execution(
        self,
        execution_id: str,
        timeout: float = 24 * 3600,
        poll: float = 0.5,
        on_progress: Callable[[PipelineExecutionOut], None] | None = None,
    ) -> PipelineExecutionOut:
        """Poll until the execution has ended (Succeeded, Failed or Stopped)."""
        return poll_until(
            lambda: self.describe_execution(execution_id),
            lambda e: e.status.finished,
            lambda e: f"pipeline execution {execution_id} is still {e.status}",
            timeout,
            poll,
            on_progress,
        )

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        response = self.http.request(method, f"/api/v1{path}", json=body)
        if response.status_code >= 400:
            raise _api_error(response)
        return response.json() if response.content else None


def _package_path(ref: str) -> str:
    group, sep, version = ref.partition("/") if "/" in ref else ref.partition("@")
    if not sep or not group or not version:
        raise errors.ValidationError(
            f"{ref!r} names no model package: use GROUP/VERSION or GROUP@latest-approved",
            field="package",
        )
    return f"/model-package-groups/{group}/packages/{version}"


def _api_error(response: httpx.Response) -> errors.SluiceError:
    try:
        doc = response.json()
        return _error(
            response.status_code, doc.get("error", ""), doc.get("message", ""), doc.get("field")
        )
    except ValueError:
        return _error(response.status_code, "", response.text, None)


def _runtime_error(response: httpx.Response) -> errors.SluiceError:
    try:
        doc = response.json()
    except ValueError:
        doc = {"Message": response.text}
    if response.status_code == errors.ModelError.status:
        return errors.ModelError(
            doc.get("OriginalMessage", doc.get("Message", "")),
            original_status=int(doc.get("OriginalStatusCode", 500)),
        )
    return _error(
        response.status_code, doc.get("ErrorCode", ""), doc.get("Message", ""), doc.get("Field")
    )


def _error(status: int, code: str, message: str, field: str | None) -> errors.SluiceError:
    by_status: dict[int, type[errors.SluiceError]] = {
        400: errors.ValidationError,
        404: errors.NotFound,
        409: errors.AlreadyExists,
        413: errors.PayloadTooLarge,
        415: errors.UnsupportedContentType,
        503: errors.WorkerUnavailable,
    }
    error = by_status.get(status, errors.SluiceError)(message or f"HTTP {status}", field=field)
    if code:
        error.code = code
    error.status = status
    return error
