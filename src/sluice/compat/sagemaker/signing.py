"""Signature Version 4 checks for servers configured with access keys.

By default the SageMaker-compatible API takes any credentials. With `aws_access_keys`
set, a request must carry an `Authorization: AWS4-HMAC-SHA256 ...` header from one of
those keys whose signature matches the request, computed as AWS does (canonical request,
string to sign, key derived from the secret, the date, the region and the service).
"""

from __future__ import annotations

import hashlib
import hmac
import posixpath
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from sluice.errors import SluiceError

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW = timedelta(minutes=15)
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
_AMZ_DATE = re.compile(r"(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z", re.ASCII)


class SignatureError(SluiceError):
    """AWS's authentication failures: the code says which."""

    status = 403

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class SignatureCheck:
    def __init__(self, keys: Mapping[str, str], now: type[datetime] = datetime) -> None:
        self.keys = keys
        """Access key id to secret; may be replaced (credentials reloaded) at any time."""
        self.now = now
        self._signing_keys: dict[tuple[str, str, str, str, str], bytes] = {}

    def verify_scope(self, scope: Mapping[str, Any], body: bytes) -> str:
        """`verify` for an ASGI request: method, raw path, query and headers from its scope."""
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope["headers"]:
            name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
            headers[name] = f"{headers[name]},{value}" if name in headers else value
        return self.verify(
            scope["method"],
            scope.get("raw_path") or scope["path"].encode(),
            scope.get("query_string", b""),
            headers,
            body,
        )

    def verify(
        self,
        method: str,
        raw_path: bytes,
        query: bytes,
        headers: Mapping[str, str],
        body: bytes,
    ) -> str:
        """The access key id that signed the request; SignatureError unless it is a
        configured key and the signature matches."""
        authorization = headers.get("authorization", "")
        if not authorization:
            raise SignatureError(
                "MissingAuthenticationTokenException",
                "Missing Authentication Token: this server takes SigV4-signed requests only",
            )
        algorithm, fields = _authorization(authorization)
        credential = fields.get("Credential", "").split("/")
        if algorithm != ALGORITHM or len(credential) != 5 or not fields.get("Signature"):
            raise SignatureError(
                "IncompleteSignatureException",
                f"Authorization must be {ALGORITHM} Credential=..., SignedHeaders=..., "
                "Signature=...",
            )
        access_key, day, region, service, terminal = credential
        secret = self.keys.get(access_key)
        if secret is None:
            raise SignatureError(
                "UnrecognizedClientException",
                "The security token included in the request is invalid: unknown access key "
                f"{access_key!r}",
            )
        stamp = headers.get("x-amz-date", "")
        signed_at = _signed_at(stamp)
        if abs(self.now.now(UTC) - signed_at) > MAX_SKEW or not stamp.startswith(day):
            raise SignatureError(
                "InvalidSignatureException",
                f"Signature expired: {stamp} is more than 15 minutes from the server's time",
            )
        signed_headers = fields.get("SignedHeaders", "").split(";")
        canonical = "\n".join(
            [
                method.upper(),
                _canonical_path(raw_path),
                _canonical_query(query),
                "".join(
                    f"{name}:{' '.join(headers.get(name, '').split())}\n" for name in signed_headers
                ),  # fmt: skip
                ";".join(signed_headers),
                _payload_hash(headers, body),
            ]
        )
        scope = f"{day}/{region}/{service}/{terminal}"
        to_sign = "\n".join(
            [ALGORITHM, stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()]
        )
        key = self._signing_key(secret, day, region, service, terminal)
        expected = hmac.digest(key, to_sign.encode(), "sha256").hex()
        if not hmac.compare_digest(expected, fields["Signature"]):
            raise SignatureError(
                "InvalidSignatureException",
                "The request signature we calculated does not match the signature you "
                "provided. Check your AWS Secret Access Key and signing method.",
            )
        return access_key

    def _signing_key(self, secret: str, day: str, region: str, service: str, end: str) -> bytes:
        """The key derived from the secret for one day, region and service (cached: four
        HMACs saved per request)."""
        cache_key = (secret, day, region, service, end)
        key = self._signing_keys.get(cache_key)
        if key is None:
            key = f"AWS4{secret}".encode()
            for part in (day, region, service, end):
                key = hmac.digest(key, part.encode(), "sha256")
            if len(self._signing_keys) > 1024:
                self._signing_keys.clear()
            self._signing_keys[cache_key] = key
        return key


def _signed_at(stamp: str) -> datetime:
    """X-Amz-Date (YYYYMMDDTHHMMSSZ) as a time; read by hand, strptime costs a fifth of a
    whole verification."""
    match = _AMZ_DATE.fullmatch(stamp)
    try:
        if match is None:
            raise ValueError(stamp)
        year, month, day, hour, minute, second = (int(part) for part in match.groups())
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        raise SignatureError(
            "IncompleteSignatureException", "X-Amz-Date is missing or not YYYYMMDDTHHMMSSZ"
        ) from None


def _canonical_path(raw_path: bytes) -> str:
    path = raw_path.decode("latin-1") or "/"
    normalized = posixpath.normpath(path)
    if path.endswith("/") and normalized != "/":
        normalized += "/"
    return quote(normalized, safe="/~")


def _canonical_query(query: bytes) -> str:
    if not query:
        return ""
    pairs = [pair.partition("=")[::2] for pair in query.decode("latin-1").split("&")]
    return "&".join(f"{k}={v}" for k, v in sorted(pairs))


def _payload_hash(headers: Mapping[str, str], body: bytes) -> str:
    actual = hashlib.sha256(body).hexdigest()
    claimed = headers.get("x-amz-content-sha256")
    if claimed is None or claimed == UNSIGNED_PAYLOAD:
        return claimed or actual
    if claimed != actual:
        raise SignatureError(
            "InvalidSignatureException", "X-Amz-Content-SHA256 does not match the request body"
        )
    return claimed


def _authorization(header: str) -> tuple[str, dict[str, str]]:
    algorithm, _, rest = header.partition(" ")
    return algorithm, dict(part.strip().partition("=")[::2] for part in rest.split(","))


def access_key_of(headers: Mapping[str, str]) -> str | None:
    """The access key id a SigV4 request names (verified only where keys are configured)."""
    algorithm, fields = _authorization(headers.get("authorization", ""))
    key = fields.get("Credential", "").split("/")[0]
    return key if algorithm == ALGORITHM and key else None
