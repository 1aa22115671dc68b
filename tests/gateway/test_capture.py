from __future__ import annotations

import base64
import json
from pathlib import Path

from sluice.gateway.capture import CaptureEvent, CaptureTarget, CaptureWriter
from sluice.gateway.metrics import Metrics
from tests.capture_files import by_inference_id, payload

METRICS = Metrics().for_variant("ep", "A")


def _event(
    target: CaptureTarget, inference_id: str, content_type: str, body: bytes
) -> CaptureEvent:
    return CaptureEvent(
        target,
        "ep",
        "A",
        inference_id,
        1_795_000_000.25,
        content_type,
        body,
        "application/json",
        b'{"predictions":[1]}',
        1.5,
        200,
        METRICS,
    )


async def test_records_follow_sagemaker_capture_format(tmp_path: Path) -> None:
    target = CaptureTarget(tmp_path, 100, True, True)
    writer = CaptureWriter(flush_interval_s=60)
    writer.add(_event(target, "id-1", "application/json", b"[[1, 2]]"))
    writer.add(_event(target, "id-2", "text/csv", b"1,2"))
    writer.add(_event(target, "id-3", "application/x-npy", b"\x93NUMPY"))
    await writer.flush()
    files = list(tmp_path.rglob("*.jsonl"))
    assert len(files) == 1
    assert files[0].parent.relative_to(tmp_path).parts == ("ep", "A", "2026", "11", "18", "11")
    record = json.loads(files[0].read_text().splitlines()[0])
    assert record["eventVersion"] == "0"
    assert record["captureData"]["endpointInput"] == {
        "observedContentType": "application/json",
        "mode": "INPUT",
        "data": "[[1, 2]]",
        "encoding": "JSON",
    }
    assert record["captureData"]["endpointOutput"]["mode"] == "OUTPUT"
    meta = record["eventMetadata"]
    assert meta["inferenceId"] == "id-1" and meta["inferenceTime"] == "2026-11-18T11:06:40.250Z"
    assert len(meta["eventId"]) == 36
    records = by_inference_id(tmp_path, "ep", "A")
    assert records["id-2"]["captureData"]["endpointInput"]["encoding"] == "CSV"
    npy = records["id-3"]["captureData"]["endpointInput"]
    assert npy["encoding"] == "BASE64" and base64.b64decode(npy["data"]) == b"\x93NUMPY"
    assert payload(records["id-3"], "endpointInput") == b"\x93NUMPY"


async def test_input_only_capture_and_overflow(tmp_path: Path) -> None:
    target = CaptureTarget(tmp_path, 100, True, False)
    writer = CaptureWriter(flush_interval_s=60, buffer_records=2)
    for i in range(6):
        writer.add(_event(target, f"id-{i}", "application/json", b"[1]"))
    await writer.flush()
    records = by_inference_id(tmp_path, "ep", "A")
    assert sorted(records) == ["id-0", "id-1", "id-2", "id-3"]  # beyond twice the buffer: dropped
    assert "endpointOutput" not in records["id-0"]["captureData"]


def test_retention_deletes_old_hours_and_the_oldest_beyond_the_cap(tmp_path: Path) -> None:
    import calendar as _calendar

    from sluice.gateway.capture import prune_hours

    now = _calendar.timegm((2026, 6, 1, 12, 30, 0, 0, 0, 0))
    folders = []
    for hour in (6, 9, 11, 12):
        folder = tmp_path / "ep" / "A" / f"2026/06/01/{hour:02d}"
        folder.mkdir(parents=True)
        (folder / "a.jsonl").write_bytes(b"x" * 100)
        folders.append(folder)
    (tmp_path / "ep" / "A" / "not-an-hour").mkdir()
    current = folders[-1] / "a.jsonl"
    # 2 hours of retention: 06:00-07:00 and 09:00-10:00 ended before 10:30.
    assert prune_hours(tmp_path, now, 2, None, {current}) == 2
    assert [f.exists() for f in folders] == [False, False, True, True]
    # A 150-byte cap: the oldest remaining hour goes; the open file is never deleted.
    assert prune_hours(tmp_path, now, None, 150, {current}) == 1
    assert [f.exists() for f in folders] == [False, False, False, True]
    assert prune_hours(tmp_path, now, None, 10, {current}) == 0
    assert current.exists()
