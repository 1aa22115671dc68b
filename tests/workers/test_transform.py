"""A transform chunk inside a worker: mini-batches, input order, bad records found by
halving, gzip, whole-file records."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sluice.errors import UnsupportedContentType
from sluice.runtimes.sklearn import SklearnRuntime
from sluice.workers.transform import run
from tests import models


class Counting(SklearnRuntime):
    def __init__(self, model_dir: Path) -> None:
        super().__init__(model_dir, {"SLUICE_PREDICT_PROBA": "false"})
        self.calls = 0
        self.load()

    def invoke(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        self.calls += 1
        return super().invoke(body, content_type, accept)


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Counting:
    folder = tmp_path_factory.mktemp("model")
    models.write_sklearn(folder, models.digits_logreg())
    return Counting(folder)


def chunk(tmp_path: Path, body: bytes, **options: Any) -> bytes:
    source = tmp_path / "input"
    source.write_bytes(body)
    request = {
        "input": str(source),
        "output": str(tmp_path / "part.out"),
        "errors": str(tmp_path / "part.errors"),
        "content_type": "text/csv",
        "accept": "text/csv",
        "assemble": "Line",
        **options,
    }
    return json.dumps(request).encode()


def rows(n: int, start: int = 0) -> tuple[np.ndarray, bytes]:
    x, _ = models.digits()
    picked = x[start : start + n]
    return picked, "".join(",".join(f"{v:g}" for v in r) + "\n" for r in picked).encode()


def test_records_go_in_payload_sized_batches_and_come_back_in_order(
    runtime: Counting, tmp_path: Path
) -> None:
    x, body = rows(100)
    runtime.calls = 0
    summary = run(runtime, chunk(tmp_path, body, max_payload=len(body) // 4 + 1))
    assert summary == {"records": 100, "failed": 0, "error": None, "content_type": "text/csv"}
    assert 4 <= runtime.calls <= 5
    expected = [str(p) for p in runtime.model.predict(x)]
    assert (tmp_path / "part.out").read_text().splitlines() == expected
    assert not (tmp_path / "part.errors").exists()

    runtime.calls = 0
    run(runtime, chunk(tmp_path, body, strategy="SingleRecord"))
    assert runtime.calls == 100
    assert (tmp_path / "part.out").read_text().splitlines() == expected


def test_a_byte_range_is_read_with_its_own_line_numbers(runtime: Counting, tmp_path: Path) -> None:
    _, head = rows(10)
    _, tail = rows(5, start=10)
    body = head + b"1,2\n" + tail
    start = len(head)
    summary = run(runtime, chunk(tmp_path, body, start=start, end=len(body), first_line=11))
    assert summary["error"] == {"line": 11, "message": summary["error"]["message"]}
    assert summary["stopped"] and "64 features" in summary["error"]["message"]


def test_bad_records_are_set_aside_when_asked(runtime: Counting, tmp_path: Path) -> None:
    x, body = rows(40)
    lines = body.splitlines(keepends=True)
    lines[6] = b"oops,not,numbers\n"
    lines[30] = b"\n"  # a blank line is no record
    lines[33] = b"1,2,3\n"
    summary = run(runtime, chunk(tmp_path, b"".join(lines), on_bad_record="continue"))
    assert summary["records"] == 37 and summary["failed"] == 2
    assert summary["error"]["line"] == 7
    errors = [json.loads(line) for line in (tmp_path / "part.errors").read_text().splitlines()]
    assert [e["line"] for e in errors] == [7, 34]
    kept = np.delete(x, [6, 30, 33], axis=0)
    expected = [str(p) for p in runtime.model.predict(kept)]
    assert (tmp_path / "part.out").read_text().splitlines() == expected


def test_gzip_and_whole_file_records(runtime: Counting, tmp_path: Path) -> None:
    x, body = rows(8)
    run(runtime, chunk(tmp_path, gzip.compress(body), compression="Gzip"))
    expected = [str(p) for p in runtime.model.predict(x)]
    assert (tmp_path / "part.out").read_text().splitlines() == expected
    document = json.dumps(x.tolist()).encode()
    runtime.calls = 0
    options = {"split": "None", "content_type": "application/json", "assemble": "None"}
    summary = run(runtime, chunk(tmp_path, document, **options))
    assert runtime.calls == 1 and summary["records"] == 1
    assert (tmp_path / "part.out").read_text().splitlines() == expected
    with pytest.raises(Exception, match="decompress"):
        run(runtime, chunk(tmp_path, b"not gzip", compression="Gzip"))


def test_a_content_type_no_record_can_fix_fails_the_chunk(
    runtime: Counting, tmp_path: Path
) -> None:
    _, body = rows(10)
    runtime.calls = 0
    with pytest.raises(UnsupportedContentType):
        run(runtime, chunk(tmp_path, body, content_type="text/x-unknown", on_bad_record="continue"))
    assert runtime.calls == 1


class Counter(SklearnRuntime):
    """Answers each request with how many RecordIO records it held."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    def invoke(self, body: bytes, content_type: str, accept: str) -> tuple[bytes, str]:
        from sluice.recordio import records

        self.bodies.append(body)
        return str(len(list(records(body)))).encode(), "text/plain"


def test_recordio_records_go_framed_in_payload_sized_batches(tmp_path: Path) -> None:
    from sluice.recordio import frame

    body = b"".join(frame(f"r{i}".encode() * 10) for i in range(9))
    runtime = Counter()
    options = {"split": "RecordIO", "max_payload": 100, "content_type": "application/x-recordio"}
    summary = run(runtime, chunk(tmp_path, body, **options))
    assert summary["records"] == 9
    assert b"".join(runtime.bodies) == body  # every record once, in order, framed
    counts = [int(n) for n in (tmp_path / "part.out").read_text().split()]
    assert sum(counts) == 9 and len(counts) == len(runtime.bodies) > 1
