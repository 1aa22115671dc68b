"""Runtime names to classes (built-ins plus entry points "sluice.runtimes"), and detection."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from importlib.metadata import entry_points
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from sluice.errors import ValidationError

if TYPE_CHECKING:  # the gateway detects runtimes without importing numpy
    from sluice.runtimes.base import Runtime

BUILTIN = {
    "sklearn": "sluice.runtimes.sklearn:SklearnRuntime",
    "onnx": "sluice.runtimes.onnx:OnnxRuntime",
    "python": "sluice.runtimes.handler:HandlerRuntime",
    "multi-model": "sluice.runtimes.multi_model:MultiModelRuntime",
    "containers": "sluice.runtimes.containers:ContainersRuntime",
}
MULTI_MODEL = "multi-model"
"""The runtime of a multi-model container: its worker loads the models it is asked for."""
CONTAINERS = "containers"
"""The runtime of a multi-container model: its worker runs every container."""
INTERNAL = (MULTI_MODEL, CONTAINERS)
"""Runtimes the server chooses from a model's definition, never by name."""
ALIASES = {"scikit-learn": "sklearn", "handler": "python", "onnxruntime": "onnx"}
# Image-name hints, checked in order (SageMaker's framework container names).
IMAGE_HINTS = (
    ("scikit-learn", "sklearn"),
    ("sklearn", "sklearn"),
    ("onnx", "onnx"),
    ("pytorch", "python"),
)


PROGRAM = "SAGEMAKER_PROGRAM"
"""The handler script in the model's code/ (inference.py when unset), as SageMaker's
framework containers read it."""
SUBMIT_DIRECTORY = "SAGEMAKER_SUBMIT_DIRECTORY"
"""Where the handler's code is (a sourcedir.tar.gz); unpacked into the model's code/."""
SAGEMAKER_FORM = "sagemaker"
"""SLUICE_ANSWER's value for SageMaker's answer form: JSON answers hold the predictions alone."""
SAGEMAKER_IMAGES = ("sagemaker-scikit-learn",)
"""Image names of SageMaker framework containers whose answer form sluice follows."""


def serving_environment(environment: Mapping[str, str], image: str | None) -> dict[str, str]:
    """A model's environment as its worker gets it: for an image of a SageMaker framework
    container, SLUICE_ANSWER=sagemaker (JSON answered as that container answers it: the
    predictions alone) unless the model sets SLUICE_ANSWER itself (`sluice` for sluice's
    answer, every named output)."""
    out = dict(environment)
    if image and "SLUICE_ANSWER" not in out:
        lowered = image.lower()
        if any(name in lowered for name in SAGEMAKER_IMAGES):
            out["SLUICE_ANSWER"] = SAGEMAKER_FORM
    return out


def handler_script(environment: Mapping[str, str]) -> str:
    """The handler script's path in the model's code/: SAGEMAKER_PROGRAM, else inference.py;
    refused when it would lead out of code/."""
    program = environment.get(PROGRAM) or "inference.py"
    path = PurePosixPath(program)
    if path.is_absolute() or ".." in path.parts or "\\" in program or not path.parts:
        raise ValidationError(
            f"{PROGRAM} names a script in the model's code (a relative path), not {program!r}",
            field=f"Environment.{PROGRAM}",
        )
    return program


def available() -> dict[str, str]:
    """Every runtime name with the import path of its class."""
    found = dict(BUILTIN)
    for ep in entry_points(group="sluice.runtimes"):
        found.setdefault(ep.name, ep.value)
    return found


def canonical(name: str) -> str:
    name = ALIASES.get(name.strip().lower(), name.strip().lower())
    if name not in available():
        raise ValidationError(
            f"unknown runtime {name!r}; known: {', '.join(sorted(available()))}", field="runtime"
        )
    return name


def choose(
    runtime: str | None,
    model_dir: Path,
    environment: Mapping[str, str],
    image: str | None = None,
) -> str:
    """The runtime named, or else the one the files, environment and image point to."""
    return canonical(runtime) if runtime else detect(model_dir, environment, image)


def runtime_class(name: str) -> type[Runtime]:
    from sluice.runtimes.base import Runtime

    module_name, _, attr = available()[canonical(name)].partition(":")
    cls = getattr(importlib.import_module(module_name), attr)
    if not (isinstance(cls, type) and issubclass(cls, Runtime)):
        raise TypeError(f"runtime {name!r} ({module_name}:{attr}) is not a Runtime subclass")
    return cls


def detect(model_dir: Path, environment: Mapping[str, str], image: str | None = None) -> str:
    """Choose a runtime: SLUICE_RUNTIME, then a handler script, then the image name, then files."""
    if environment.get("SLUICE_RUNTIME"):
        return canonical(environment["SLUICE_RUNTIME"])
    if (model_dir / "code" / handler_script(environment)).is_file():
        return "python"
    lowered = (image or "").lower()
    for hint, name in IMAGE_HINTS:
        if hint in lowered:
            return name
    if any(model_dir.glob("*.onnx")):
        return "onnx"
    if any(p for pattern in ("*.joblib", "*.pkl", "*.pickle") for p in model_dir.glob(pattern)):
        return "sklearn"
    raise ValidationError(
        "cannot tell which runtime serves this model: set SLUICE_RUNTIME in its environment "
        "(sklearn, onnx, python) or ship model.joblib, model.onnx or code/inference.py",
        field="runtime",
    )
