"""An async invocation inside a worker: the paths checked against the server's policy,
the answer put in place whole, leftovers of a killed try swept, bad inputs named."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sluice.errors import ValidationError
from sluice.runtimes.sklearn import SklearnRuntime
from sluice.workers.file_request import Burst, FileRequest
from tests import models


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> SklearnRuntime:
    folder = tmp_path_factory.mktemp("model")
    models.write_sklearn(folder, models.digits_logreg())
    loaded = SklearnRuntime(folder, {})
    loaded.load()
    return loaded


@pytest.fixture
def home(tmp_path: Path) -> Path:
    (tmp_path / "home" / "s3" / "bucket").mkdir(parents=True)
    return tmp_path / "home"


def request(home: Path, source: Path, output: Path, **changes: object) -> FileRequest:
    fields: dict[str, object] = {
        "input": str(source),
        "output": str(output),
        "content_type": "application/json",
        "accept": "application/json",
        "max_input_bytes": 1 << 20,
        "home": str(home),
        **changes,
    }
    return FileRequest(**fields)  # type: ignore[arg-type]


def answer(runtime: SklearnRuntime, request: FileRequest) -> tuple[str, Path]:
    """One request in a burst of its own: the content type and the output's real path."""
    from sluice.workers import file_request

    burst = Burst()
    try:
        (result,) = file_request.answer_many(runtime, [request], burst)
        if isinstance(result, Exception):
            raise result
        return result, burst.written[-1]
    finally:
        burst.close()


def one_row(path: Path) -> Path:
    x, _ = models.digits()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([x[0].tolist()]))
    return path


def test_the_answer_is_written_whole_under_its_name_and_survives_a_json_round_trip(
    runtime: SklearnRuntime, home: Path
) -> None:
    source = one_row(home / "s3" / "bucket" / "in" / "row.json")
    output = home / "s3" / "bucket" / "out" / "a.out"  # its folder does not exist yet
    sent = request(home, source, output)
    assert FileRequest.from_json(sent.to_json()) == sent
    content_type, written = answer(runtime, sent)
    assert content_type == "application/json" and written == output.resolve()
    assert len(json.loads(output.read_text())["predictions"]) == 1
    assert sorted(p.name for p in output.parent.iterdir()) == ["a.out"]  # no staging left


def test_leftovers_of_a_killed_try_are_swept_when_asked(
    runtime: SklearnRuntime, home: Path
) -> None:
    source = one_row(home / "s3" / "bucket" / "in" / "row.json")
    output = home / "s3" / "bucket" / "out" / "a.out"
    output.parent.mkdir(parents=True)
    (output.parent / ".a.out.1234abcd.part").write_text("half")
    answer(runtime, request(home, source, output))
    assert (output.parent / ".a.out.1234abcd.part").exists()  # a first try sweeps nothing
    answer(runtime, request(home, source, output, sweep=True))
    assert sorted(p.name for p in output.parent.iterdir()) == ["a.out"]


def test_paths_outside_the_policy_are_refused_before_anything_is_read_or_written(
    runtime: SklearnRuntime, home: Path, tmp_path: Path
) -> None:
    outside = one_row(tmp_path / "elsewhere" / "row.json")
    inside = one_row(home / "s3" / "bucket" / "in" / "row.json")
    with pytest.raises(ValidationError, match="outside the folders") as refused:
        answer(runtime, request(home, outside, home / "s3" / "bucket" / "a.out"))
    assert refused.value.field == "X-Amzn-SageMaker-InputLocation"
    with pytest.raises(ValidationError, match="outside the folders") as refused:
        answer(runtime, request(home, inside, tmp_path / "elsewhere" / "a.out"))
    assert refused.value.field == "S3OutputPath"
    assert not (tmp_path / "elsewhere" / "a.out").exists()
    # A link inside an allowed folder that leads out is judged by where it leads.
    link = home / "s3" / "bucket" / "link.json"
    link.symlink_to(outside)
    with pytest.raises(ValidationError, match="outside the folders"):
        answer(runtime, request(home, link, home / "s3" / "bucket" / "b.out"))
    with pytest.raises(ValidationError, match="own home"):
        answer(runtime, request(home, inside, home / "server.db"))
    # An operator's root is allowed.
    allowed = request(
        home, outside, tmp_path / "elsewhere" / "c.out", roots=(str(tmp_path / "elsewhere"),)
    )
    assert answer(runtime, allowed)[1].exists()


def test_missing_special_and_oversized_inputs_are_named(
    runtime: SklearnRuntime, home: Path
) -> None:
    output = home / "s3" / "bucket" / "a.out"
    with pytest.raises(ValidationError, match="does not exist"):
        answer(runtime, request(home, home / "s3" / "bucket" / "nothing.json", output))
    fifo = home / "s3" / "bucket" / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(ValidationError, match="not a regular file"):
        answer(runtime, request(home, fifo, output))
    big = one_row(home / "s3" / "bucket" / "big.json")
    with pytest.raises(ValidationError, match="async_max_input_bytes"):
        answer(runtime, request(home, big, output, max_input_bytes=10))
    assert not output.exists()


def test_a_burst_of_requests_is_answered_together_each_into_its_own_output(
    runtime: SklearnRuntime, home: Path
) -> None:
    from sluice.workers import file_request

    x, y = models.digits()
    sources = []
    for i in range(5):
        path = home / "s3" / "bucket" / "in" / f"{i}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(x[i : i + 1].tolist()))
        sources.append(path)
    out = home / "s3" / "bucket" / "out"
    requests = [request(home, source, out / f"{i}.out") for i, source in enumerate(sources)]
    requests[2] = request(home, home / "s3" / "bucket" / "in" / "missing.json", out / "2.out")
    burst = Burst()
    try:
        results = file_request.answer_many(runtime, requests, burst)
    finally:
        burst.close()
    assert isinstance(results[2], ValidationError) and "does not exist" in str(results[2])
    assert [r for i, r in enumerate(results) if i != 2] == ["application/json"] * 4
    for i in (0, 1, 3, 4):
        assert json.loads((out / f"{i}.out").read_text())["predictions"] == [int(y[i])]
    assert not (out / "2.out").exists()
