"""The local artifact store: model artifacts unpacked once into the home, safely."""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

from sluice.errors import ValidationError
from sluice.store.objects import ObjectStore


class ArtifactStore:
    """Unpacks artifacts into `root/<digest>/`, once per distinct content.

    Runtimes only ever load from directories under `root`, so a pickle is only read from
    the store the operator configured.
    """

    def __init__(self, root: Path, objects: ObjectStore) -> None:
        self.root = root
        self.objects = objects

    def unpack(self, uri: str) -> Path:
        """Return the unpacked model directory for an artifact (a directory or .tar.gz)."""
        source = self.objects.fetch(uri)
        if not source.exists():
            raise ValidationError(f"artifact {uri!r} does not exist", field="artifact")
        if source.is_dir() or tarfile.is_tarfile(source):
            digest = digest_path(source)
        else:
            raise ValidationError(
                f"artifact {uri!r} is neither a directory nor a tar archive", field="artifact"
            )
        target = self.root / digest[:32]
        if target.is_dir():
            return target
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=self.root))
        try:
            if source.is_dir():
                shutil.copytree(source, staging, dirs_exist_ok=True, symlinks=False)
            else:
                extract_tar(source, staging)
            try:
                os.rename(staging, target)
            except OSError:
                if not target.is_dir():  # someone else unpacked it first otherwise
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target


def extract_tar(archive: Path, destination: Path) -> None:
    """Extract with no path escapes and no links out of `destination`."""
    try:
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                _check_member(member)
            tar.extractall(destination, filter="data")
    except tarfile.FilterError as exc:
        raise ValidationError(f"unsafe archive {archive.name}: {exc}", field="artifact") from exc
    except tarfile.TarError as exc:
        raise ValidationError(
            f"unreadable archive {archive.name}: {exc}", field="artifact"
        ) from exc


def _check_member(member: tarfile.TarInfo) -> None:
    name = member.name
    parts = Path(name).parts
    if name.startswith("/") or ".." in parts:
        raise ValidationError(
            f"unsafe archive: member {name!r} escapes the target", field="artifact"
        )
    if member.issym() or member.islnk():
        link = member.linkname
        joined = Path(name).parent / link if member.issym() else Path(link)
        if link.startswith("/") or ".." in Path(os.path.normpath(joined)).parts:
            raise ValidationError(
                f"unsafe archive: link {name!r} points outside ({link!r})", field="artifact"
            )
    if member.isdev():
        raise ValidationError(f"unsafe archive: device file {name!r}", field="artifact")


def digest_path(path: Path) -> str:
    """SHA-256 of a file's bytes, or of a directory's relative paths and file digests."""
    return _digest_dir(path) if path.is_dir() else _digest_file(path)


def _digest_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _digest_dir(path: Path) -> str:
    h = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(str(file.relative_to(path)).encode() + b"\0")
        h.update(_digest_file(file).encode())
    return h.hexdigest()
