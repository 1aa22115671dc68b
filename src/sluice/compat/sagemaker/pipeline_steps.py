"""A pipeline's job-like steps run through SageMaker's own operations.

A step's `Arguments` are the request of its Create operation (less the name, which the
execution makes up): they are checked against the service model as any request is,
then run by the same services. What later steps may reference (`Steps.<name>...`) is the
matching Describe operation's answer.

| step | runs | its properties |
| --- | --- | --- |
| Processing | CreateProcessingJob | DescribeProcessingJob |
| Training | CreateTrainingJob | DescribeTrainingJob |
| Transform | CreateTransformJob | DescribeTransformJob |
| Model | CreateModel | DescribeModel |
| RegisterModel | CreateModelPackage (its group made if missing) | DescribeModelPackage |
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

from sluice.compat.sagemaker.control import to_wire
from sluice.compat.sagemaker.idempotency import Idempotency
from sluice.compat.sagemaker.operations import OPERATIONS, Services
from sluice.compat.sagemaker.operations.jobs import describe_processing, describe_training
from sluice.compat.sagemaker.shapes import LazyServiceModel
from sluice.control.pipelines import Outcome
from sluice.entities import JobKind, JobStatus, ResourceKind, StepStatus
from sluice.errors import NotFound, SluiceError, ValidationError
from sluice.store.artifacts import digest_path

POLL_S = 0.1
JOBS = {"Processing": JobKind.PROCESSING, "Training": JobKind.TRAINING}
NAME_MEMBER = {
    "Processing": "ProcessingJobName",
    "Training": "TrainingJobName",
    "Transform": "TransformJobName",
    "Model": "ModelName",
}
METADATA = {
    "Processing": ("ProcessingJob", ResourceKind.PROCESSING_JOB),
    "Training": ("TrainingJob", ResourceKind.TRAINING_JOB),
    "Transform": ("TransformJob", ResourceKind.TRANSFORM_JOB),
    "Model": ("Model", ResourceKind.MODEL),
}
JOB_STEP_STATUS = {
    JobStatus.COMPLETED: StepStatus.SUCCEEDED,
    JobStatus.FAILED: StepStatus.FAILED,
    JobStatus.STOPPED: StepStatus.STOPPED,
}


class SageMakerSteps:
    def __init__(
        self, services: Services, model: LazyServiceModel, idempotency: Idempotency
    ) -> None:
        self.s = services
        self.service_model = model
        self.idempotency = idempotency
        """Registers a RegisterModel step's package once, however often the step starts."""
        self.packages: dict[str, str] = {}
        """RegisterModel steps' packages by the step's resource name (their ARNs)."""

    def metadata(self, step_type: str, name: str) -> dict[str, Any]:
        if step_type not in METADATA:
            return {}
        key, kind = METADATA[step_type]
        return {key: {"Arn": self.s.arns.of(kind, name)}}

    def exists(self, step_type: str, name: str) -> bool:
        try:
            if step_type in JOBS:
                self.s.jobs.get(JOBS[step_type], name)
            elif step_type == "Transform":
                self.s.transforms.get(name)
            elif step_type == "Model":
                self.s.endpoints.get_model(name)
            else:
                return name in self.packages
        except NotFound:
            return False
        return True

    async def start(
        self, step_type: str, name: str, arguments: dict[str, Any], folder: Path
    ) -> None:
        operation = {
            "Processing": "CreateProcessingJob",
            "Training": "CreateTrainingJob",
            "Transform": "CreateTransformJob",
            "Model": "CreateModel",
            "RegisterModel": "CreateModelPackage",
        }[step_type]
        members = dict(arguments)
        if step_type in NAME_MEMBER:
            members[NAME_MEMBER[step_type]] = name
        checked = (await self.service_model.get()).decode_input(operation, members)
        if step_type in JOBS:
            request = {k: v for k, v in checked.items() if k != "Tags"}
            self.s.jobs.create(JOBS[step_type], name, request, folder=folder)
            return
        if step_type == "RegisterModel":
            group = checked.get("ModelPackageGroupName")
            if group:
                try:
                    self.s.registry.get_group(group)
                except NotFound:
                    self.s.registry.create_group(group)
            # Its token is the step's resource name's: a step started again (its server
            # died between registering and recording it) gets the package it made.
            token = checked.get("ClientToken") or hashlib.sha256(name.encode()).hexdigest()[:32]
            answer = await self.idempotency.once(
                operation,
                "ClientToken",
                {**checked, "ClientToken": token},
                lambda: OPERATIONS[operation](self.s, checked),
            )
            self.packages[name] = answer["ModelPackageArn"]
            return
        await OPERATIONS[operation](self.s, checked)

    async def wait(self, step_type: str, name: str) -> Outcome:
        try:
            if step_type in JOBS:
                job = await self.s.jobs.wait(JOBS[step_type], name)
                describe = describe_processing if step_type == "Processing" else describe_training
                return Outcome(
                    JOB_STEP_STATUS[job.status], job.failure_reason, to_wire(describe(self.s, job))
                )
            if step_type == "Transform":
                while not (transform := self.s.transforms.get(name)).status.finished:
                    await asyncio.sleep(POLL_S)
                described = await OPERATIONS["DescribeTransformJob"](
                    self.s, {"TransformJobName": name}
                )
                status = JOB_STEP_STATUS[JobStatus(transform.status.value)]
                return Outcome(status, transform.failure_reason, to_wire(described))
            if step_type == "Model":
                described = await OPERATIONS["DescribeModel"](self.s, {"ModelName": name})
                return Outcome(StepStatus.SUCCEEDED, None, to_wire(described))
            arn = self.packages.pop(name)
            described = await OPERATIONS["DescribeModelPackage"](self.s, {"ModelPackageName": arn})
            return Outcome(
                StepStatus.SUCCEEDED, None, to_wire(described), {"RegisterModel": {"Arn": arn}}
            )
        except SluiceError as exc:
            return Outcome(StepStatus.FAILED, exc.message, {})

    async def stop(self, step_type: str, name: str) -> None:
        if step_type in JOBS:
            await self.s.jobs.stop(JOBS[step_type], name)
        elif step_type == "Transform":
            await self.s.transforms.stop(name)

    def read_json(self, uri: str) -> Any:
        path = self.s.jobs.objects.fetch(uri, "PropertyFile")
        if not path.is_file():
            raise ValidationError(f"{uri!r} is not a file", field="PropertyFile")
        try:
            return json.loads(path.read_text())
        except ValueError as exc:
            raise ValidationError(f"{uri!r} is not JSON: {exc}", field="PropertyFile") from None

    def model(self, name: str) -> str:
        """A digest of what the model is: its unpacked content (the folder is named by its
        content), runtime, image and environment."""
        found = self.s.endpoints.get_model(name)
        what = [found.model_dir, found.runtime, found.image, sorted(found.environment.items())]
        return hashlib.sha256(json.dumps(what, default=str).encode()).hexdigest()

    def digest(self, uri: str) -> str:
        path = self.s.jobs.objects.fetch(uri.rstrip("/") or uri, "S3Uri")
        if not path.exists():
            raise ValidationError(f"{uri!r} does not exist", field="S3Uri")
        return digest_path(path)
