from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from sluice.errors import ValidationError
from sluice.store.artifacts import ArtifactStore
from sluice.store.objects import ObjectStore, local_path


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


def test_tarball_unpacked_once(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "m.tar.gz", [_file("model.joblib"), _file("code/inference.py")])
    store = ArtifactStore(tmp_path / "store", ObjectStore(tmp_path / "s3"))
    first = store.unpack(str(archive))
    assert (first / "model.joblib").read_bytes() == b"x"
    assert (first / "code" / "inference.py").exists()
    assert store.unpack(f"file://{archive}") == first
    assert len(list((tmp_path / "store").iterdir())) == 1


def test_directory_is_copied_into_the_store(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "model.joblib").write_bytes(b"abc")
    unpacked = ArtifactStore(tmp_path / "store", ObjectStore(tmp_path / "s3")).unpack(str(source))
    assert unpacked.parent == tmp_path / "store"
    assert (unpacked / "model.joblib").read_bytes() == b"abc"


@pytest.mark.parametrize(
    "member",
    [
        _file("../escape.txt"),
        _file("/etc/evil"),
        _file("a/../../escape"),
        _link("link", "/etc/passwd"),
        _link("link", "../../outside"),
        _link("hard", "/etc/passwd", tarfile.LNKTYPE),
    ],
)
def test_unsafe_archives_are_refused(
    tmp_path: Path, member: tuple[tarfile.TarInfo, bytes | None]
) -> None:
    archive = _tar(tmp_path / "bad.tar.gz", [_file("model.joblib"), member])
    store = ArtifactStore(tmp_path / "store", ObjectStore(tmp_path / "s3"))
    with pytest.raises(ValidationError, match="unsafe archive"):
        store.unpack(str(archive))
    assert not (tmp_path / "escape.txt").exists()
    assert not any(p.name != ".unpack" and p.is_dir() for p in (tmp_path / "store").glob("*"))


def test_missing_and_unknown_artifacts(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store", ObjectStore(tmp_path / "s3"))
    with pytest.raises(ValidationError, match="does not exist"):
        store.unpack(str(tmp_path / "nope.tar.gz"))
    (tmp_path / "plain.txt").write_text("hello")
    with pytest.raises(ValidationError, match="neither a directory nor a tar"):
        store.unpack(str(tmp_path / "plain.txt"))
    with pytest.raises(ValidationError, match="scheme 's3'"):
        local_path("s3://bucket/model.tar.gz")
