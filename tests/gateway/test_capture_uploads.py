from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

from sluice.gateway.capture import CaptureTarget, CaptureWriter
from sluice.gateway.capture_uploads import CaptureUploads
from sluice.store.objects import ObjectStore
from tests.conftest import S3Server
from tests.gateway.test_capture import _event


def _keys(s3_server: S3Server, bucket: str) -> list[str]:
    listing = s3_server.client().list_objects_v2(Bucket=bucket)
    return sorted(item["Key"] for item in listing.get("Contents", []))


async def test_files_are_closed_and_uploaded_to_the_same_key(
    tmp_path: Path, s3_server: S3Server
) -> None:
    bucket = f"capture-{uuid.uuid4().hex[:12]}"
    s3_server.client().create_bucket(Bucket=bucket)
    objects = ObjectStore(tmp_path / "s3", s3_server.options)
    uploads = CaptureUploads(objects, tmp_path / "uploads.journal")
    writer = CaptureWriter(flush_interval_s=60, uploads=uploads, upload_interval_s=30)
    target = CaptureTarget(tmp_path / "s3" / bucket / "prefix", 100, True, True, f"{bucket}/prefix")

    writer.add(_event(target, "id-1", "application/json", b"[1]"))
    await writer.flush()
    await writer.close_files(time.monotonic())  # younger than the interval: stays open
    assert _keys(s3_server, bucket) == []

    await writer.close_files(time.monotonic() + 31)
    [key] = _keys(s3_server, bucket)
    assert key.startswith("prefix/ep/A/2026/11/18/11/") and key.endswith(".jsonl")
    body = s3_server.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    assert json.loads(body)["eventMetadata"]["inferenceId"] == "id-1"
    assert (tmp_path / "s3" / bucket / key).read_bytes() == body  # the local copy stays

    writer.add(_event(target, "id-2", "application/json", b"[2]"))
    await writer.close()  # closing the writer uploads what is open
    assert len(_keys(s3_server, bucket)) == 2
    assert uploads.pending == {}
    assert (tmp_path / "uploads.journal").read_text() == ""


async def test_failed_uploads_stay_queued_across_restarts(
    tmp_path: Path, s3_server: S3Server
) -> None:
    bucket = f"late-{uuid.uuid4().hex[:12]}"  # not created yet: uploads fail
    objects = ObjectStore(tmp_path / "s3", s3_server.options)
    outcomes: list[str] = []
    uploads = CaptureUploads(objects, tmp_path / "uploads.journal", outcomes.append)
    writer = CaptureWriter(flush_interval_s=60, uploads=uploads)
    target = CaptureTarget(tmp_path / "s3" / bucket, 100, True, False, bucket)
    writer.add(_event(target, "id-1", "application/json", b"[1]"))
    await writer.close()
    assert outcomes == ["failed"] and len(uploads.pending) == 1

    restarted = CaptureUploads(objects, tmp_path / "uploads.journal", outcomes.append)
    assert restarted.pending == uploads.pending  # read back from the journal
    s3_server.client().create_bucket(Bucket=bucket)
    assert await restarted.drain() == 0
    assert outcomes == ["failed", "uploaded"]
    [key] = _keys(s3_server, bucket)
    assert key.startswith("ep/A/") and (tmp_path / "s3" / bucket / key).exists()


async def test_local_destinations_are_never_uploaded(tmp_path: Path) -> None:
    uploads = CaptureUploads(ObjectStore(tmp_path / "s3", {}), tmp_path / "uploads.journal")
    writer = CaptureWriter(flush_interval_s=60, uploads=uploads, upload_interval_s=0)
    writer.add(_event(CaptureTarget(tmp_path / "local", 100, True, True), "id", "text/csv", b"1"))
    await writer.close()
    assert uploads.pending == {} and len(list((tmp_path / "local").rglob("*.jsonl"))) == 1
