"""Where URIs live: paths and file:// on this machine, s3:// in S3 or in a local stand-in.

Without an S3 store configured, `s3://bucket/key` is the file `<home>/s3/bucket/key`, so
scripts written for SageMaker run unchanged on a laptop. With one configured (fsspec's
storage options for s3fs: `endpoint_url`, `key`, `secret`, ...), s3:// objects are read
from S3 itself, and files written for an s3:// destination are written under the same
local path first, then uploaded to the same key.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from sluice.errors import ValidationError

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

    from sluice.settings import Settings


def local_path(uri: str, field: str = "artifact") -> Path:
    """A filesystem path from a plain path or a file:// URI; other schemes are refused."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        raw = unquote(parsed.path) if parsed.scheme == "file" else uri
        return Path(raw).expanduser().resolve()
    raise ValidationError(
        f"URI scheme {parsed.scheme!r} of {uri!r} is not supported; use a path, file:// or s3://",
        field=field,
    )


def s3_key(uri: str, field: str) -> str | None:
    """`bucket/key` of an s3:// URI (checked), None for any other URI."""
    parsed = urlparse(uri)
    if parsed.scheme.lower() != "s3":
        return None
    key = parsed.path.strip("/")
    if not parsed.netloc or "\\" in key or {"..", "."} & set(key.split("/")):
        raise ValidationError(f"{uri!r} is not an s3://bucket/key URI", field=field)
    return f"{parsed.netloc}/{key}" if key else parsed.netloc


class ObjectStore:
    """Resolves URIs to local paths and moves files to and from S3 when it is configured."""

    def __init__(self, s3_mirror: Path, s3_options: dict[str, Any] | None = None) -> None:
        self.s3_mirror = s3_mirror
        """Where s3://bucket/key lives locally: the stand-in, or the local copy of uploads."""
        self.s3_options = s3_options
        self._fs: AbstractFileSystem | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> ObjectStore:
        return cls(settings.s3_dir, settings.s3)

    @property
    def s3_configured(self) -> bool:
        return self.s3_options is not None

    def local(self, uri: str, field: str = "artifact") -> Path:
        """The local path of any accepted URI (an s3:// URI's is under the mirror)."""
        key = s3_key(uri, field)
        if key is None:
            return local_path(uri, field)
        return self.s3_mirror / key

    def remote(self, uri: str, field: str = "artifact") -> str | None:
        """`bucket/key` in S3 when `uri` is s3:// and an S3 store is configured, else None."""
        key = s3_key(uri, field)
        return key if key is not None and self.s3_configured else None

    def fetch(self, uri: str, field: str = "artifact") -> Path:
        """A local path holding what `uri` names, downloading it first when it is in S3.

        A download replaces the local copy, so it is always what S3 holds now.
        """
        key = self.remote(uri, field)
        target = self.local(uri, field)
        if key is None:
            return target
        fs = self.filesystem()
        try:
            fs.invalidate_cache(key)  # listings may have been cached before a re-upload
            if fs.isdir(key):
                fs.get(key.rstrip("/") + "/", str(target) + "/", recursive=True)
            elif fs.isfile(key):
                target.parent.mkdir(parents=True, exist_ok=True)
                fs.get_file(key, str(target))
            else:
                raise ValidationError(f"{uri!r} does not exist in S3", field=field)
        except (OSError, PermissionError) as exc:
            raise ValidationError(f"cannot read {uri!r} from S3: {exc}", field=field) from exc
        return target

    def upload(self, path: Path, key: str) -> None:
        """Copy a local file to `bucket/key` in S3 (raises OSError when S3 refuses it)."""
        self.filesystem().put_file(str(path), key)

    def filesystem(self) -> AbstractFileSystem:
        with self._lock:
            if self._fs is None:
                if self.s3_options is None:
                    raise RuntimeError("no S3 store is configured")
                try:
                    import fsspec

                    self._fs = fsspec.filesystem("s3", **self.s3_options)
                except ImportError as exc:
                    raise ValidationError(
                        "an S3 store is configured but s3fs is not installed: "
                        "pip install 'sluice[s3]'",
                        field="s3",
                    ) from exc
            return self._fs
