"""Where URIs live: paths and file:// on this machine, s3:// in S3 or in a local stand-in.

Without an S3 store configured, `s3://bucket/key` is the file `<home>/s3/bucket/key`, so
scripts written for SageMaker run unchanged on a laptop. With one configured (fsspec's
storage options for s3fs: `endpoint_url`, `key`, `secret`, ...), s3:// objects are read
from S3 itself, and files written for an s3:// destination are written under the same
local path first, then uploaded to the same key.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import stat
import sys
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from sluice.errors import ValidationError

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

    from sluice.settings import Settings


def local_path(uri: str, field: str = "artifact") -> Path:
    """A filesystem path from a plain path or a file:// URI, resolved; other schemes are
    refused."""
    return named_path(uri, field).resolve()


def named_path(uri: str, field: str = "artifact") -> Path:
    """`local_path` as written: not resolved."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        raw = unquote(parsed.path) if parsed.scheme == "file" else uri
        return Path(raw).expanduser()
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


def staging_for(target: Path) -> Path:
    """A hidden sibling to write into before `target` appears at once under its name."""
    return target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")


def _load_syncfs() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None


_syncfs = _load_syncfs()


def sync_to_disk(paths: Sequence[Path]) -> None:
    """Force files just written (and renamed into place) to disk, together: on Linux one
    `syncfs` per filesystem, which costs about one journal commit for any number of
    files; elsewhere an fsync of each file and its folder."""
    synced: set[int] = set()
    by_file: set[Path] = set()
    for parent in {path.parent for path in paths}:
        folder = os.open(parent, os.O_RDONLY)
        try:
            device = os.fstat(folder).st_dev
            if device in synced:
                continue
            if _syncfs is not None and _syncfs(folder) == 0:
                synced.add(device)
                continue
            os.fsync(folder)
            by_file.add(parent)
        finally:
            os.close(folder)
    for path in paths:
        if path.parent in by_file:
            with open(path, "rb") as written:
                os.fsync(written.fileno())


def is_under(path: Path, root: Path) -> bool:
    """`path` is `root` or lies inside it (both resolved)."""
    return path == root or root in path.parents


class PathPolicy:
    """Where a request may make the server read or write on this machine.

    Only under the allowed roots: `<home>/s3` (what s3:// URIs name), `<home>/uploads`
    (artifacts sent by clients) and the folders the operator lists (setting
    allowed_roots). Nothing else of the home (its database, credentials, models, registry
    reports), never a folder that holds the home (a copy of it would copy itself), and,
    for reading, only regular files and folders (no /dev/zero, FIFOs or sockets). Paths
    are judged after symbolic links are resolved.
    """

    def __init__(self, home: Path, roots: Sequence[Path] = ()) -> None:
        self.home = home.expanduser().resolve()
        self.inside = [self.home / "s3", self.home / "uploads"]
        self.allowed = [Path(r).expanduser().resolve() for r in roots]
        """The operator's roots (setting allowed_roots)."""
        self.roots = [*self.inside, *self.allowed]

    def check(self, path: Path, field: str, reading: bool) -> Path:
        resolved = path.resolve()
        self.judge(resolved, field, reading, shown=path)
        if reading and resolved.exists():
            mode = resolved.stat().st_mode
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise ValidationError(
                    f"{path} is not a regular file or folder (a device, FIFO or socket)",
                    field=field,
                )
        return resolved

    def judge(self, resolved: Path, field: str, reading: bool, shown: Path | None = None) -> None:
        """Refuse a path, already resolved, that lies where a request may not go (`shown`
        is how the request named it)."""
        path = shown or resolved
        if not any(is_under(resolved, root) for root in self.inside):
            if is_under(resolved, self.home) or (reading and is_under(self.home, resolved)):
                raise ValidationError(
                    f"{path} is the server's own home or inside it: not allowed", field=field
                )
            if not any(is_under(resolved, root) for root in self.roots):
                raise ValidationError(
                    f"{path} is outside the folders this server may use: s3:// URIs, "
                    f"{self.home / 'uploads'}, and the roots in setting allowed_roots",
                    field=field,
                )


class ObjectStore:
    """Resolves URIs to local paths and moves files to and from S3 when it is configured.

    With a `policy` (the server's), `readable`, `writable` and `fetch` refuse local paths
    a request may not make the server touch; `local` is for URIs already checked.
    """

    def __init__(
        self,
        s3_mirror: Path,
        s3_options: dict[str, Any] | None = None,
        policy: PathPolicy | None = None,
        max_bytes: int | None = None,
    ) -> None:
        self.s3_mirror = s3_mirror
        """Where s3://bucket/key lives locally: the stand-in, or the local copy of uploads."""
        self.s3_options = s3_options
        self.policy = policy
        self.max_bytes = max_bytes
        """The most a download from S3 may hold (None: no limit)."""
        self._fs: AbstractFileSystem | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, guarded: bool = False) -> ObjectStore:
        """`guarded`: the server's store, which applies the path policy to requests."""
        policy = PathPolicy(settings.home, settings.allowed_roots) if guarded else None
        return cls(settings.s3_dir, settings.s3, policy, settings.max_artifact_bytes)

    def readable(self, uri: str, field: str = "artifact") -> Path:
        """The local path of `uri`, which a request may make the server read."""
        path = self.local(uri, field)
        return self.policy.check(path, field, reading=True) if self.policy else path

    def writable(self, uri: str, field: str) -> Path:
        """The local path of `uri`, under which a request may make the server write."""
        path = self.local(uri, field)
        return self.policy.check(path, field, reading=False) if self.policy else path

    @property
    def s3_configured(self) -> bool:
        return self.s3_options is not None

    def plausible(self, uri: str, field: str = "artifact") -> None:
        """Refuse a local URI a request may not make the server read, cheaply: judged as
        written when that passes (whoever opens it judges the real path then), resolved
        only to confirm a refusal."""
        if self.policy is None:
            return
        try:
            self.policy.judge(Path(os.path.abspath(self.named(uri, field))), field, reading=True)
        except ValidationError:
            self.readable(uri, field)  # links may lead back in: judge the real path

    def named(self, uri: str, field: str = "artifact") -> Path:
        """The local path `uri` names, as written: neither resolved nor checked (whoever
        opens it checks it, against `policy`)."""
        key = s3_key(uri, field)
        return self.s3_mirror / key if key is not None else named_path(uri, field)

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
        if key is None:
            return self.readable(uri, field)
        target = self.local(uri, field)
        fs = self.filesystem()
        staging = staging_for(target)
        try:
            fs.invalidate_cache(key)  # listings may have been cached before a re-upload
            folder = fs.isdir(key)
            if not folder and not fs.isfile(key):
                raise ValidationError(f"{uri!r} does not exist in S3", field=field)
            size = fs.du(key) if folder else fs.size(key)
            if self.max_bytes is not None and size > self.max_bytes:
                raise ValidationError(
                    f"{uri!r} is {size:,} bytes, over {self.max_bytes:,} (setting "
                    "max_artifact_bytes)",
                    field=field,
                )
            target.parent.mkdir(parents=True, exist_ok=True)
            # Into a staging name first: a failed download leaves nothing half-written.
            if folder:
                fs.get(key.rstrip("/") + "/", str(staging) + "/", recursive=True)
            else:
                fs.get_file(key, str(staging))
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(staging, target)
        except (OSError, PermissionError) as exc:
            raise ValidationError(f"cannot read {uri!r} from S3: {exc}", field=field) from exc
        finally:
            if staging.is_dir():
                shutil.rmtree(staging, ignore_errors=True)
            else:
                staging.unlink(missing_ok=True)
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
