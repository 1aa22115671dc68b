"""A training job's plan from CreateTrainingJob's members, in script mode, and its end.

Script mode as SageMaker's framework containers run it: the hyperparameters
`sagemaker_program` (the entry point) and `sagemaker_submit_directory` (its source, a
`sourcedir.tar.gz` or a folder) name the code, unpacked at /opt/ml/code; every other
hyperparameter is passed as `--name value`. Channels land at /opt/ml/input/data/<channel>,
the configuration at /opt/ml/input/config ({hyperparameters, inputdataconfig,
resourceconfig}.json), and the environment carries the training toolkit's SM_* variables.
An `AlgorithmSpecification.ContainerEntrypoint` is run as given instead.

At the end, /opt/ml/model is packed into `<S3OutputPath>/<job>/output/model.tar.gz`, a
non-empty /opt/ml/output/data into `output.tar.gz` beside it, and /opt/ml/output/failure
becomes the failure reason.
"""

from __future__ import annotations

import json
import os
import re
import tarfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from sluice.errors import ValidationError
from sluice.jobs.environments import Environment
from sluice.jobs.launch import Program
from sluice.jobs.plan import Input, Plan
from sluice.jobs.staging import check_container_path
from sluice.store.objects import ObjectStore

CODE = "/opt/ml/code"
MODEL = "/opt/ml/model"
OUTPUT = "/opt/ml/output"
INPUT = "/opt/ml/input"
DEFAULT_CHECKPOINTS = "/opt/ml/checkpoints"
HOST = "algo-1"


def hyperparameters(request: dict[str, Any]) -> dict[str, Any]:
    """The hyperparameters as the toolkit reads them: each value JSON-decoded when it is
    JSON (the SDK sends `"\\"train.py\\""`), else the string itself."""
    decoded: dict[str, Any] = {}
    for name, value in (request.get("HyperParameters") or {}).items():
        try:
            decoded[name] = json.loads(value)
        except ValueError:
            decoded[name] = value
    return decoded


def plan(name: str, request: dict[str, Any], environment: Environment, region: str) -> Plan:
    spec = request.get("AlgorithmSpecification") or {}
    if spec.get("TrainingInputMode", "File") != "File":
        raise ValidationError(
            f"TrainingInputMode {spec['TrainingInputMode']} is not served (File is)",
            field="AlgorithmSpecification.TrainingInputMode",
        )
    hps = hyperparameters(request)
    user = {k: v for k, v in hps.items() if not k.startswith("sagemaker_")}
    channels = [_channel(i, c) for i, c in enumerate(request.get("InputDataConfig") or [])]
    names = [PurePosixPath(c.path).name for c in channels]
    if len(set(names)) != len(names):
        raise ValidationError("channel names must differ", field="InputDataConfig")
    entry = spec.get("ContainerEntrypoint")
    program = hps.get("sagemaker_program")
    inputs = list(channels)
    if entry:
        argv = [*entry, *(spec.get("ContainerArguments") or [])]
        argv[0] = environment.program(argv[0], "AlgorithmSpecification.ContainerEntrypoint")
    elif isinstance(program, str) and program:
        if Path(program).is_absolute() or ".." in Path(program).parts:
            raise ValidationError(
                "sagemaker_program must name a file inside the submit directory",
                field="HyperParameters.sagemaker_program",
            )
        submit = hps.get("sagemaker_submit_directory")
        if not isinstance(submit, str) or not submit:
            raise ValidationError(
                "script mode needs the hyperparameter sagemaker_submit_directory (the "
                "entry point's source: a sourcedir.tar.gz or a folder)",
                field="HyperParameters.sagemaker_submit_directory",
            )
        inputs.append(
            Input(submit, CODE, "S3Prefix", "HyperParameters.sagemaker_submit_directory", True)
        )
        runner = [environment.interpreter] if program.endswith(".py") else ["/bin/sh"]
        argv = [*runner, program, *_arguments(user)]
    else:
        raise ValidationError(
            "built-in algorithms are not served: use script mode (the hyperparameters "
            "sagemaker_program and sagemaker_submit_directory, as the SDK's framework "
            "estimators send) or AlgorithmSpecification.ContainerEntrypoint",
            field="AlgorithmSpecification",
        )
    checkpoints = (request.get("CheckpointConfig") or {}).get("LocalPath") or DEFAULT_CHECKPOINTS
    check_container_path(checkpoints, "/opt/ml", "CheckpointConfig.LocalPath")
    resources = request.get("ResourceConfig") or {}
    input_config = {
        name: {
            "TrainingInputMode": "File",
            "S3DistributionType": "FullyReplicated",
            "RecordWrapperType": "None",
        }
        for name in names
    }
    resource_config = {
        "current_host": HOST,
        "current_instance_type": resources.get("InstanceType", "local"),
        "hosts": [HOST],
        "network_interface_name": "eth0",
    }
    env = environment.base(region)
    env.update(
        {
            "PYTHONPATH": CODE,
            "TRAINING_JOB_NAME": name,
            "SM_TRAINING_ENV": json.dumps(
                {
                    "job_name": name,
                    "hyperparameters": user,
                    "channel_input_dirs": {n: f"{INPUT}/data/{n}" for n in names},
                    "model_dir": MODEL,
                    "output_data_dir": f"{OUTPUT}/data",
                    "hosts": [HOST],
                    "current_host": HOST,
                    "num_cpus": os.cpu_count() or 1,
                    "num_gpus": 0,
                }
            ),
            "SM_HOSTS": json.dumps([HOST]),
            "SM_CURRENT_HOST": HOST,
            "SM_NETWORK_INTERFACE_NAME": "eth0",
            "SM_NUM_CPUS": str(os.cpu_count() or 1),
            "SM_NUM_GPUS": "0",
            "SM_MODEL_DIR": MODEL,
            "SM_INPUT_DIR": INPUT,
            "SM_INPUT_CONFIG_DIR": f"{INPUT}/config",
            "SM_INPUT_DATA_CONFIG": json.dumps(input_config),
            "SM_RESOURCE_CONFIG": json.dumps(resource_config),
            "SM_OUTPUT_DIR": OUTPUT,
            "SM_OUTPUT_DATA_DIR": f"{OUTPUT}/data",
            "SM_OUTPUT_INTERMEDIATE_DIR": f"{OUTPUT}/intermediate",
            "SM_CHANNELS": json.dumps(sorted(names)),
            "SM_HPS": json.dumps(user),
            "SM_USER_ARGS": json.dumps(_arguments(user)),
            "SM_MODULE_DIR": str(hps.get("sagemaker_submit_directory", "")),
            "SM_USER_ENTRY_POINT": str(program or ""),
            "SM_MODULE_NAME": Path(str(program or "")).stem,
            "SM_LOG_LEVEL": str(hps.get("sagemaker_container_log_level", 20)),
            "SM_CHECKPOINT_DIR": checkpoints,
        }
    )
    env.update({f"SM_CHANNEL_{n.upper()}": f"{INPUT}/data/{n}" for n in names})
    env.update({f"SM_HP_{k.upper()}": _text(v) for k, v in user.items()})
    env.update(request.get("Environment") or {})
    files = {
        f"{INPUT}/config/hyperparameters.json": json.dumps(request.get("HyperParameters") or {}),
        f"{INPUT}/config/inputdataconfig.json": json.dumps(input_config),
        f"{INPUT}/config/resourceconfig.json": json.dumps(resource_config),
    }
    limit = (request.get("StoppingCondition") or {}).get("MaxRuntimeInSeconds")
    return Plan(
        Program(argv, env, CODE),
        inputs,
        [],
        files,
        [CODE, MODEL, f"{OUTPUT}/data", f"{OUTPUT}/intermediate", checkpoints],
        float(limit) if limit else None,
        resources.get("InstanceType"),
    )


def checkpoint_path(request: dict[str, Any]) -> str:
    return (request.get("CheckpointConfig") or {}).get("LocalPath") or DEFAULT_CHECKPOINTS


def _channel(index: int, spec: dict[str, Any]) -> Input:
    where = f"InputDataConfig[{index}]"
    name = spec["ChannelName"]
    if not re.fullmatch(r"[A-Za-z0-9\.\-_]+", name):
        raise ValidationError(f"channel name {name!r} is not valid", field=f"{where}.ChannelName")
    source = spec["DataSource"].get("S3DataSource")
    if source is None:
        raise ValidationError(
            f"{where}.DataSource.S3DataSource is required (file system sources are not served)",
            field=f"{where}.DataSource",
        )
    if spec.get("InputMode", "File") != "File":
        raise ValidationError(
            f"{where}.InputMode {spec['InputMode']} is not served (File is)",
            field=f"{where}.InputMode",
        )
    if spec.get("CompressionType", "None") != "None":
        raise ValidationError(
            f"{where}.CompressionType Gzip is for Pipe mode, which is not served",
            field=f"{where}.CompressionType",
        )
    return Input(
        source["S3Uri"],
        f"{INPUT}/data/{name}",
        source.get("S3DataType", "S3Prefix"),
        f"{where}.DataSource.S3DataSource.S3Uri",
    )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _arguments(user: dict[str, Any]) -> list[str]:
    argv: list[str] = []
    for name, value in sorted(user.items()):
        argv += [f"--{name}", _text(value)]
    return argv


@dataclass
class MetricReader:
    """`MetricDefinitions` applied to each log line: the last value of each metric, and
    every value read (for the metric's series)."""

    definitions: list[dict[str, str]]
    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    points: list[tuple[str, float, float]] = field(default_factory=list)
    """Every value read since the last `take`: (metric, value, epoch seconds)."""

    def __post_init__(self) -> None:
        self.patterns = []
        for i, definition in enumerate(self.definitions):
            try:
                self.patterns.append((definition["Name"], re.compile(definition["Regex"])))
            except re.error as exc:
                raise ValidationError(
                    f"MetricDefinitions[{i}].Regex is not a regular expression: {exc}",
                    field=f"AlgorithmSpecification.MetricDefinitions[{i}].Regex",
                ) from exc

    def read(self, line: str) -> bool:
        """True when the line gave a value."""
        found = False
        for name, pattern in self.patterns:
            match = pattern.search(line)
            if match is None:
                continue
            try:
                value = float(match.group(1) if match.groups() else match.group(0))
            except (ValueError, IndexError):
                continue
            now = datetime.now(UTC).timestamp()
            self.values[name] = {"value": value, "timestamp": now}
            self.points.append((name, value, now))
            found = True
        return found

    def take(self) -> list[tuple[str, float, float]]:
        """The values read since the last call (a metric series' new points)."""
        taken, self.points = self.points, []
        return taken


def model_uri(request: dict[str, Any], name: str) -> str:
    return f"{request['OutputDataConfig']['S3OutputPath'].rstrip('/')}/{name}/output/model.tar.gz"


def pack(root: Path, objects: ObjectStore, request: dict[str, Any], name: str) -> str:
    """Pack /opt/ml/model (and /opt/ml/output/data when it holds files) beside each other
    under the output path; the model archive's URI."""
    uri = model_uri(request, name)
    _pack_to(root / "model", objects, uri, "OutputDataConfig.S3OutputPath")
    data = root / "output" / "data"
    if data.is_dir() and any(data.iterdir()):
        _pack_to(
            data,
            objects,
            uri.replace("/model.tar.gz", "/output.tar.gz"),
            "OutputDataConfig.S3OutputPath",
        )
    return uri


def _pack_to(folder: Path, objects: ObjectStore, uri: str, field: str) -> None:
    target = objects.writable(uri, field)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.part")
    with tarfile.open(staging, "w:gz", compresslevel=6) as tar:
        for path in sorted(folder.iterdir()) if folder.is_dir() else []:
            tar.add(path, arcname=path.name)
    os.replace(staging, target)
    key = objects.remote(uri, field)
    if key is not None:
        objects.upload(target, key)


def failure(root: Path) -> str | None:
    """What the program wrote to /opt/ml/output/failure, if anything."""
    path = root / "output" / "failure"
    if path.is_file():
        text = path.read_text(errors="replace").strip()
        return text[:1024] or None
    return None
