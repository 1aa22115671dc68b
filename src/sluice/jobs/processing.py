"""A processing job's plan from CreateProcessingJob's members.

The program is `AppSpecification.ContainerEntrypoint` + `ContainerArguments`; its inputs
land at their `LocalPath` (under /opt/ml/processing), and what it leaves at each
output's `LocalPath` is sent to the output's `S3Uri` when it ends well. As in SageMaker's
containers, /opt/ml/config holds processingjobconfig.json and resourceconfig.json.
"""

from __future__ import annotations

import json
from typing import Any

from sluice.errors import ValidationError
from sluice.jobs.environments import Environment
from sluice.jobs.launch import Program
from sluice.jobs.plan import Input, Output, Plan
from sluice.jobs.staging import check_container_path

PROCESSING_ROOT = "/opt/ml/processing"


def plan(name: str, request: dict[str, Any], environment: Environment, region: str) -> Plan:
    app = request["AppSpecification"]
    argv = [*(app.get("ContainerEntrypoint") or []), *(app.get("ContainerArguments") or [])]
    if not app.get("ContainerEntrypoint"):
        raise ValidationError(
            "AppSpecification.ContainerEntrypoint is required: with no container engine, "
            "sluice cannot know an image's own entry point",
            field="AppSpecification.ContainerEntrypoint",
        )
    argv[0] = environment.program(argv[0], "AppSpecification.ContainerEntrypoint")
    inputs = [_input(i, spec) for i, spec in enumerate(request.get("ProcessingInputs") or [])]
    outputs = [
        _output(i, spec)
        for i, spec in enumerate((request.get("ProcessingOutputConfig") or {}).get("Outputs", []))
    ]
    _no_overlap([i.path for i in inputs] + [o.path for o in outputs])
    env = {**environment.base(region), **(request.get("Environment") or {})}
    resources = request["ProcessingResources"]["ClusterConfig"]
    files = {
        "/opt/ml/config/processingjobconfig.json": json.dumps(
            {key: value for key, value in request.items() if key != "Tags"}
            | {"ProcessingJobName": name}
        ),
        "/opt/ml/config/resourceconfig.json": json.dumps(
            {
                "current_host": "algo-1",
                "hosts": ["algo-1"],
                "instance_type": resources.get("InstanceType"),
            }
        ),
    }
    limit = (request.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds")
    return Plan(
        Program(argv, env, PROCESSING_ROOT),
        inputs,
        outputs,
        files,
        [PROCESSING_ROOT, *(o.path for o in outputs)],
        float(limit) if limit else None,
        resources.get("InstanceType"),
    )


def _input(index: int, spec: dict[str, Any]) -> Input:
    where = f"ProcessingInputs[{index}]"
    source = spec.get("S3Input")
    if source is None:
        raise ValidationError(
            f"{where}.S3Input is required (DatasetDefinition inputs are not served)", field=where
        )
    if source.get("S3InputMode", "File") != "File":
        raise ValidationError(
            f"{where}.S3Input.S3InputMode {source['S3InputMode']} is not served (File is)",
            field=f"{where}.S3Input.S3InputMode",
        )
    if source.get("S3CompressionType", "None") != "None":
        raise ValidationError(
            f"{where}.S3Input.S3CompressionType Gzip is for Pipe mode, which is not served",
            field=f"{where}.S3Input.S3CompressionType",
        )
    path = source["LocalPath"]
    check_container_path(path, PROCESSING_ROOT, f"{where}.S3Input.LocalPath")
    return Input(
        source["S3Uri"], path, source.get("S3DataType", "S3Prefix"), f"{where}.S3Input.S3Uri"
    )


def _output(index: int, spec: dict[str, Any]) -> Output:
    where = f"ProcessingOutputConfig.Outputs[{index}]"
    target = spec.get("S3Output")
    if target is None:
        raise ValidationError(
            f"{where}.S3Output is required (Feature Store outputs are not served)", field=where
        )
    path = target["LocalPath"]
    check_container_path(path, PROCESSING_ROOT, f"{where}.S3Output.LocalPath")
    continuous = target.get("S3UploadMode") == "Continuous"
    return Output(path, target["S3Uri"], f"{where}.S3Output.S3Uri", continuous)


def _no_overlap(paths: list[str]) -> None:
    seen: list[str] = []
    for path in paths:
        clean = path.rstrip("/")
        for other in seen:
            if clean == other or clean.startswith(other + "/") or other.startswith(clean + "/"):
                raise ValidationError(
                    f"LocalPath {path!r} overlaps {other!r}: each input and output needs a "
                    "folder of its own",
                    field="ProcessingInputs",
                )
        seen.append(clean)
