"""The local artifact store: model artifacts unpacked once into the home, safely."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tarfile
from pathlib import Path

from sluice.errors import ValidationError
from sluice.store.folders import publish
from sluice.store.objects import ObjectStore, is_under

MAX_MEMBERS = 100_000
"""Files in one artifact (a folder or an archive)."""


class ArtifactStore:
    """Unpacks artifacts into `root/<digest>/`, once per distinct content.

    Runtimes only ever load from directories under `root`, so a pickle is only read from
    the store the operator configured. A copy is atomic (a staging folder renamed into
    place; removed when anything fails) and at most `max_bytes`; a folder's symbolic links
    may point only inside it, and it may hold only regular files.
    """

    def __init__(self, root: Path, objects: ObjectStore, max_bytes: int = 10 * 1024**3) -> None:
        self.root = root
        self.objects = objects
        self.max_bytes = max_bytes

    def unpack(self, uri: str) -> Path:
        """Return the unpacked model directory for an artifact (a directory or .tar.gz)."""
        source = self.objects.fetch(uri)
        if not source.exists():
            raise ValidationError(f"artifact {uri!r} does not exist", field="artifact")
        if source.is_dir():
            files = tree(source, self.max_bytes)
            digest = _digest_files(files)
        elif tarfile.is_tarfile(source):
            files = []
            digest = _digest_file(source)
        else:
            raise ValidationError(
                f"artifact {uri!r} is neither a directory nor a tar archive", field="artifact"
            )

        def fill(staging: Path) -> None:
            if source.is_dir():
                for relative, real in files:
                    destination = staging / relative
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(real, destination)
            else:
                extract_tar(source, staging, self.max_bytes)

        return publish(self.root / digest[:32], fill)

    def with_code(self, model_dir: Path, code_uri: str) -> Path:
        """The model unpacked in `model_dir` with the code in `code_uri` (SageMaker's
        SAGEMAKER_SUBMIT_DIRECTORY: a sourcedir.tar.gz or a folder) as its `code/`, in a
        folder of the store of its own (files hard-linked, not copied). A code URI under
        /opt/ml/model names code the model's archive holds already."""
        if code_uri.rstrip("/").startswith(CONTAINER_MODEL_DIR):
            return model_dir
        try:
            code = self.unpack(code_uri)
        except ValidationError as exc:
            raise ValidationError(
                f"SAGEMAKER_SUBMIT_DIRECTORY: {exc.message}",
                field="Environment.SAGEMAKER_SUBMIT_DIRECTORY",
            ) from None
        digest = hashlib.sha256(f"{model_dir.name}/{code.name}".encode()).hexdigest()

        def fill(staging: Path) -> None:
            for relative, real in tree(model_dir):
                if relative.parts[0] != "code":  # the submitted code replaces the model's
                    _link(real, staging / relative)
            for relative, real in tree(code):
                _link(real, staging / "code" / relative)

        return publish(self.root / "with-code" / digest[:32], fill)


CONTAINER_MODEL_DIR = "/opt/ml/model"
"""Where SageMaker's containers find the model: code under it came in the model's archive."""


def _link(source: Path, destination: Path) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, destination)
    except OSError:  # another filesystem, or links refused: a copy then
        shutil.copyfile(source, destination)


def tree(root: Path, max_bytes: int | None = None) -> list[tuple[Path, Path]]:
    """Every file of a folder, as (path relative to it, real path), links resolved.

    ValidationError for a link that points outside the folder, anything but a regular
    file, more than MAX_MEMBERS files, or more than `max_bytes` in all.
    """
    base = root.resolve()
    found: list[tuple[Path, Path]] = []
    total = 0
    for folder, dirs, names in os.walk(base, followlinks=False):
        here = Path(folder)
        for name in sorted(dirs):
            link = here / name
            if link.is_symlink() and not is_under(link.resolve(), base):
                raise ValidationError(
                    f"unsafe artifact: {link.relative_to(base)} links outside it", field="artifact"
                )
        for name in sorted(names):
            path = here / name
            real = path.resolve()
            if path.is_symlink() and not is_under(real, base):
                raise ValidationError(
                    f"unsafe artifact: {path.relative_to(base)} links outside it", field="artifact"
                )
            try:
                info = real.stat()
            except OSError as exc:
                raise ValidationError(
                    f"unreadable artifact file {path.relative_to(base)}: {exc}", field="artifact"
                ) from None
            if not stat.S_ISREG(info.st_mode):
                raise ValidationError(
                    f"unsafe artifact: {path.relative_to(base)} is not a regular file",
                    field="artifact",
                )
            total += info.st_size
            found.append((path.relative_to(base), real))
            if len(found) > MAX_MEMBERS:
                raise ValidationError(
                    f"artifact holds over {MAX_MEMBERS:,} files", field="artifact"
                )
            if max_bytes is not None and total > max_bytes:
                raise _too_big(max_bytes)
    return sorted(found)


def _too_big(max_bytes: int) -> ValidationError:
    return ValidationError(
        f"artifact is over {max_bytes:,} bytes (setting max_artifact_bytes)", field="artifact"
    )


def extract_tar(archive: Path, destination: Path, max_bytes: int | None = None) -> None:
    """Extract with no path escapes, no links out of `destination`, and (when given) no
    more than `max_bytes` in all."""
    try:
        with tarfile.open(archive) as tar:
            total = 0
            for count, member in enumerate(tar, 1):
                _check_member(member)
                total += member.size if member.isfile() else 0
                if max_bytes is not None and total > max_bytes:
                    raise _too_big(max_bytes)
                if count > MAX_MEMBERS:
                    raise ValidationError(
                        f"archive holds over {MAX_MEMBERS:,} members", field="artifact"
                    )
            tar.extractall(destination, filter="data")
    except tarfile.FilterError as exc:
        raise ValidationError(f"unsafe archive {archive.name}: {exc}", field="artifact") from exc
    except (tarfile.TarError, EOFError, OSError) as exc:
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
    return _digest_files(tree(path)) if path.is_dir() else _digest_file(path)


def _digest_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _digest_files(files: list[tuple[Path, Path]]) -> str:
    h = hashlib.sha256()
    for relative, real in files:
        h.update(str(relative).encode() + b"\0")
        h.update(_digest_file(real).encode())
    return h.hexdigest()
