"""Capture files on their way to S3: a queue that survives failures and restarts.

A capture file for an s3:// destination is written locally (the server's own copy, which
its reports read), then handed here once it is closed. Uploads run in a thread; one that
fails stays queued and is tried again on the next drain. The queue is kept in a journal
file, so a file closed just before the server stopped is uploaded after it starts again.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from pathlib import Path

from sluice.store.objects import ObjectStore

log = logging.getLogger(__name__)


class CaptureUploads:
    def __init__(
        self,
        objects: ObjectStore,
        journal: Path,
        on_outcome: Callable[[str], None] = lambda outcome: None,
    ) -> None:
        self.objects = objects
        self.journal = journal
        self.on_outcome = on_outcome
        """Called with "uploaded" or "failed" for each attempt (metrics)."""
        self.pending: dict[Path, str] = _read_journal(journal)
        self._lock = threading.Lock()

    def add(self, path: Path, key: str) -> None:
        """Queue `path` for upload to `bucket/key` (journaled before it returns)."""
        with self._lock:
            self.pending[path] = key
            self._save()

    async def drain(self) -> int:
        """Try every queued upload once; returns how many are still queued."""
        return await asyncio.to_thread(self._drain)

    def _drain(self) -> int:
        with self._lock:
            queued = list(self.pending.items())
        for path, key in queued:
            try:
                if path.exists():
                    self.objects.upload(path, key)
                    self.on_outcome("uploaded")
                else:
                    log.warning("capture file %s vanished before its upload to s3://%s", path, key)
            except Exception as exc:  # noqa: BLE001 - any failure keeps the file queued
                self.on_outcome("failed")
                log.warning("capture upload of %s to s3://%s failed: %s", path, key, exc)
                continue
            with self._lock:
                self.pending.pop(path, None)
                self._save()
        with self._lock:
            return len(self.pending)

    def _save(self) -> None:
        self.journal.parent.mkdir(parents=True, exist_ok=True)
        staging = self.journal.with_suffix(".tmp")
        staging.write_text("".join(f"{key}\t{path}\n" for path, key in self.pending.items()))
        staging.replace(self.journal)


def _read_journal(journal: Path) -> dict[Path, str]:
    if not journal.exists():
        return {}
    pending = {}
    for line in journal.read_text().splitlines():
        key, sep, path = line.partition("\t")
        if sep and key and path:
            pending[Path(path)] = key
    return pending
