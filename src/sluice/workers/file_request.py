"""An async invocation as a worker answers it: read the input file, answer into the output.

The worker, not the gateway, touches the files. It judges the input by the file it
actually opened (on Linux: an `O_PATH` handle, its real path read back from /proc, then
reopened through that handle, so no symbolic link swapped in between can lead it
elsewhere), and the output folder likewise, then writes the answer under a staging name
in that folder and renames it into place, so an output is whole or absent. The requests
of one burst (what one read of the socket brought) share their output folders' handles,
and their answers are forced to disk together before any is reported, so an outcome the
gateway commits always has its output on disk.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import json
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING

from sluice.errors import ValidationError
from sluice.store.objects import PathPolicy, staging_for, sync_to_disk

if TYPE_CHECKING:
    from sluice.runtimes.base import Runtime

INPUT_FIELD = "X-Amzn-SageMaker-InputLocation"
OUTPUT_FIELD = "S3OutputPath"
_BY_HANDLE = hasattr(os, "O_PATH") and os.path.isdir("/proc/self/fd")
"""Paths are judged by the files opened (Linux); elsewhere by resolving them first."""


@dataclass(frozen=True)
class FileRequest:
    input: str
    """The input's local path, as named (the worker resolves and judges it)."""
    output: str
    """Where the answer goes."""
    content_type: str
    accept: str
    max_input_bytes: int
    home: str | None = None
    """The server's home, with `roots` its path policy (None: paths are not judged)."""
    roots: tuple[str, ...] = ()
    sweep: bool = False
    """Remove what an earlier, killed try left half-written beside the output first."""

    def to_json(self) -> bytes:
        return json.dumps({f.name: getattr(self, f.name) for f in _FIELDS}).encode()

    @classmethod
    def from_json(cls, body: bytes) -> FileRequest:
        values = json.loads(body)
        return cls(**{**values, "roots": tuple(values.get("roots", ()))})

    @property
    def policy(self) -> PathPolicy | None:
        return _policy(self.home, self.roots) if self.home is not None else None


_FIELDS = fields(FileRequest)


@functools.lru_cache(maxsize=8)
def _policy(home: str, roots: tuple[str, ...]) -> PathPolicy:
    return PathPolicy(Path(home), [Path(r) for r in roots])


@dataclass
class Burst:
    """What the requests of one burst share: open output folders, answers to sync."""

    folders: dict[str, tuple[int, Path]] = field(default_factory=dict)
    written: list[Path] = field(default_factory=list)
    answered: set[int] = field(default_factory=set)
    """Request ids whose answers are among `written`."""

    def folder(self, named: Path, policy: PathPolicy | None) -> tuple[int, Path]:
        """An open handle on the output folder `named` (made if missing, once judged) and
        its real path, judged."""
        key = str(named)
        if key not in self.folders:
            flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
            try:
                fd = os.open(named, flags)
            except FileNotFoundError:
                if policy is not None:
                    policy.check(named, OUTPUT_FIELD, reading=False)  # before anything is made
                named.mkdir(parents=True, exist_ok=True)
                fd = os.open(named, flags)
            try:
                real = _real_path(fd, named)
                if policy is not None:
                    policy.judge(real, OUTPUT_FIELD, reading=False, shown=named)
            except BaseException:
                os.close(fd)
                raise
            self.folders[key] = (fd, real)
        return self.folders[key]

    def close(self, sync: bool = True) -> None:
        """Force this burst's answers to disk (unless done already), then let go of the
        folders."""
        try:
            if sync and self.written:
                sync_to_disk(self.written)
        finally:
            for fd, _ in self.folders.values():
                os.close(fd)
            self.folders.clear()
            self.written.clear()


BATCH_BYTES = 8 << 20
"""The inputs the model answers together hold at most this much (one bigger input goes
alone)."""


def answer_many(
    runtime: Runtime, requests: Sequence[FileRequest], burst: Burst
) -> list[str | Exception]:
    """Answer requests into their outputs: for each, its answer's content type or why it
    failed. Inputs are read a batch at a time (up to BATCH_BYTES), the model answers a
    batch together (`Runtime.invoke_many`), then each answer is written."""
    results: list[str | Exception] = []
    batch: list[tuple[FileRequest, bytes | Exception]] = []
    size = 0
    for request in requests:
        try:
            body: bytes | Exception = _read_input(request, request.policy)
        except Exception as exc:  # noqa: BLE001 - this request's failure
            body = exc
        if batch and size + (len(body) if isinstance(body, bytes) else 0) > BATCH_BYTES:
            results += _answer_batch(runtime, batch, burst)
            batch, size = [], 0
        batch.append((request, body))
        size += len(body) if isinstance(body, bytes) else 0
    return results + _answer_batch(runtime, batch, burst)


def _answer_batch(
    runtime: Runtime, batch: list[tuple[FileRequest, bytes | Exception]], burst: Burst
) -> list[str | Exception]:
    readable = [(r, body) for r, body in batch if isinstance(body, bytes)]
    answers = iter(runtime.invoke_many([(body, r.content_type, r.accept) for r, body in readable]))
    results: list[str | Exception] = []
    for request, body in batch:
        if isinstance(body, Exception):
            results.append(body)
            continue
        answer = next(answers)
        if isinstance(answer, Exception):
            results.append(answer)
            continue
        data, content_type = answer
        try:
            _write_answer(request, data, burst)
        except Exception as exc:  # noqa: BLE001 - this request's failure
            results.append(exc)
            continue
        results.append(content_type)
    return results


def _write_answer(request: FileRequest, data: bytes, burst: Burst) -> None:
    """The answer under a staging name in the (judged) output folder, renamed into place."""
    named = Path(request.output)
    folder_fd, folder = burst.folder(named.parent, request.policy)
    if request.sweep:
        sweep_leftovers(folder / named.name)
    staging = staging_for(named).name
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
    out = os.open(staging, flags, 0o644, dir_fd=folder_fd)
    try:
        with open(out, "wb") as f:
            f.write(data)
        os.replace(staging, named.name, src_dir_fd=folder_fd, dst_dir_fd=folder_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(staging, dir_fd=folder_fd)
        raise
    burst.written.append(folder / named.name)


def _read_input(request: FileRequest, policy: PathPolicy | None) -> bytes:
    named = Path(request.input)
    try:
        if _BY_HANDLE and policy is not None:
            # A handle that reads nothing (no side effect of opening a device), judged by
            # where it really leads, then reopened through itself.
            handle = os.open(named, os.O_PATH | os.O_CLOEXEC)
            try:
                policy.judge(_real_path(handle, named), INPUT_FIELD, reading=True, shown=named)
                _must_be_a_file(os.fstat(handle).st_mode, request.input)
                fd = os.open(f"/proc/self/fd/{handle}", os.O_RDONLY | os.O_CLOEXEC)
            finally:
                os.close(handle)
        else:
            if policy is not None:
                named = policy.check(named, INPUT_FIELD, reading=True)
            fd = os.open(named, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except (FileNotFoundError, NotADirectoryError):
        raise ValidationError(
            f"the input {request.input!r} does not exist or is not a file", field=INPUT_FIELD
        ) from None
    except OSError as exc:
        raise ValidationError(f"cannot read the input: {exc.strerror}", field=INPUT_FIELD) from None
    with open(fd, "rb") as f:
        info = os.fstat(fd)
        _must_be_a_file(info.st_mode, request.input)
        if info.st_size > request.max_input_bytes:
            raise ValidationError(
                f"the input is {info.st_size:,} bytes, over {request.max_input_bytes:,} "
                "(setting async_max_input_bytes)",
                field=INPUT_FIELD,
            )
        try:
            return f.read()
        except OSError as exc:
            raise ValidationError(
                f"cannot read the input: {exc.strerror}", field=INPUT_FIELD
            ) from None


def _must_be_a_file(mode: int, name: str) -> None:
    if stat.S_ISDIR(mode):
        raise ValidationError(
            f"the input {name!r} does not exist or is not a file", field=INPUT_FIELD
        )
    if not stat.S_ISREG(mode):
        raise ValidationError(
            f"the input {name!r} is not a regular file or folder (a device, FIFO or socket)",
            field=INPUT_FIELD,
        )


def _real_path(fd: int, named: Path) -> Path:
    """Where an open handle really leads (symbolic links resolved)."""
    if _BY_HANDLE:
        return Path(os.readlink(f"/proc/self/fd/{fd}"))
    return named.resolve()


def sweep_leftovers(final: Path) -> None:
    """Remove what an earlier attempt, killed while writing, left half-written."""
    for leftover in final.parent.glob(f".{glob.escape(final.name)}.*.part"):
        leftover.unlink(missing_ok=True)
