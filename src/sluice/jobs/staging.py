"""Moving a job's data: inputs from their URIs into its folder, outputs back out.

URIs are what the server's object store accepts (s3://, and local paths under the
folders it may use); reads and writes go through its path policy. An s3:// input is
downloaded first when an S3 store is configured; an output for s3:// is written under the
store's local copy, then uploaded.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path, PurePosixPath

from sluice.errors import ValidationError
from sluice.store.artifacts import extract_tar
from sluice.store.objects import ObjectStore

CONTAINER_ROOT = PurePosixPath("/opt/ml")


def check_container_path(container_path: str, under: str, field: str) -> None:
    """Refuse a container path that is not a folder inside `under` (itself under /opt/ml)."""
    path = PurePosixPath(container_path)
    if not path.is_absolute() or ".." in path.parts or not path.is_relative_to(under):
        raise ValidationError(f"{container_path!r} must be a path under {under}", field=field)
    if path == PurePosixPath(under):
        raise ValidationError(f"{container_path!r} must be a folder inside {under}", field=field)


def inside(root: Path, container_path: str) -> Path:
    """Where a container path under /opt/ml (already checked) is in the job's `root` (its
    ml/ folder)."""
    return root / PurePosixPath(container_path).relative_to(CONTAINER_ROOT)


def stage(
    objects: ObjectStore,
    uri: str,
    target: Path,
    data_type: str,
    field: str,
    unpack: bool = False,
    max_bytes: int | None = None,
) -> None:
    """Copy what `uri` names into the folder `target`: a folder's files keep their paths
    below it, one object lands under its own name (or, with `unpack`, an archive's
    members do), a manifest's objects as listed."""
    target.mkdir(parents=True, exist_ok=True)
    if unpack and data_type != "ManifestFile":
        source = _fetch(objects, uri, field)
        if source.is_file() and source.name.endswith((".tar.gz", ".tgz", ".tar")):
            try:
                extract_tar(source, target, max_bytes)
            except ValidationError as exc:
                raise ValidationError(exc.message, field=field) from exc
            return
    if data_type == "ManifestFile":
        _stage_manifest(objects, uri, target, field)
        return
    if data_type not in ("S3Prefix", "File"):
        raise ValidationError(
            f"S3DataType {data_type} is not served (S3Prefix and ManifestFile are)", field=field
        )
    _copy(_fetch(objects, uri, field), target)


def _stage_manifest(objects: ObjectStore, uri: str, target: Path, field: str) -> None:
    manifest = _fetch(objects, uri, field)
    try:
        entries = json.loads(manifest.read_text())
        prefix = entries[0]["prefix"]
        keys = [str(k) for k in entries[1:]]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise ValidationError(
            f'{uri!r} is not a manifest ([{{"prefix": ...}}, "key", ...]): {exc}', field=field
        ) from exc
    for key in keys:
        source = _fetch(objects, prefix.rstrip("/") + "/" + key, field)
        destination = target / key
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, destination)


def _fetch(objects: ObjectStore, uri: str, field: str) -> Path:
    source = objects.fetch(uri.rstrip("/") or uri, field)
    if not source.exists():
        raise ValidationError(f"{uri!r} does not exist", field=field)
    return source


def _copy(source: Path, target: Path) -> None:
    if source.is_dir():
        shutil.copytree(source, target, dirs_exist_ok=True, symlinks=False)
    else:
        shutil.copy2(source, target / source.name)


def publish(objects: ObjectStore, source: Path, uri: str, field: str) -> list[Path]:
    """Copy the file or folder `source` to where `uri` names (into it, for a folder), and
    upload it when `uri` is in S3. Returns the files written."""
    destination = objects.writable(uri, field)
    written: list[Path] = []
    if source.is_dir():
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            target = destination / path.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
            written.append(target)
    elif source.exists():
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, destination)
        written.append(destination)
    key = objects.remote(uri, field)
    if key is not None:
        for path in written:
            relative = path.relative_to(destination) if source.is_dir() else None
            objects.upload(path, f"{key}/{relative}" if relative else key)
    return written


class FolderSync:
    """A folder of a running job copied out to its URI as its files change (and once more
    at the end): checkpoints, and outputs uploaded in Continuous mode."""

    def __init__(self, objects: ObjectStore, uri: str, local: Path, field: str) -> None:
        self.objects = objects
        self.uri = uri
        self.local = local
        self.field = field
        self.seen: dict[str, tuple[int, int]] = {}

    def sync(self) -> int:
        """Copy out the files that changed since the last sync; how many there were."""
        now = self._scan()
        changed = [name for name, mark in now.items() if self.seen.get(name) != mark]
        if not changed:
            return 0
        destination = self.objects.writable(self.uri, self.field)
        key = self.objects.remote(self.uri, self.field)
        for name in changed:
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            staging = target.with_name(f".{target.name}.part")
            shutil.copy2(self.local / name, staging)
            os.replace(staging, target)
            if key is not None:
                self.objects.upload(target, f"{key}/{name}")
        self.seen.update({name: now[name] for name in changed})
        return len(changed)

    def _scan(self) -> dict[str, tuple[int, int]]:
        found: dict[str, tuple[int, int]] = {}
        if not self.local.is_dir():
            return found
        for path in self.local.rglob("*"):
            try:
                if path.is_file():
                    info = path.stat()
                    found[str(path.relative_to(self.local))] = (info.st_size, info.st_mtime_ns)
            except FileNotFoundError:
                continue  # written and removed between listing and looking
        return found


class Checkpoints(FolderSync):
    """A training job's checkpoint folder kept in step with its URI (CheckpointConfig):
    restored before the program starts, copied out as files change and at the end."""

    def __init__(self, objects: ObjectStore, uri: str, local: Path) -> None:
        super().__init__(objects, uri, local, "CheckpointConfig.S3Uri")

    def restore(self) -> int:
        """Copy what the URI holds into the local folder; how many files that was."""
        self.local.mkdir(parents=True, exist_ok=True)
        key = self.objects.remote(self.uri, self.field)
        source = self.objects.writable(self.uri, self.field)
        if key is not None:
            try:
                source = self.objects.fetch(self.uri, self.field)
            except ValidationError:
                return 0  # nothing saved yet
        if not source.is_dir():
            return 0
        shutil.copytree(source, self.local, dirs_exist_ok=True)
        self.seen = self._scan()
        return len(self.seen)
