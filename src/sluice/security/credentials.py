"""Who may call the server: principals with a role, a bearer token and/or an AWS key pair.

Principals come from two places, merged: the credentials file (`<home>/credentials.json`
by default, mode 0600, written by `sluice credentials` and, on a server's first start
with no credentials at all, generated with one admin principal) and the settings
(`SLUICE_PRINCIPALS`, plus `SLUICE_AWS_ACCESS_KEYS` as admin keys). The server re-reads
the file when it changes, so a credential added or removed takes effect without a restart.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import string
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from sluice.errors import ValidationError

FILE_NAME = "credentials.json"
RELOAD_INTERVAL_S = 1.0


class Role(StrEnum):
    """`invoke`: the data plane only (inference, ground truth). `admin`: everything."""

    INVOKE = "invoke"
    ADMIN = "admin"

    def allows(self, needed: Role) -> bool:
        return self is Role.ADMIN or needed is Role.INVOKE


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role
    token: str | None = None
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None

    def to_json(self) -> dict[str, str]:
        document = {"role": self.role.value}
        for key in ("token", "aws_access_key_id", "aws_secret_access_key"):
            value = getattr(self, key)
            if value:
                document[key] = value
        return document


def token_digest(token: str) -> bytes:
    """Tokens are looked up by their SHA-256: a lookup's timing reveals nothing of a token."""
    return hashlib.sha256(token.encode()).digest()


def new_principal(name: str, role: Role) -> Principal:
    """A principal with a fresh bearer token and AWS key pair."""
    alphabet = string.ascii_uppercase + string.digits
    return Principal(
        name=name,
        role=role,
        token="slk_" + secrets.token_urlsafe(32),
        aws_access_key_id="AKSL" + "".join(secrets.choice(alphabet) for _ in range(16)),
        aws_secret_access_key=secrets.token_urlsafe(30),
    )


def parse_principals(document: Any, source: str) -> list[Principal]:
    """`{"name": {"role": ..., "token": ..., "aws_access_key_id": ..., ...}}` -> principals."""
    if not isinstance(document, Mapping):
        raise ValidationError(f"{source}: principals must be an object of name -> credentials")
    found = []
    for name, spec in document.items():
        if not isinstance(spec, Mapping):
            raise ValidationError(f"{source}: principal {name!r} must be an object")
        try:
            role = Role(spec.get("role", ""))
        except ValueError:
            raise ValidationError(
                f"{source}: principal {name!r} needs a role, 'invoke' or 'admin'"
            ) from None
        key, secret = spec.get("aws_access_key_id"), spec.get("aws_secret_access_key")
        if bool(key) != bool(secret):
            raise ValidationError(
                f"{source}: principal {name!r} needs both aws_access_key_id and "
                "aws_secret_access_key, or neither"
            )
        token = spec.get("token")
        if not token and not key:
            raise ValidationError(f"{source}: principal {name!r} has no token and no AWS key")
        if token is not None and (not isinstance(token, str) or len(token) < 16):
            raise ValidationError(
                f"{source}: principal {name!r}: a token has 16 characters or more"
            )
        found.append(Principal(str(name), role, token, key, secret))
    return found


def read_file(path: Path) -> list[Principal]:
    """The principals in a credentials file; none when it does not exist."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise ValidationError(f"{path}: not JSON ({exc})") from None
    principals = document.get("principals") if isinstance(document, dict) else None
    return parse_principals(principals if principals is not None else {}, str(path))


def write_file(path: Path, principals: Iterable[Principal]) -> None:
    """Replace the credentials file atomically; only its owner may read it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"principals": {p.name: p.to_json() for p in principals}}
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".credentials-")
    try:
        os.fchmod(handle, 0o600)
        with os.fdopen(handle, "w") as out:
            json.dump(document, out, indent=2)
            out.write("\n")
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


class Credentials:
    """The server's principals, by token digest and by access key; reloads its file."""

    def __init__(self, path: Path, configured: Iterable[Principal] = ()) -> None:
        self.path = path
        self.configured = list(configured)
        self.by_token: dict[bytes, Principal] = {}
        self.by_access_key: dict[str, Principal] = {}
        self.aws_secrets: dict[str, str] = {}
        self._stamp: tuple[int, int] | None = None
        self._next_check = 0.0
        self.load()

    @property
    def empty(self) -> bool:
        return not self.by_token and not self.by_access_key

    def ensure_some(self) -> Principal | None:
        """Write an admin principal to the file when there are no credentials at all;
        return it (so the server can say where it is), else None."""
        if not self.empty:
            return None
        admin = new_principal("admin", Role.ADMIN)
        write_file(self.path, [admin])
        self.load()
        return admin

    def load(self) -> None:
        principals = [*self.configured, *read_file(self.path)]
        self._stamp = _stamp(self.path)
        by_token, by_key = {}, {}
        for principal in principals:
            if principal.token:
                by_token[token_digest(principal.token)] = principal
            if principal.aws_access_key_id:
                by_key[principal.aws_access_key_id] = principal
        self.by_token, self.by_access_key = by_token, by_key
        self.aws_secrets = {
            key: p.aws_secret_access_key for key, p in by_key.items() if p.aws_secret_access_key
        }

    def refresh(self) -> None:
        """Re-read the file if it changed; looks at most once a second."""
        now = time.monotonic()
        if now < self._next_check:
            return
        self._next_check = now + RELOAD_INTERVAL_S
        if _stamp(self.path) != self._stamp:
            try:
                self.load()
            except ValidationError:
                # Keep serving with the last good credentials; the file is mid-edit or bad.
                self._stamp = _stamp(self.path)

    def by_bearer(self, token: str) -> Principal | None:
        return self.by_token.get(token_digest(token))


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_mtime_ns, stat.st_size


def default_token(home: Path) -> str | None:
    """The first admin token in the home's credentials file (readable by its owner only)."""
    try:
        principals = read_file(home / FILE_NAME)
    except (ValidationError, OSError):
        return None
    for principal in principals:
        if principal.token and principal.role is Role.ADMIN:
            return principal.token
    return None


def secret_file(path: Path) -> bytes:
    """A random secret kept in `path` (mode 0600), created on first use."""
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    secret = secrets.token_hex(32).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(handle, "wb") as out:
        out.write(secret + b"\n")
    return secret
