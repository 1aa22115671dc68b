"""Finding a transform's inputs and cutting them into chunks on line boundaries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sluice.control.transform_inputs import list_inputs, plan_chunks
from sluice.entities import TransformSpec
from sluice.errors import ValidationError
from sluice.store.objects import ObjectStore, PathPolicy


def store(home: Path) -> ObjectStore:
    return ObjectStore(home / "s3", policy=PathPolicy(home))


def put(home: Path, key: str, body: bytes) -> Path:
    path = home / "s3" / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)
    return path


def test_a_prefix_names_objects_relative_to_its_folder(tmp_path: Path) -> None:
    for key in ("b/in/x.csv", "b/in/sub/y.csv", "b/in/.z.part", "b/input-2.csv", "b/other.csv"):
        put(tmp_path, key, b"1\n")
    folder = list_inputs(store(tmp_path), TransformSpec("s3://b/in/", "s3://b/out"))
    assert [(i.uri, i.name) for i in folder] == [
        ("s3://b/in/sub/y.csv", "sub/y.csv"),
        ("s3://b/in/x.csv", "x.csv"),
    ]
    assert list_inputs(store(tmp_path), TransformSpec("s3://b/in", "s3://b/out")) == folder
    prefix = list_inputs(store(tmp_path), TransformSpec("s3://b/inp", "s3://b/out"))
    assert [(i.uri, i.name) for i in prefix] == [("s3://b/input-2.csv", "input-2.csv")]
    with pytest.raises(ValidationError, match="no input objects"):
        list_inputs(store(tmp_path), TransformSpec("s3://b/nothing", "s3://b/out"))


def test_a_manifest_names_keys_under_its_prefix_in_its_order(tmp_path: Path) -> None:
    put(tmp_path, "b/d/one.csv", b"1\n")
    put(tmp_path, "b/d/two.csv", b"2\n")
    manifest = [{"prefix": "s3://b/d"}, "two.csv", "one.csv"]
    put(tmp_path, "b/m.json", json.dumps(manifest).encode())
    spec = TransformSpec("s3://b/m.json", "s3://b/out", data_type="ManifestFile")
    found = list_inputs(store(tmp_path), spec)
    assert [i.name for i in found] == ["two.csv", "one.csv"]
    put(tmp_path, "b/m.json", json.dumps([{"prefix": "s3://b/d/"}, "gone.csv"]).encode())
    with pytest.raises(ValidationError, match="does not exist"):
        list_inputs(store(tmp_path), spec)
    put(tmp_path, "b/m.json", b'{"not": "a list"}')
    with pytest.raises(ValidationError, match="not a manifest"):
        list_inputs(store(tmp_path), spec)


def test_a_manifest_cannot_reach_outside_the_allowed_folders(tmp_path: Path) -> None:
    put(tmp_path, "b/m.json", json.dumps([{"prefix": "/etc/"}, "passwd"]).encode())
    spec = TransformSpec("s3://b/m.json", "s3://b/out", data_type="ManifestFile")
    with pytest.raises(ValidationError, match="outside"):
        list_inputs(store(tmp_path), spec)


@pytest.mark.parametrize("tail", [b"\n", b""])
@pytest.mark.parametrize("chunk_bytes", [1, 7, 20, 1000])
def test_chunks_cover_every_line_once_and_know_their_first_line(
    tmp_path: Path, tail: bytes, chunk_bytes: int
) -> None:
    lines = [f"{i},{'x' * (i % 5)}".encode() for i in range(1, 40)]
    body = b"\n".join(lines) + tail
    path = put(tmp_path, "b/f.csv", body)
    spec = TransformSpec("s3://b/f.csv", "s3://b/out", split_type="Line")
    (source,) = list_inputs(store(tmp_path), spec)
    chunks = plan_chunks([source], spec, chunk_bytes)
    assert chunks[0].start == 0 and chunks[-1].end == len(body)
    seen = []
    for before, after in zip(chunks, chunks[1:], strict=False):
        assert before.end == after.start and after.first_line == before.first_line + before.lines
    for chunk in chunks:
        text = path.read_bytes()[chunk.start : chunk.end]
        got = [line for line in text.split(b"\n") if line]
        assert len(got) == chunk.lines
        assert not got or got[0] == lines[chunk.first_line - 1]
        seen += got
    assert seen == lines


def test_unsplit_and_compressed_inputs_are_one_chunk(tmp_path: Path) -> None:
    put(tmp_path, "b/a.json", b"[[1, 2]]")
    put(tmp_path, "b/empty.csv", b"")
    for spec in (
        TransformSpec("s3://b/a.json", "s3://b/out", split_type="None"),
        TransformSpec("s3://b/a.json", "s3://b/out", split_type="Line", compression="Gzip"),
    ):
        (chunk,) = plan_chunks(list_inputs(store(tmp_path), spec), spec, 2)
        assert (chunk.start, chunk.end, chunk.first_line) == (0, -1, 1)
    spec = TransformSpec("s3://b/empty.csv", "s3://b/out", split_type="Line")
    (chunk,) = plan_chunks(list_inputs(store(tmp_path), spec), spec, 2)
    assert (chunk.start, chunk.end, chunk.lines) == (0, 0, 0)


def test_recordio_inputs_are_cut_between_whole_records(tmp_path: Path) -> None:
    from sluice.recordio import HEADER, MAGIC, frame

    # Ten records, the fourth in three parts (first, middle, last).
    parts = [HEADER.pack(MAGIC, (flag << 29) | 3) + b"abc\0" for flag in (1, 2, 3)]
    records = [frame(f"record {i}".encode()) for i in range(10)]
    records[3] = b"".join(parts)
    body = b"".join(records)
    put(tmp_path, "b/r.rec", body)
    spec = TransformSpec("s3://b/r.rec", "s3://b/out", split_type="RecordIO")
    chunks = plan_chunks(list_inputs(store(tmp_path), spec), spec, 30)
    assert sum(c.lines for c in chunks) == 10 and chunks[-1].end == len(body)
    bounds = {0}
    for record in records:
        bounds.add(max(bounds) + len(record))
    assert all(c.start in bounds and c.end in bounds for c in chunks)
    assert [c.first_line for c in chunks] == [
        1 + sum(c.lines for c in chunks[:i]) for i in range(len(chunks))
    ]
    put(tmp_path, "b/r.rec", body[:-3])
    with pytest.raises(ValidationError, match="not RecordIO at byte"):
        plan_chunks(list_inputs(store(tmp_path), spec), spec, 30)
