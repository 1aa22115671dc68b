from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sluice.errors import ValidationError
from sluice.runtimes.container_manifest import read_manifest, write_manifest
from sluice.runtimes.containers import ContainersRuntime
from tests import models

# Halves every value it reads; answers CSV unless told otherwise by its environment.
HALVE = """
import json
import numpy as np

def model_fn(model_dir):
    return None

def input_fn(body, content_type):
    rows = np.asarray(json.loads(body), dtype=float)
    if rows.min() < 0:
        raise ValueError("negative")
    return rows

def predict_fn(rows, model):
    return rows / 2

def output_fn(rows, accept):
    if accept == "application/json":
        return json.dumps(rows.tolist()), accept
    return "\\n".join(",".join(str(v) for v in row) for row in rows) + "\\n", "text/csv"
"""


@pytest.fixture
def store(tmp_path: Path) -> Path:
    halve = models.write_handler(tmp_path / "halve", HALVE, with_model=False)
    twice = [
        {"hostname": "first", "directory": str(halve), "runtime": "python", "environment": {}},
        {"hostname": "second", "directory": str(halve), "runtime": "python",
         "environment": {"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "application/json"}},
    ]  # fmt: skip
    return write_manifest(tmp_path, "Serial", twice)


def test_a_batch_goes_through_each_step_and_a_failure_stays_its_own(store: Path) -> None:
    runtime = ContainersRuntime(store, {})
    runtime.load()
    assert read_manifest(store) == ("Serial", ["first", "second"])
    answers = runtime.invoke_many(
        [
            (b"[[8, 4]]", "application/json", "text/csv"),
            (b"[[-1, 4]]", "application/json", "text/csv"),
            (b"[[16, 0]]", "application/json", "application/json"),
        ]
    )
    assert answers[0] == (b"2.0,1.0\n", "text/csv")  # the client's Accept, at the end
    assert isinstance(answers[1], ValidationError) and "negative" in answers[1].message
    assert answers[2] == (b"[[4.0, 0.0]]", "application/json")
    assert runtime.step_seconds is not None and len(runtime.step_seconds) == 2


def test_direct_mode_answers_only_the_container_named(
    tmp_path: Path, artifacts: dict[str, Path]
) -> None:
    for name in ("logreg", "tree"):  # into the store
        shutil.copytree(artifacts[name], tmp_path / name)
    entries = [
        {"hostname": name, "directory": str(tmp_path / name), "runtime": "sklearn",
         "environment": {}}
        for name in ("logreg", "tree")
    ]  # fmt: skip
    runtime = ContainersRuntime(write_manifest(tmp_path, "Direct", entries), {})
    runtime.load()
    row = json.dumps([models.digits()[0][0].tolist()]).encode()
    answers, outcome = runtime.invoke_target("", "tree", [(row, "application/json", "")])
    assert json.loads(answers[0][0])["predictions"] == [0] and outcome is None  # type: ignore[index]
    with pytest.raises(ValidationError, match="no container"):
        runtime.invoke_target("", "forest", [(row, "application/json", "")])
    refused = runtime.invoke_many([(row, "application/json", "")])[0]
    assert isinstance(refused, ValidationError) and "TargetContainerHostname" in refused.message


def test_a_container_outside_the_store_is_refused(tmp_path: Path) -> None:
    entries = [{"hostname": "x", "directory": "/", "runtime": "sklearn", "environment": {}}] * 2
    runtime = ContainersRuntime(write_manifest(tmp_path / "store", "Serial", entries), {})
    with pytest.raises(ValueError, match="outside the artifact store"):
        runtime.load()
