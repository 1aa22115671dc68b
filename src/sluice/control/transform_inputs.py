"""What a batch transform reads: its input objects, and the chunks they are cut into.

An `S3Prefix` names every object whose key starts with it (a folder or a key prefix); a
`ManifestFile` is SageMaker's manifest, `[{"prefix": "s3://b/p/"}, "key1", "key2", ...]`.
Each object's output name is its key relative to the prefix's folder, plus `.out`, as
SageMaker names them. Line-split, uncompressed objects are cut into byte ranges on line
boundaries (`chunk_bytes` each), each knowing the number of its first line, so workers
can read them in any order and errors name the file's own line numbers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from sluice import recordio
from sluice.entities import TransformSpec
from sluice.errors import ValidationError
from sluice.store.objects import ObjectStore
from sluice.types import PARQUET_TYPES, media_type

SCAN_BLOCK = 4 * 1024 * 1024


@dataclass(frozen=True)
class InputObject:
    uri: str
    """The object as SageMaker names it (s3://bucket/key, or a path)."""
    name: str
    """Its key relative to the input's folder: the output is `<output>/<name>.out`."""
    path: Path
    """Where it is on this machine."""


@dataclass(frozen=True)
class Chunk:
    file: int
    index: int
    start: int
    end: int
    """-1: to the end of the file (compressed or unsplit inputs are one chunk)."""
    first_line: int
    lines: int


def list_inputs(objects: ObjectStore, spec: TransformSpec) -> list[InputObject]:
    """The job's input objects, in key order (a manifest's in its own order)."""
    field = "TransformInput.DataSource.S3DataSource.S3Uri"
    if spec.data_type == "ManifestFile":
        manifest = objects.fetch(spec.input_uri, field)
        prefix, keys = _read_manifest(manifest, spec.input_uri)
        found = [_one(objects, prefix + key, key, field) for key in keys]
    else:
        found = _under_prefix(objects, spec.input_uri, field)
    if not found:
        raise ValidationError(
            f"no input objects under {spec.input_uri!r}", field="TransformInput.DataSource"
        )
    return found


def _read_manifest(path: Path, uri: str) -> tuple[str, list[str]]:
    try:
        document = json.loads(path.read_bytes())
        head, *keys = document
        prefix = head["prefix"]
        if not isinstance(prefix, str) or not all(isinstance(k, str) for k in keys):
            raise TypeError("keys must be strings")
    except (ValueError, TypeError, KeyError) as exc:
        raise ValidationError(
            f'{uri!r} is not a manifest file ([{{"prefix": "s3://..."}}, "key", ...]): {exc}',
            field="TransformInput.DataSource.S3DataSource.S3Uri",
        ) from None
    if not prefix.endswith("/"):
        prefix += "/"
    return prefix, keys


def _one(objects: ObjectStore, uri: str, name: str, field: str) -> InputObject:
    path = objects.fetch(uri, field)
    if not path.is_file():
        raise ValidationError(f"input object {uri!r} does not exist", field=field)
    return InputObject(uri, name, path)


def _under_prefix(objects: ObjectStore, uri: str, field: str) -> list[InputObject]:
    """Every object whose key starts with `uri`; a folder's objects are named relative to
    it, a key prefix's relative to the folder it is in."""
    remote = objects.remote(uri, field)
    if remote is not None:
        fs = objects.filesystem()
        folder = uri.endswith("/") or fs.isdir(remote)
        base, stem = (remote.rstrip("/"), "") if folder else (*remote.rsplit("/", 1),)
        names = [key.removeprefix(base + "/") for key in sorted(fs.find(base))]
    else:
        local = objects.local(uri, field)
        folder = uri.endswith("/") or local.is_dir()
        base_path, stem = (local, "") if folder else (local.parent, local.name)
        base = str(base_path)
        names = (
            [p.relative_to(base_path).as_posix() for p in sorted(base_path.rglob("*"))]
            if base_path.is_dir()
            else []
        )
    folder_uri = (uri.rstrip("/") if folder else uri.rsplit("/", 1)[0]) + "/"
    found = []
    for name in names:
        if not name.startswith(stem) or any(p.startswith(".") for p in name.split("/")):
            continue  # half-written objects and hidden files are not inputs
        if remote is None and not (Path(base) / name).is_file():
            continue
        found.append(_one(objects, folder_uri + name, name, field))
    return found


def plan_chunks(inputs: list[InputObject], spec: TransformSpec, chunk_bytes: int) -> list[Chunk]:
    """Cut every input into chunks (reads each Line-split, uncompressed file once)."""
    chunks: list[Chunk] = []
    for number, item in enumerate(inputs):
        if media_type(spec.content_type) in PARQUET_TYPES:
            chunks.extend(_row_groups(number, item.path, chunk_bytes))
            continue
        if spec.split_type == "None" or spec.compression == "Gzip":
            chunks.append(Chunk(number, 0, 0, -1, 1, 1 if spec.split_type == "None" else 0))
            continue
        if spec.split_type == "RecordIO":
            chunks.extend(_cut_records(number, item.path, chunk_bytes))
            continue
        chunks.extend(_cut(number, item.path, chunk_bytes))
    return chunks


def _cut_records(file: int, path: Path, chunk_bytes: int) -> list[Chunk]:
    """Runs of whole RecordIO records of about `chunk_bytes` (lines are records)."""
    data = path.read_bytes()
    chunks: list[Chunk] = []
    start = count = 0
    first = 1
    for _, end in recordio.records(data):
        count += 1
        if end - start >= chunk_bytes:
            chunks.append(Chunk(file, len(chunks), start, end, first, count))
            start, first, count = end, first + count, 0
    if count or not chunks:
        chunks.append(Chunk(file, len(chunks), start, len(data), first, count))
    return chunks


def _row_groups(file: int, path: Path, chunk_bytes: int) -> list[Chunk]:
    """Runs of whole row groups of about `chunk_bytes` (Parquet: start and end are row
    group numbers, lines are rows)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        metadata = pq.ParquetFile(path).metadata
    except (pa.ArrowException, OSError) as exc:
        message = f"{path.name} is not a Parquet file: {exc}"
        raise ValidationError(message, field="ContentType") from None
    chunks: list[Chunk] = []
    start = size = rows = 0
    line = 1
    for group in range(metadata.num_row_groups):
        size += metadata.row_group(group).total_byte_size
        rows += metadata.row_group(group).num_rows
        if size >= chunk_bytes or group == metadata.num_row_groups - 1:
            chunks.append(Chunk(file, len(chunks), start, group + 1, line, rows))
            start, line, size, rows = group + 1, line + rows, 0, 0
    return chunks or [Chunk(file, 0, 0, 0, 1, 0)]


def _cut(file: int, path: Path, chunk_bytes: int) -> list[Chunk]:
    """Byte ranges of about `chunk_bytes`, each ending just after a newline (or at EOF)."""
    chunks: list[Chunk] = []
    start = 0
    line = 1
    lines = 0
    position = 0
    with path.open("rb") as stream:
        while True:
            block = stream.read(SCAN_BLOCK)
            if not block:
                break
            offset = 0
            while True:
                cut_at = start + chunk_bytes - position  # where this block reaches the size
                if cut_at >= len(block):
                    lines += block.count(b"\n", offset)
                    break
                newline = block.find(b"\n", max(cut_at, offset))
                if newline < 0:
                    lines += block.count(b"\n", offset)
                    break
                lines += block.count(b"\n", offset, newline + 1)
                end = position + newline + 1
                chunks.append(Chunk(file, len(chunks), start, end, line, lines))
                start, line, lines = end, line + lines, 0
                offset = newline + 1
            position += len(block)
    if position > start:
        tail_lines = lines + (0 if _ends_with_newline(path) else 1)
        chunks.append(Chunk(file, len(chunks), start, position, line, tail_lines))
    if not chunks:  # an empty file: one empty chunk, which answers with an empty output
        chunks.append(Chunk(file, 0, 0, 0, 1, 0))
    return chunks


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as stream:
        stream.seek(-1, 2)
        return stream.read(1) == b"\n"
