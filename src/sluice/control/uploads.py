"""Files sent by clients: streamed to `<home>/uploads/<sha256>.tar.gz` (model artifacts) or
`<home>/uploads/inputs/<sha256>.bin` (async request bodies), capped, atomic.

A client with a model on its own disk uploads it here and names the returned path as the
model's artifact; the server needs no access to the client's files, and `<home>/uploads`
is one of the places a request may name.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from sluice.errors import PayloadTooLarge, ValidationError


@dataclass(frozen=True)
class Upload:
    uri: str
    sha256: str
    size_bytes: int


class UploadStore:
    def __init__(
        self, root: Path, max_bytes: int, archives: bool = True, setting: str = "max_artifact_bytes"
    ) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.archives = archives
        """Only tar archives (model artifacts), kept as `<sha256>.tar.gz`; else any bytes
        (async inputs), kept as `<sha256>.bin`."""
        self.setting = setting

    async def receive(self, chunks: AsyncIterator[bytes]) -> Upload:
        """Write the body to a staging file, then, if it is a tar archive within the cap,
        move it to its content's name; nothing is left behind on any failure."""
        self.root.mkdir(parents=True, exist_ok=True)
        staging = self.root / f".part-{uuid.uuid4().hex}"
        digest = hashlib.sha256()
        size = 0
        try:
            with staging.open("wb") as out:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise PayloadTooLarge(
                            f"the upload is over {self.max_bytes:,} bytes (setting {self.setting})",
                            field="body",
                        )
                    digest.update(chunk)
                    out.write(chunk)
            if not size:
                raise ValidationError("the upload is empty", field="body")
            if self.archives and not tarfile.is_tarfile(staging):
                raise ValidationError(
                    "an upload is a model artifact as a tar archive (.tar.gz)", field="body"
                )
            sha = digest.hexdigest()
            target = self.root / f"{sha}.tar.gz" if self.archives else self.root / f"{sha}.bin"
            os.replace(staging, target)
        finally:
            staging.unlink(missing_ok=True)
        return Upload(str(target), sha, size)
