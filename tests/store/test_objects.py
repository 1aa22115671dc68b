from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from sluice.errors import ValidationError
from sluice.store import objects
from sluice.store.objects import ObjectStore, s3_key, sync_to_disk
from tests.conftest import S3Server


def test_s3_uris_map_under_the_mirror_without_an_s3_store(tmp_path: Path) -> None:
    objects = ObjectStore(tmp_path / "s3")
    assert objects.local("s3://bucket/models/m.tar.gz") == tmp_path / "s3/bucket/models/m.tar.gz"
    assert objects.local("s3://bucket") == tmp_path / "s3/bucket"
    assert objects.local(f"file://{tmp_path}/x") == tmp_path / "x"
    assert objects.remote("s3://bucket/key") is None
    assert objects.fetch("s3://bucket/key") == tmp_path / "s3/bucket/key"


@pytest.mark.parametrize(
    "uri", ["s3:///key", "s3://bucket/../escape", "s3://bucket/a/./b", "s3://bucket/a\\b"]
)
def test_malformed_s3_uris_are_refused(uri: str) -> None:
    with pytest.raises(ValidationError, match="is not an s3://bucket/key URI") as caught:
        s3_key(uri, "DestinationS3Uri")
    assert caught.value.field == "DestinationS3Uri"


def test_other_schemes_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="scheme 'gs'"):
        ObjectStore(tmp_path).local("gs://bucket/key")


@pytest.fixture
def bucket(s3_server: S3Server) -> str:
    name = f"sluice-{uuid.uuid4().hex[:12]}"
    s3_server.client().create_bucket(Bucket=name)
    return name


def test_objects_and_prefixes_are_fetched_from_s3(
    tmp_path: Path, s3_server: S3Server, bucket: str
) -> None:
    s3 = s3_server.client()
    s3.put_object(Bucket=bucket, Key="model/model.joblib", Body=b"weights")
    s3.put_object(Bucket=bucket, Key="model/code/inference.py", Body=b"print()")
    objects = ObjectStore(tmp_path / "s3", s3_server.options)
    assert objects.remote(f"s3://{bucket}/model") == f"{bucket}/model"

    folder = objects.fetch(f"s3://{bucket}/model")
    assert folder == tmp_path / "s3" / bucket / "model"
    assert (folder / "model.joblib").read_bytes() == b"weights"
    assert (folder / "code/inference.py").read_bytes() == b"print()"

    s3.put_object(Bucket=bucket, Key="model/model.joblib", Body=b"retrained")
    single = objects.fetch(f"s3://{bucket}/model/model.joblib")
    assert single.read_bytes() == b"retrained"  # a download replaces the local copy


def test_missing_objects_and_buckets_are_clear_errors(
    tmp_path: Path, s3_server: S3Server, bucket: str
) -> None:
    objects = ObjectStore(tmp_path / "s3", s3_server.options)
    with pytest.raises(ValidationError, match="does not exist in S3"):
        objects.fetch(f"s3://{bucket}/nothing/here.tar.gz")
    with pytest.raises(ValidationError, match="does not exist in S3|cannot read"):
        objects.fetch("s3://no-such-bucket-anywhere/model.tar.gz")


def test_upload_writes_the_key(tmp_path: Path, s3_server: S3Server, bucket: str) -> None:
    source = tmp_path / "capture.jsonl"
    source.write_bytes(b'{"a": 1}\n')
    ObjectStore(tmp_path / "s3", s3_server.options).upload(source, f"{bucket}/c/capture.jsonl")
    body = s3_server.client().get_object(Bucket=bucket, Key="c/capture.jsonl")["Body"].read()
    assert body == b'{"a": 1}\n'


@pytest.mark.parametrize("with_syncfs", [True, False], ids=["syncfs", "fsync-each"])
def test_sync_to_disk_flushes_written_files_together(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, with_syncfs: bool
) -> None:
    calls: list[str] = []
    real_fsync = objects.os.fsync

    def counting_fsync(fd: int) -> None:
        calls.append("fsync")
        real_fsync(fd)

    monkeypatch.setattr(objects.os, "fsync", counting_fsync)
    if not with_syncfs:
        monkeypatch.setattr(objects, "_syncfs", None)
    paths = []
    for i in range(5):
        (tmp_path / f"{i}.out").write_text(str(i))
        paths.append(tmp_path / f"{i}.out")
    sync_to_disk(paths)
    if with_syncfs and objects._syncfs is not None:
        assert calls == []  # one syncfs covered the five
    else:
        assert calls == ["fsync"] * 6  # their folder, then each file
    assert [p.read_text() for p in paths] == [str(i) for i in range(5)]


def test_plausible_refuses_what_lies_outside_and_accepts_links_that_lead_back_in(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    (home / "s3" / "b").mkdir(parents=True)
    store = ObjectStore(home / "s3", policy=objects.PathPolicy(home))
    store.plausible("s3://b/in.json", "InputLocation")  # need not exist yet
    with pytest.raises(ValidationError, match="outside the folders"):
        store.plausible("/etc/passwd", "InputLocation")
    with pytest.raises(ValidationError, match="own home"):
        store.plausible(str(home / "sluice.db"), "InputLocation")
    # Named through a link outside the roots that leads back into them: allowed.
    (tmp_path / "shortcut").symlink_to(home / "s3")
    store.plausible(str(tmp_path / "shortcut" / "b" / "in.json"), "InputLocation")
